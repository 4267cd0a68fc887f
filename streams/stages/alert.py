"""Alert stage: declarative rules over tagged articles, with per-rule suppression.

Rules live in a YAML file the user edits. They are data, never code: the file is parsed with
``yaml.safe_load`` and validated by pydantic models that reject unknown fields, unknown entity ids
and bad windows with a message naming the rule. A rule's ``when`` is a tree of ``all`` / ``any`` /
``not`` over leaf conditions::

    - id: russia-crypto-trade
      severity: high
      suppress: 24h
      when:
        all:
          - entity: country/RU
          - any: [{entity: asset/btc}, {topic: crypto_regulation}]
          - not: {source: [satire.example]}

Leaves: ``entity`` (canonical KB id), ``label`` (entity label, e.g. PERSON), ``topic`` (id, or
``{id, min_score}``), ``source`` (one or a list), ``keyword`` / ``title_keyword`` (words or
phrases, case-insensitive, whole words).

An alert's id is derived from the rule and the story (the stories stage's `story_id`; without one, the
first sighting's article id), so a retry or a replay produces the same id and consumers can drop repeats.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams.contract.events import Alert, Evidence, TaggedArticle, utcnow
from streams.errors import ConfigError

WINDOW = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RulesError(ConfigError, ValueError):
    """A rules file that cannot be used, with what is wrong and where."""


def parse_window(text: str | int | float) -> float:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"`` (or a number of seconds) in seconds."""
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a window cannot be negative")
        return float(text)
    m = WINDOW.match(str(text).strip())
    if not m:
        raise ValueError(f"bad window {text!r}: use a number and a unit, e.g. 90s, 30m, 24h, 7d")
    return float(m.group(1)) * UNITS[m.group(2)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class TopicCondition(Strict):
    id: str
    min_score: float = 0.0


class Condition(Strict):
    """One node of a rule's ``when`` tree: exactly one key."""

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")
    entity: list[str] | None = None
    label: list[str] | None = None
    topic: TopicCondition | None = None
    source: list[str] | None = None
    keyword: list[str] | None = None
    title_keyword: list[str] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("entity", "label", "source", "keyword", "title_keyword", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("topic", mode="before")
    @classmethod
    def _topic(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        keys = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(keys) != 1:
            names = [type(self).model_fields[k].alias or k for k in keys]
            raise ValueError(f"a condition needs exactly one key, got {names or 'none'}")
        return self

    def entity_ids(self) -> set[str]:
        ids = set(self.entity or ())
        for child in (*(self.all or ()), *(self.any or ()), *([self.not_] if self.not_ else [])):
            ids |= child.entity_ids()
        return ids

    def evaluate(self, article: TaggedArticle, evidence: Evidence) -> bool:
        """True when the article satisfies this node; matched leaves add to ``evidence``."""
        if self.all is not None:
            return all(c.evaluate(article, evidence) for c in self.all)
        if self.any is not None:
            hits = [c.evaluate(article, evidence) for c in self.any]  # every branch, for evidence
            return any(hits)
        if self.not_ is not None:
            return not self.not_.evaluate(article, Evidence())
        if self.entity is not None:
            found = [e.id for e in article.entities if e.id in self.entity]
            evidence.entities.extend(i for i in found if i and i not in evidence.entities)
            return bool(found)
        if self.label is not None:
            found = [e.name or e.text for e in article.entities if e.label in self.label]
            evidence.entities.extend(n for n in found if n not in evidence.entities)
            return bool(found)
        if self.topic is not None:
            ok = any(t.id == self.topic.id and t.score >= self.topic.min_score for t in article.topics)
            if ok and self.topic.id not in evidence.topics:
                evidence.topics.append(self.topic.id)
            return ok
        if self.source is not None:
            return article.source in self.source
        words = self.keyword if self.keyword is not None else self.title_keyword
        text = article.title if self.keyword is None else f"{article.title}\n{article.body}"
        found = [w for w in words or () if re.search(rf"\b{re.escape(w)}\b", text, re.I)]
        evidence.keywords.extend(w for w in found if w not in evidence.keywords)
        return bool(found)


class Rule(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    description: str = ""
    severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    suppress: float = Field(default=86400.0, description="Seconds during which a story alerts once.")
    when: Condition

    @field_validator("suppress", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float:
        return parse_window(value)


class RuleSet(Strict):
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {dupes}")
        return self


def load_rules(path: Path, known_entities: set[str] | None = None) -> list[Rule]:
    """Parse and validate a rules file; raise :class:`RulesError` saying what to fix."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from exc
    try:
        rules = RuleSet.model_validate(data if isinstance(data, dict) else {"rules": data}).rules
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {where}: {err['msg']}")
        raise RulesError(f"{path}: invalid rules:\n" + "\n".join(lines)) from None
    if known_entities is not None:
        for rule in rules:
            unknown = rule.when.entity_ids() - known_entities
            if unknown:
                raise RulesError(f"{path}: rule {rule.id!r} names unknown entity ids {sorted(unknown)}; "
                                 "add them to the knowledge base or fix the id")
    return rules


def alert_id(rule_id: str, story_id: str) -> str:
    """Deterministic alert id: the same rule and story always give the same id."""
    return hashlib.sha256(f"{rule_id}\x00{story_id}".encode()).hexdigest()[:24]


class RuleEngine:
    """Evaluates every rule on every tagged article; ``fired`` remembers suppression windows.

    ``fired`` maps ``rule id + story`` to when the alert fired and for which input message; in the
    worker it is a Faust table (so suppression survives restarts), in tests and tools a dict. The
    same input processed again (a replay after a crash) fires the same alert again, with the same
    id, rather than being suppressed by itself: consumers drop the repeat, nothing is lost.
    """

    def __init__(self, rules: list[Rule], fired: MutableMapping[str, dict] | None = None) -> None:
        self.rules = rules
        self.fired = fired if fired is not None else {}

    def evaluate(self, article: TaggedArticle, now: datetime | None = None) -> list[Alert]:
        now = now or utcnow()
        alerts = []
        for rule in self.rules:
            evidence = Evidence()
            if not rule.when.evaluate(article, evidence):
                continue
            key = f"{rule.id}:{article.story}"
            last = self.fired.get(key)
            replay = last is not None and bool(article.raw_ref) and last.get("ref") == article.raw_ref
            if last is not None and not replay and now.timestamp() - last["at"] < rule.suppress:
                continue
            self.fired[key] = {"at": now.timestamp(), "ref": article.raw_ref}
            alerts.append(Alert(
                id=alert_id(rule.id, article.story), rule_id=rule.id, severity=rule.severity,
                title=article.title, url=article.url, source=article.source, article_ids=[article.id],
                story_id=article.story_id,
                evidence=evidence, published_at=article.published_at, ingested_at=article.ingested_at,
                created_at=now,
            ))
        return alerts
