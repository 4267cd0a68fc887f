"""The knowledge base: canonical entities and their surface forms (``kb.yaml``), and the
``streams_kb`` spaCy component that marks their mentions, which win over the statistical model."""

# No `from __future__ import annotations` here: spaCy 3.8.6 (pinned) validates component factory
# signatures from their annotations and cannot resolve them as strings.
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import yaml
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from streams.stages.tag.patterns import TokenOffsets, model_spans, pattern_spans


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
