"""Dedup stage: exact and near duplicates, the threshold, retention, and state in plain mappings."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from streams.events import CleanArticle
from streams.stages.clean import content_hash
from streams.stages.dedup import Deduplicator, jaccard, mark_duplicate, shingles
from tests.conftest import CORPUS, require

T0 = datetime(2026, 9, 5, tzinfo=UTC)


def article(aid: str, title: str, body: str, at: datetime = T0) -> CleanArticle:
    return CleanArticle(id=aid, url=f"https://x.example/{aid}", source="x.example", title=title, body=body,
                        content_type="text/plain", published_at=at, ingested_at=at,
                        content_hash=content_hash(title, body), word_count=len(body.split()))


@pytest.fixture(scope="module")
def stories() -> list[dict]:
    require(CORPUS.exists(), "the shared corpus")
    docs = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    return random.Random(3).sample([d for d in docs if len(d["body"].split()) > 250], 40)


def fresh(**kw) -> Deduplicator:
    return Deduplicator({}, **kw)


def test_first_sighting_then_exact_copy_under_another_id(stories) -> None:
    d = fresh()
    s = stories[0]
    assert not d.check(article("a", s["title"], s["body"])).is_duplicate
    v = d.check(article("b", "Another headline", s["body"]))
    assert (v.kind, v.duplicate_of, v.similarity) == ("exact", "a", 1.0)


def test_syndicated_copy_is_a_near_duplicate_of_the_first(stories) -> None:
    d = fresh()
    s = next(x for x in stories if len(x["body"].split("\n\n")) >= 8)
    paras = s["body"].split("\n\n")
    d.check(article("a", s["title"], s["body"]))
    edited = "\n\n".join([f"LONDON (Wire) - {paras[0]}", *paras[1:-1]])
    truth = jaccard(set(shingles(s["title"], s["body"])), set(shingles("UPDATE 1-" + s["title"], edited)))
    assert truth >= 0.5  # the edit keeps it the same story by the reference definition
    v = d.check(article("b", "UPDATE 1-" + s["title"], edited))
    assert v.kind == "near" and v.duplicate_of == "a" and v.similarity >= 0.5
    # a copy of the copy still names the first sighting of the story
    v2 = d.check(article("c", s["title"], edited.replace("(Wire)", "(Agency)")))
    assert v2.duplicate_of == "a"


def test_unrelated_stories_are_not_duplicates(stories) -> None:
    d = fresh()
    verdicts = [d.check(article(f"s{i}", s["title"], s["body"])) for i, s in enumerate(stories)]
    assert not any(v.is_duplicate for v in verdicts)


def test_verification_follows_the_true_jaccard(stories) -> None:
    """Copies with half the text replaced straddle the threshold; the verdict tracks the truth."""
    s = stories[2]
    words = s["body"].split()
    other = stories[3]["body"].split()
    agree = 0
    trials = 0
    for keep in (0.3, 0.45, 0.8, 0.95):
        n = int(len(words) * keep)
        mixed = " ".join(words[:n] + other[: len(words) - n])
        truth = jaccard(set(shingles(s["title"], s["body"])), set(shingles(s["title"], mixed)))
        d = fresh()
        d.check(article("a", s["title"], s["body"]))
        v = d.check(article("b", s["title"], mixed))
        trials += 1
        agree += v.is_duplicate == (truth >= 0.5)
    assert agree == trials


def test_threshold_is_configurable(stories) -> None:
    s = stories[4]
    words = s["body"].split()
    half = " ".join(words[: len(words) * 6 // 10] + stories[5]["body"].split()[: len(words) * 4 // 10])
    loose, strict = fresh(threshold=0.3), fresh(threshold=0.9)
    for d in (loose, strict):
        d.check(article("a", s["title"], s["body"]))
    assert loose.check(article("b", s["title"], half)).is_duplicate
    assert not strict.check(article("b", s["title"], half)).is_duplicate


def test_state_lives_in_the_mapping_it_is_given(stories) -> None:
    """A new Deduplicator over the same mapping (a restarted worker over its recovered table)
    rebuilds its indexes from it: near and exact copies of what the first one saw are found."""
    sigs: dict[str, str] = {}
    s = stories[6]
    Deduplicator(sigs).check(article("a", s["title"], s["body"]))
    paras = s["body"].split("\n\n")
    v = Deduplicator(sigs).check(article("b", s["title"], "\n\n".join(paras[:-1])))
    assert v.kind == "near" and v.duplicate_of == "a"
    assert Deduplicator(sigs).check(article("c", s["title"], s["body"])).kind == "exact"


def test_indexes_follow_a_mapping_changed_underneath(stories) -> None:
    """A rebalance hands a worker a table another worker filled: the next check sees its stories."""
    sigs: dict[str, str] = {}
    mine, other = Deduplicator(sigs), Deduplicator(dict(sigs))
    s = stories[3]
    other.check(article("elsewhere", s["title"], s["body"]))
    sigs.update(other.signatures)  # what recovery from the changelog does to the table
    assert mine.check(article("here", s["title"], s["body"])).duplicate_of == "elsewhere"


def test_retention_expires_old_articles(stories) -> None:
    d = fresh(retention_seconds=86400)
    s, t = stories[7], stories[8]
    d.check(article("old", s["title"], s["body"], T0))
    d.check(article("new", t["title"], t["body"], T0 + timedelta(hours=30)))
    assert d.expire((T0 + timedelta(hours=31)).timestamp()) == 1
    assert "old" not in d.signatures and "new" in d.signatures
    assert all(v != "old" for v in d.bands.values()) and all(v != "old" for v in d.hashes.values())
    assert not d.check(article("again", s["title"], s["body"], T0 + timedelta(hours=32))).is_duplicate


def test_duplicate_event_carries_first_sighting(stories) -> None:
    s = stories[9]
    d = fresh()
    first = article("a", s["title"], s["body"])
    d.check(first)
    copy = article("b", s["title"], s["body"])
    event = mark_duplicate(copy, d.check(copy))
    assert event.duplicate_of == "a" and event.duplicate_kind == "exact" and event.id == "b"


def test_a_replayed_input_gets_its_first_verdict_and_a_resend_is_a_duplicate(stories) -> None:
    """At-least-once: after a crash the same input (same raw_ref) comes again; a producer's resend
    of the same message is a new input (another raw_ref)."""
    d = fresh()
    s = stories[10]
    first = article("a", s["title"], s["body"]).model_copy(update={"raw_ref": "0:7"})
    assert not d.check(first).is_duplicate
    assert not d.check(first).is_duplicate  # replay: still the first sighting
    resend = first.model_copy(update={"raw_ref": "1:42"})
    v = d.check(resend)
    assert v.kind == "exact" and v.duplicate_of == "a"
