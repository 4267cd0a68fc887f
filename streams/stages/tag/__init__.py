"""Tag stage: canonical entities and topics with spaCy, tuned for alerting.

The pipeline is assembled here and nowhere else (:func:`build_nlp`):

1. a statistical NER (``STREAMS_SPACY_MODEL``: the project's own CoNLL-2003 model by default, an
   installed package or a path; ``none``: ``spacy.blank("en")``);
2. ``streams_kb``: the knowledge base (``kb.yaml``) as phrase patterns - countries and demonyms
   from pycountry plus the user's entities; ambiguous tickers count only in ticker context
   ("$PEOPLE", "(PEOPLE)", "PEOPLE/USD"); KB matches win over the statistical model;
3. ``streams_patterns``: people introduced by a title or a reporting verb, money and percentages;
4. canonicalisation (:func:`canonical_entities`): aliases map to the KB id, and a later
   surname-only mention joins the earlier full name in the same article.

Topics come from a taxonomy file (``topics.yaml``) matched on lower-cased tokens.
"""

# No `from __future__ import annotations` here: spaCy 3.8.6 (pinned) validates component factory
# signatures from their annotations and cannot resolve them as strings.
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import spacy
import yaml
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from streams.contract.events import CleanArticle, Entity, TaggedArticle, Topic
from streams.errors import ConfigError
from streams.settings import Settings

TITLES = ("President|Prime Minister|Finance Minister|Foreign Minister|Minister|Chancellor|Secretary|"
          "Governor|Senator|Chairman|Chairwoman|Chair|Chief Executive|CEO|CFO|Director|Mr|Mrs|Ms|Dr|Sir|"
          "Lord|Lady|King|Queen|Prince|Judge|General|Commissioner|Spokesman|Spokeswoman|Founder|Mayor|"
          "Ambassador|Premier|Deputy|Coach|Manager|chief executive|president|chairman|governor|minister")
#: words that cannot start a name found by the patterns ("Then Mark Halloran said")
NOT_NAMES = STOP_WORDS | {w.lower() for w in re.split(r"[| ]", TITLES)}
NAME = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
VERBS = "said|says|told|added|warned|announced|explained|argued|insisted"
# Each pattern starts with a literal character class, not \b or a lookahead: Python's engine
# then skips ahead to candidate positions, which made these three regexes 2-5x faster.
#: "Finance Minister Anton Siluanov", "Mr Blair": a title, then one to three capitalised names.
TITLED = re.compile(rf"(?:{TITLES})(?:\.? (?:{TITLES}))*\.? ((?:{NAME} ){{0,2}}{NAME})\b")
#: "Andrey Kostin said": two or three capitalised names right before a reporting verb.
SAID = re.compile(rf"([A-Z](?<![\w'-][A-Z])[a-z]+(?:[-'][A-Z][a-z]+)? (?:{NAME} )?{NAME}),? (?:{VERBS})\b")
_AMOUNT = r"\d[\d,]*(?:\.\d+)?"
_SCALE = r"(?:\s?(?:million|billion|trillion|bn|m|tn|k|mln)\b)?"
_CURRENCIES = "dollars?|euros?|pounds|roubles|rubles|yen|yuan|francs|rupees|USD|EUR|GBP|RUB|CNY"
#: "US$5bn", "£600m", "1.41bn rupees"
MONEY = re.compile(rf"[\dUACH$£€¥₽](?<![\w.,][\dUACH$£€¥₽])"
                   rf"(?:(?:(?<=[UACH])(?:S|K)?[$£€¥₽]\s?{_AMOUNT}|(?<=[$£€¥₽])\s?{_AMOUNT}){_SCALE}"
                   rf"|(?<=\d)[\d,]*(?:\.\d+)?{_SCALE}\s(?:{_CURRENCIES})\b)")
PERCENT = re.compile(r"\d(?<![\w.,]\d)[\d,]*(?:\.\d+)?\s?(?:%|per cent\b|percent\b)")

