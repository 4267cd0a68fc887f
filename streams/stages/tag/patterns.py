"""The pattern layer: people introduced by a title or a reporting verb, money and percentages, found
with text regexes and mapped onto tokens; and the statistical model's spans, cleaned up."""

import re

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc, Span

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
