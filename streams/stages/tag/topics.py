"""Topics: a taxonomy of weighted phrases (``topics.yaml``), matched on an article's lower-cased words."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import yaml

from streams.contract.events import Topic

TOPIC_WORD = re.compile(r"\w+")


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
