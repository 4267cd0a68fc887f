"""Alert rules: each operator, suppression, deterministic ids, and invalid files with clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.contract.events import Entity, TaggedArticle, Topic
from streams.settings import get_settings
from streams.stages.alert import RuleEngine, RulesError, alert_id, load_rules, parse_window

NOW = datetime(2026, 9, 5, 12, tzinfo=UTC)


def article(aid="a1", source="x.example", title="Russia allows Bitcoin for foreign trade", body="Body text.",
            entities=(), topics=()) -> TaggedArticle:
    return TaggedArticle(id=aid, url=f"https://{source}/{aid}", source=source, title=title, body=body,
                         content_type="text/plain", published_at=NOW, ingested_at=NOW, content_hash="h",
                         word_count=5, entities=list(entities), topics=list(topics))


RU = Entity(text="Russia", label="GPE", id="country/RU", name="Russia", start=0)
BTC = Entity(text="Bitcoin", label="ASSET", id="asset/btc", name="Bitcoin", start=14)
PUTIN = Entity(text="Putin", label="PERSON", id="person/vladimir-putin", name="Vladimir Putin", start=30)
SANCTIONS = Topic(id="sanctions", score=1.5, phrases=["sanction*"])


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def engine(tmp_path: Path, when: str, suppress: str = "1h") -> RuleEngine:
    text = f"rules:\n  - id: r1\n    severity: high\n    suppress: {suppress}\n    when: {when}\n"
    return RuleEngine(load_rules(rules_file(tmp_path, text)))


@pytest.mark.parametrize(("when", "art", "fires"), [
    ("{entity: country/RU}", article(entities=[RU]), True),
    ("{entity: country/RU}", article(entities=[BTC]), False),
    ("{entity: [country/CN, asset/btc]}", article(entities=[BTC]), True),
    ("{label: PERSON}", article(entities=[PUTIN]), True),
    ("{label: PERSON}", article(entities=[RU]), False),
    ("{topic: sanctions}", article(topics=[SANCTIONS]), True),
    ("{topic: {id: sanctions, min_score: 2}}", article(topics=[SANCTIONS]), False),
    ("{source: [x.example, y.example]}", article(), True),
    ("{source: z.example}", article(), False),
    ("{keyword: foreign trade}", article(), True),
    ("{keyword: bitcoin}", article(), True),
    ("{keyword: coin}", article(), False),
    ("{title_keyword: body}", article(), False),
    ("{keyword: body}", article(), True),
    ("{all: [{entity: country/RU}, {entity: asset/btc}]}", article(entities=[RU, BTC]), True),
    ("{all: [{entity: country/RU}, {entity: asset/btc}]}", article(entities=[RU]), False),
    ("{any: [{entity: country/CN}, {entity: asset/btc}]}", article(entities=[BTC]), True),
    ("{any: [{entity: country/CN}, {topic: sanctions}]}", article(entities=[BTC]), False),
    ("{all: [{entity: country/RU}, {not: {source: x.example}}]}", article(entities=[RU]), False),
    ("{all: [{entity: country/RU}, {not: {source: y.example}}]}", article(entities=[RU]), True),
])
def test_rule_operators(tmp_path: Path, when: str, art: TaggedArticle, fires: bool) -> None:
    assert bool(engine(tmp_path, when).evaluate(art, NOW)) is fires


def test_alert_carries_evidence_and_a_deterministic_id(tmp_path: Path) -> None:
    e = engine(tmp_path, "{all: [{entity: country/RU}, {any: [{topic: sanctions}, {keyword: bitcoin}]}]}")
    [a] = e.evaluate(article(entities=[RU, BTC], topics=[SANCTIONS]), NOW)
    assert a.id == alert_id("r1", "a1") and a.rule_id == "r1" and a.severity == "high"
    assert a.evidence.entities == ["country/RU"] and a.evidence.topics == ["sanctions"]
    assert a.evidence.keywords == ["bitcoin"] and a.article_ids == ["a1"]
    assert a.published_at == NOW and a.created_at == NOW
    assert alert_id("r1", "a1") != alert_id("r1", "a2") != alert_id("r2", "a1")


def test_suppression_window_alerts_once_per_story(tmp_path: Path) -> None:
    e = engine(tmp_path, "{entity: country/RU}", suppress="30m")
    art = article(entities=[RU])
    assert len(e.evaluate(art, NOW)) == 1
    assert e.evaluate(art, NOW + timedelta(minutes=10)) == []
    assert len(e.evaluate(article(aid="other", entities=[RU]), NOW + timedelta(minutes=10))) == 1
    assert len(e.evaluate(art, NOW + timedelta(minutes=31))) == 1


def test_windows() -> None:
    assert parse_window("90s") == 90 and parse_window("30m") == 1800 and parse_window("7d") == 7 * 86400
    with pytest.raises(ValueError, match="bad window"):
        parse_window("soon")


@pytest.mark.parametrize(("text", "message"), [
    ("rules:\n  - id: r1\n    when: {entity: country/RU}\n    colour: red\n", "colour"),
    ("rules:\n  - id: r1\n    suppress: tomorrow\n    when: {entity: country/RU}\n", "bad window"),
    ("rules:\n  - id: r1\n    when: {entity: country/RU, topic: sanctions}\n", "exactly one key"),
    ("rules:\n  - id: r1\n    when: {regex: '.*'}\n", "regex"),
    ("rules:\n  - id: r1\n    severity: urgent\n    when: {entity: country/RU}\n", "severity"),
    ("rules:\n  - id: r1\n    when: {entity: country/RU}\n  - id: r1\n    when: {entity: country/RU}\n", "unique"),
    ("rules: [\n", "not valid YAML"),
    ("rules:\n  - id: r1\n    when: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
])
def test_invalid_rule_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        load_rules(rules_file(tmp_path, text))


def test_unknown_entity_ids_are_rejected_against_the_knowledge_base(tmp_path: Path) -> None:
    path = rules_file(tmp_path, "rules:\n  - id: r1\n    when: {any: [{entity: country/RU}, {entity: org/nope}]}\n")
    with pytest.raises(RulesError, match="org/nope"):
        load_rules(path, known_entities={"country/RU"})


def test_default_rules_file_is_valid_against_the_default_knowledge_base() -> None:
    from streams.stages.tag import KnowledgeBase

    s = get_settings()
    rules = load_rules(s.rules, set(KnowledgeBase.load(s.knowledge_base).entities))
    assert len(rules) >= 6 and len({r.id for r in rules}) == len(rules)


def test_a_replayed_article_fires_the_same_alert_again_but_a_new_copy_is_suppressed(tmp_path: Path) -> None:
    e = engine(tmp_path, "{entity: country/RU}", suppress="1h")
    art = article(entities=[RU]).model_copy(update={"raw_ref": "2:10"})
    [first] = e.evaluate(art, NOW)
    [again] = e.evaluate(art, NOW + timedelta(minutes=1))  # the same input after a crash
    assert again.id == first.id
    assert e.evaluate(art.model_copy(update={"raw_ref": "2:11"}), NOW + timedelta(minutes=2)) == []