TOPIC_WORD = re.compile(r"\w+")
#: Labels of statistical models that the project names differently (CoNLL-2003's PER).
MODEL_LABELS = {"PER": "PERSON"}
CONLL_LABELS = {"PERSON": "PER", "PER": "PER", "ORG": "ORG", "CENTRAL_BANK": "ORG", "REGULATOR": "ORG",
                "PAYMENT_SYSTEM": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "NORP": "MISC",
                "MISC": "MISC", "ASSET": "MISC", "EVENT": "MISC", "PRODUCT": "MISC", "WORK_OF_ART": "MISC",
                "LAW": "MISC", "LANGUAGE": "MISC"}


@dataclass(frozen=True, slots=True)
class KBEntity:
    id: str
    name: str
    type: str
    aliases: tuple[str, ...] = ()
    tickers: tuple[str, ...] = ()
    demonyms: tuple[str, ...] = ()
    context: tuple[str, ...] = ()  # at least one of these words must occur in the article


@dataclass
class KnowledgeBase:
    """Canonical entities and their surface forms, loaded from YAML (data only, never code)."""

    entities: dict[str, KBEntity] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Self:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        kb = cls()
        countries = doc.get("countries") or {}
        if countries.get("source") == "pycountry":
            import pycountry

            extra = countries.get("names") or {}
            for c in pycountry.countries:
                more = extra.get(c.alpha_2) or {}
                aliases = list(more.get("aliases") or ())
                official = [n for n in (getattr(c, "common_name", None), c.name) if n]
                demonyms = tuple(more.get("demonyms") or ())
                kb.add(KBEntity(f"country/{c.alpha_2}", (aliases or official)[0], "GPE",
                                tuple(dict.fromkeys([*official, *aliases])), demonyms=demonyms))
        for row in doc.get("entities") or []:
            unknown = set(row) - {"id", "name", "type", "aliases", "tickers", "demonyms", "context"}
            if unknown:
                raise ValueError(f"{path}: entity {row.get('id')!r} has unknown fields {sorted(unknown)}")
            kb.add(KBEntity(row["id"], row["name"], row["type"], tuple(row.get("aliases") or ()),
                            tuple(row.get("tickers") or ()), tuple(row.get("demonyms") or ()),
                            tuple(row.get("context") or ())))
        return kb

    def add(self, entity: KBEntity) -> None:
        if entity.id in self.entities:
            raise ValueError(f"duplicate knowledge-base id {entity.id!r}")
        self.entities[entity.id] = entity


