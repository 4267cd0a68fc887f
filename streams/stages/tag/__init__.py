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
from pathlib import Path
from typing import Self

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from streams.contract.events import MAX_TITLE_CHARS, CleanArticle, Entity, TaggedArticle
from streams.errors import ConfigError
from streams.settings import MAX_BODY_BYTES_LIMIT, Settings
from streams.stages.tag.kb import KBComponent, KBEntity, KnowledgeBase
from streams.stages.tag.topics import TopicTaxonomy

__all__ = ["CONLL_LABELS", "KBComponent", "KBEntity", "KnowledgeBase", "Tagger", "TopicTaxonomy", "build_nlp",
           "canonical_entities"]

#: Labels of statistical models that the project names differently (CoNLL-2003's PER).
MODEL_LABELS = {"PER": "PERSON"}
CONLL_LABELS = {"PERSON": "PER", "PER": "PER", "ORG": "ORG", "CENTRAL_BANK": "ORG", "REGULATOR": "ORG",
                "PAYMENT_SYSTEM": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "NORP": "MISC",
                "MISC": "MISC", "ASSET": "MISC", "EVENT": "MISC", "PRODUCT": "MISC", "WORK_OF_ART": "MISC",
                "LAW": "MISC", "LANGUAGE": "MISC"}


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
    # spaCy refuses texts over 1,000,000 characters; the door admits a body up to STREAMS_MAX_BODY_BYTES
    # (at most MAX_BODY_BYTES_LIMIT) and a title up to MAX_TITLE_CHARS, so every accepted article fits
    nlp.max_length = MAX_BODY_BYTES_LIMIT + MAX_TITLE_CHARS + 2
    return nlp


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


#: articles per ``nlp.pipe`` batch in the worker's tag agent (and in ``streams bench``'s floor)
BATCH = 16


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
