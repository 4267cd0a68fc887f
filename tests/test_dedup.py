"""Dedup stage: exact and near duplicates, the threshold, retention, and state in plain mappings."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from streams.contract.events import CleanArticle
from streams.stages.clean import content_hash
from streams.stages.dedup import Deduplicator, jaccard, mark_duplicate, mark_unique, shingles
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


def long_story(stories: list[dict]) -> dict:
    """A story whose first three paragraphs are under a third of it: an excerpt is then no look-alike."""
    def lead_share(s: dict) -> float:
        return len(" ".join(s["body"].split("\n\n")[:3]).split()) / len(s["body"].split())

    return next(x for x in stories if len(x["body"].split("\n\n")) >= 8 and lead_share(x) < 0.33)


def test_an_excerpt_after_the_story_is_a_duplicate_of_it(stories) -> None:
    """An aggregator's excerpt - the headline and the first paragraphs - has a low Jaccard with the
    full story; the lead index brings the pair up and the signatures show it contained."""
    s = long_story(stories)
    paras = s["body"].split("\n\n")
    for n in (1, 2, 3):
        d = fresh()
        d.check(article("full", s["title"], s["body"]))
        excerpt = article(f"excerpt-{n}", s["title"], "\n\n".join(paras[:n]))
        truth = jaccard(set(shingles(s["title"], s["body"])), set(shingles(excerpt.title, excerpt.body)))
        assert truth < 0.5  # not a look-alike by the reference definition
        v = d.check(excerpt)
        assert (v.kind, v.duplicate_of, v.is_duplicate) == ("excerpt", "full", True), n
        assert mark_duplicate(excerpt, v).duplicate_kind == "excerpt"


def test_a_fuller_version_after_its_excerpt_supersedes_it_and_is_not_dropped(stories) -> None:
    d = fresh()
    s = long_story(stories)
    paras = s["body"].split("\n\n")
    first_take = article("take-1", s["title"], "\n\n".join(paras[:2])).model_copy(update={"raw_ref": "0:1"})
    assert d.check(first_take).kind is None
    full = article("full", s["title"], s["body"]).model_copy(update={"raw_ref": "0:2"})
    v = d.check(full)
    assert (v.kind, v.supersedes, v.is_duplicate, v.same_story) == ("fuller", "take-1", False, True)
    unique = mark_unique(full, v)
    assert unique.supersedes == "take-1" and unique.story == "take-1" and unique.id == "full"
    assert d.check(full).kind == "fuller"  # a replay keeps its verdict
    # later copies of the full text name the story's first sighting
    assert d.check(article("copy", s["title"], s["body"])).duplicate_of == "take-1"
    assert d.check(article("excerpt", s["title"], paras[0])).duplicate_of == "take-1"


def test_stories_that_share_a_lead_sentence_are_not_copies(stories) -> None:
    """Related coverage can open alike; containment needs nearly all of the smaller text inside."""
    d = fresh()
    s, t = stories[11], stories[12]
    lead = s["body"].split("\n\n")[0]
    d.check(article("a", s["title"], s["body"]))
    other = "\n\n".join([lead, *t["body"].split("\n\n")[1:]])
    v = d.check(article("b", t["title"], other))
    assert not v.same_story, v


def test_records_of_the_earlier_layout_still_count(stories) -> None:
    """A worker upgraded over an existing changelog reads the records written before leads were kept."""
    import base64
    import struct

    s = stories[13]
    sigs: dict[str, str] = {}
    d = Deduplicator(sigs)
    d.check(article("a", s["title"], s["body"]).model_copy(update={"raw_ref": "0:5"}))
    record = d._unpack(sigs["a"])
    parts = [record.root.encode(), record.ref.encode(), record.content_hash.encode()]
    old = struct.pack("<dIHHH", record.seen_at, record.size, *map(len, parts)) + b"".join(parts)
    sigs["a"] = base64.b64encode(old + record.signature.tobytes()).decode()
    again = Deduplicator(sigs)
    assert again.check(article("b", "Other", s["body"])).kind == "exact"
    paras = s["body"].split("\n\n")
    assert again.check(article("c", s["title"], "\n\n".join(paras[:-1]))).duplicate_of == "a"
    assert not again.check(article("a", s["title"], s["body"]).model_copy(update={"raw_ref": "0:5"})).same_story