class KBComponent:
    """Knowledge-base mentions (canonical id in ``span.kb_id_``), which win over the statistical
    model's entities where they overlap, plus the pattern layer where neither found anything."""

    def __init__(self, nlp: Language, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.exact = PhraseMatcher(nlp.vocab, attr="ORTH")
        self.labels: dict[str, str] = {}
        ticker_keys: dict[str, str] = {}
        self.context = {e.id: re.compile(r"\b(?:" + "|".join(map(re.escape, e.context)) + r")\b", re.I)
                        for e in kb.entities.values() if e.context}
        for ent in kb.entities.values():
            for label, forms in ((ent.type, ent.aliases), ("NORP", ent.demonyms)):
                if not forms:
                    continue
                key = f"{ent.id}|{label}"
                self.labels[key] = label
                # a lower-case alias matches any casing: its lower, Title and UPPER forms (one
                # matcher pass over ORTH is cheaper than a second pass over LOWER)
                variants = {v for a in forms
                            for v in ((a, a.title(), a.upper(), a.capitalize()) if a.islower() else (a,))}
                self.exact.add(key, [nlp.make_doc(v) for v in sorted(variants)])
            for t in ent.tickers:
                ticker_keys[t] = f"{ent.id}|{ent.type}"
                self.labels[ticker_keys[t]] = ent.type
        self.ticker_keys = ticker_keys
        alt = "|".join(sorted(map(re.escape, ticker_keys), key=len, reverse=True)) or r"(?!x)x"
        # "$PEOPLE", "(PEOPLE)", "PEOPLE/USD": an ambiguous ticker only counts in ticker context
        self.tickers = re.compile(rf"(?:\$({alt})\b|\(({alt})\)|\b({alt})/(?:USDT?|USDC|EUR|BTC|ETH)\b)")

    def __call__(self, doc: Doc) -> Doc:
        """Set ``doc.ents`` once: KB mentions, then model entities, then pattern entities."""
        spans = []
        for match_id, start, end in self.exact(doc):
            key = doc.vocab.strings[match_id]
            spans.append(Span(doc, start, end, label=self.labels[key], kb_id=key.split("|")[0]))
        # Doc.text joins every token anew on each access: the tagger hands the text over instead
        text = doc.user_data.get("text") or doc.text
        offsets = TokenOffsets(doc)
        for m in self.tickers.finditer(text):
            group = next(g for g in (1, 2, 3) if m.group(g))
            key = self.ticker_keys[m.group(group)]
            span = offsets.span(m.start(group), m.end(group), self.labels[key], key.split("|")[0])
            if span is not None:
                spans.append(span)
        needs = {s.kb_id_ for s in spans if s.kb_id_ in self.context}
        missing = {i for i in needs if not self.context[i].search(text)}
        chosen = filter_spans([s for s in spans if s.kb_id_ not in missing])
        for layer in (model_spans(doc), pattern_spans(text, offsets)):
            taken = {i for s in chosen for i in range(s.start, s.end)}
            chosen += filter_spans([e for e in layer if not any(i in taken for i in range(e.start, e.end))])
        doc.ents = chosen
        return doc


@Language.factory("streams_kb", default_config={"kb_path": None})
def make_kb_component(nlp: Language, name: str, kb_path: str | None) -> KBComponent:
    return KBComponent(nlp, KnowledgeBase.load(Path(kb_path)) if kb_path else KnowledgeBase())


def model_spans(doc: Doc) -> list[Span]:
    """The statistical model's entities, cut at the first line break (title and body are one text,
    and a model trained on sentences can run an entity across them), minus any without a letter or
    digit ("£")."""
    out = []
    for ent in doc.ents:
        end = next((t.i for t in ent if t.is_space), ent.end)
        if end > ent.start and any(c.isalnum() for c in doc[ent.start:end].text):
            out.append(ent if end == ent.end else Span(doc, ent.start, end, label=ent.label))
    return out


class TokenOffsets:
    """Character offsets to token spans for one doc, by binary search (``Doc.char_span`` walks
    every token on every call, which dominated tagging time)."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.starts = doc.to_array("IDX")
        self.ends = self.starts + doc.to_array("LENGTH")

    def span(self, start_char: int, end_char: int, label: str, kb_id: str = "") -> Span | None:
        """The tokens lying within [start_char, end_char) ("contract" alignment), or None."""
        start = int(np.searchsorted(self.starts, start_char, "left"))
        end = int(np.searchsorted(self.ends, end_char, "right"))
        return Span(self.doc, start, end, label=label, kb_id=kb_id) if end > start else None


def pattern_spans(text: str, offsets: TokenOffsets) -> list[Span]:
    """People introduced by titles or reporting verbs; money amounts; percentages.

    Text regexes mapped onto tokens: an order of magnitude faster than token patterns with
    regex predicates, which matters at hundreds of articles a second.
    """
    found = []
    for pattern, label, group, min_words in ((TITLED, "PERSON", 1, 1), (SAID, "PERSON", 1, 2),
                                             (MONEY, "MONEY", 0, 1), (PERCENT, "PERCENT", 0, 1)):
        for m in pattern.finditer(text):
            start = m.start(group)
            if label == "PERSON":  # "Then Mark Halloran said": drop the sentence's leading function words
                names = m.group(group).split(" ")
                while names and names[0].lower() in NOT_NAMES:
                    start += len(names.pop(0)) + 1
                if len(names) < min_words:
                    continue
            span = offsets.span(start, m.end(group), label)
            if span is not None:
                found.append(span)
    return found


def build_nlp(model: str | None, kb_path: Path) -> Language:
    """The tag pipeline: configured NER (or blank English), then the KB and pattern layers."""
    import streams.stages.tag.gazetteer  # noqa: F401  (registers the component the project's own NER uses)

    try:
        nlp = spacy.load(model, exclude=["parser", "lemmatizer", "textcat", "senter"]) if model else spacy.blank("en")
    except OSError as exc:
        raise ConfigError(f"STREAMS_SPACY_MODEL={model}: not a pipeline directory nor an installed spaCy package. "
                         f"Point it at a directory (streams train-ner writes one) or pip install the package "
                         f"({exc})") from exc
    nlp.add_pipe("streams_kb", config={"kb_path": str(kb_path)})
    return nlp


@dataclass
class TopicTaxonomy:
    """Topics as weighted phrases; a topic holds when its fired weight reaches its threshold.

    Phrases are matched on lower-cased words; a trailing ``*`` lets the last word continue
    ("sanction*" matches "sanctions", "sanctioned"). Matching walks the article's words once and
    looks each up in an index of phrase first words, so cost does not grow with the taxonomy.
    """

    first: dict[str, list[tuple[tuple[str, ...], bool, int]]]  # first word -> (words, stem?, index)
    stems: dict[str, list[int]]  # one-word stem -> indexes
    phrases: list[tuple[str, str, float]]  # (topic id, phrase, weight)
    thresholds: dict[str, float]
    stem_words: re.Pattern[str] = re.compile(r"(?!x)x")  # the words that start with some stem

    @classmethod
    def load(cls, path: Path) -> Self:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        first: dict[str, list[tuple[tuple[str, ...], bool, int]]] = {}
        stems: dict[str, list[int]] = {}
        phrases, thresholds = [], {}
        for topic in doc.get("topics") or []:
            tid = topic["id"]
            thresholds[tid] = float(topic.get("threshold", 1.0))
            for phrase, weight in (topic.get("phrases") or {}).items():
                words = tuple(TOPIC_WORD.findall(phrase.lower()))
                stem = phrase.endswith("*")
                if stem and len(words) == 1:
                    stems.setdefault(words[0], []).append(len(phrases))
                else:
                    first.setdefault(words[0], []).append((words, stem, len(phrases)))
                phrases.append((tid, phrase, float(weight)))
        alternatives = "|".join(sorted(map(re.escape, stems), key=len, reverse=True))
        stem_words = re.compile(rf"\b(?:{alternatives})\w*") if stems else re.compile(r"(?!x)x")
        return cls(first, stems, phrases, thresholds, stem_words)

    def topics(self, text: str) -> list[Topic]:
        lowered = text.lower()
        words = TOPIC_WORD.findall(lowered)
        fired: set[int] = set()
        for word in set(self.stem_words.findall(lowered)):
            for n in range(1, len(word) + 1):
                fired.update(self.stems.get(word[:n], ()))
        for i, w in enumerate(words):
            for phrase, stem, idx in self.first.get(w, ()):
                n = len(phrase)
                tail = words[i + 1 : i + n]
                if len(tail) == n - 1 and tuple(tail[:-1]) == phrase[1:-1] and (
                    n == 1 or tail[-1] == phrase[-1] or (stem and tail[-1].startswith(phrase[-1]))
                ):
                    fired.add(idx)
        by_topic: dict[str, list[tuple[str, float]]] = {}
        for idx in fired:
            tid, phrase, weight = self.phrases[idx]
            by_topic.setdefault(tid, []).append((phrase, weight))
        out = []
        for tid, hits in by_topic.items():
            score = sum(w for _, w in hits)
            if score >= self.thresholds[tid]:
                out.append(Topic(id=tid, score=round(score, 3), phrases=sorted(p for p, _ in hits)))
        return sorted(out, key=lambda t: (-t.score, t.id))


def canonical_entities(doc: Doc, kb: KnowledgeBase, text: str) -> list[Entity]:
    """Merge mentions into canonical entities: KB ids for aliases, and a later surname-only
    mention ("Okafor", also where no layer tagged it) joined to the earlier full name."""
    merged: dict[tuple[str, str], Entity] = {}
    surnames: dict[str, tuple[str, str | None, int]] = {}  # surname -> (full name, kb id, first end)
    # one label per name the KB does not know: the statistical model may call "Pernod" an ORG in one
    # sentence and a PERSON in the next; the article's majority (the first seen on a tie) wins
    votes: dict[str, Counter] = {}
    for ent in doc.ents:
        if not ent.kb_id_:
            votes.setdefault(ent.text.strip(), Counter())[MODEL_LABELS.get(ent.label_, ent.label_)] += 1
    for ent in doc.ents:
        kb_id = ent.kb_id_ or None
        mention = ent.text.strip()
        label = votes[mention].most_common(1)[0][0] if kb_id is None else ent.label_
        name = kb.entities[kb_id].name if kb_id in kb.entities else mention
        if label == "PERSON":
            tokens = mention.split()
            if len(tokens) == 2 and tokens[1] in surnames and _sentence_initial(ent):
                tokens = tokens[1:]  # "Later Okafor said": a capitalised first word, then the surname
                mention = tokens[0]
            if len(tokens) == 1 and tokens[0] in surnames and kb_id is None:
                name, kb_id, _ = surnames[tokens[0]]
            elif len(tokens) > 1:
                surnames.setdefault(tokens[-1], (name, kb_id, ent.end_char))
        key = (kb_id or name.lower(), label)
        if key in merged:
            merged[key].count += 1
        else:
            merged[key] = Entity(text=mention, label=label, id=kb_id, name=name, start=ent.start_char)
    if surnames:  # bare surnames that no layer tagged
        covered = [(e.start_char, e.end_char) for e in doc.ents]
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, surnames)) + r")\b")
        for m in pattern.finditer(text):
            name, kb_id, first_end = surnames[m.group(1)]
            if m.start() >= first_end and not any(s <= m.start() < e for s, e in covered):
                merged[(kb_id or name.lower(), "PERSON")].count += 1
    return list(merged.values())


def _sentence_initial(span: Span) -> bool:
    if span.start == 0:
        return True
    before = span.doc[span.start - 1]
    return before.is_space or before.text in {".", "!", "?", "\"", "”", ";", ":"}


class Tagger:
    """Tags clean articles in batches with one spaCy pipeline and one topic taxonomy."""

    def __init__(self, model: str | None, kb_path: Path, taxonomy_path: Path) -> None:
        self.nlp = build_nlp(model, kb_path)
        self.kb = self.nlp.get_pipe("streams_kb").kb
        self.taxonomy = TopicTaxonomy.load(taxonomy_path)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The tagger the worker runs: ``STREAMS_SPACY_MODEL``, ``_KNOWLEDGE_BASE``, ``_TAXONOMY``."""
        return cls(settings.spacy_model, settings.knowledge_base, settings.taxonomy)

    def entities(self, text: str) -> list[Entity]:
        """The canonical entities of a text, as an article's would be."""
        doc = self.nlp.make_doc(text)
        doc.user_data["text"] = text
        return canonical_entities(self.nlp(doc), self.kb, text)

    def tag_many(self, articles: Sequence[CleanArticle], batch_size: int = 64) -> list[TaggedArticle]:
        texts = [f"{a.title}\n\n{a.body}" for a in articles]
        docs = []
        for text in texts:
            doc = self.nlp.make_doc(text)
            doc.user_data["text"] = text
            docs.append(doc)
        out = []
        for article, text, doc in zip(articles, texts, self.nlp.pipe(docs, batch_size=batch_size), strict=True):
            # the article is a validated model already: construct without validating it again
            out.append(TaggedArticle.model_construct(**dict(article), entities=canonical_entities(doc, self.kb, text),
                                                     topics=self.taxonomy.topics(text)))
        return out

    def tag(self, article: CleanArticle) -> TaggedArticle:
        return self.tag_many([article])[0]
