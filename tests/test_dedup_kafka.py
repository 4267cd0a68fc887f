"""Dedup on the real broker: across partitions and workers, and across a worker restart."""

from __future__ import annotations

import json
import time

import pytest

from streams.contract.topics import MAX_MESSAGE_BYTES
from streams.tools.runner import wait_for_group
from tests.conftest import Pipeline, make_feed

pytestmark = pytest.mark.kafka


def story_pairs(feed, n: int) -> list[tuple[bytes, bytes]]:
    """(first sighting, near-duplicate copy) message pairs from the labelled feed."""
    by_id = {g["id"]: line for line, g in zip(feed.lines, feed.gold, strict=True) if g.get("id")}
    pairs = []
    for line, g in zip(feed.lines, feed.gold, strict=True):
        if g.get("duplicate_kind") == "near" and g["duplicate_of"] in by_id:
            pairs.append((by_id[g["duplicate_of"]], line))
    return pairs[:n]


def publish_to(pipeline: Pipeline, items: list[tuple[bytes, int]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all", max_request_size=MAX_MESSAGE_BYTES)
    for value, partition in items:
        producer.send(pipeline.settings.topic("articles.raw"), value=value, partition=partition)
    producer.flush()
    producer.close()


def wait_for_clean_on_all(pipeline: Pipeline, timeout: float = 60) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = []
        for w in pipeline.workers:
            text = w.scrape()
            counts.append(sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines()
                              if x.startswith('streams_articles_in_total{stage="clean"}')))
        if all(c > 0 for c in counts):
            return counts
        time.sleep(0.5)
    return counts


def test_near_duplicates_on_other_partitions_and_workers_are_caught(pipeline: Pipeline, tmp_path) -> None:
    feed = make_feed(tmp_path, limit=400)
    pairs = story_pairs(feed, 12)
    assert len(pairs) >= 8
    w1, w2 = pipeline.start_worker(), pipeline.start_worker()
    w1.wait_ready()
    w2.wait_ready()
    wait_for_group(pipeline.settings, pipeline.bootstrap, 2)
    # first sightings on partitions 0/1, their copies on partitions 2/3
    publish_to(pipeline, [(first, i % 2) for i, (first, _) in enumerate(pairs)])
    pipeline.collect(expected=len(pairs))  # the first sightings are through, so "first" is well defined
    publish_to(pipeline, [(copy, 2 + i % 2) for i, (_, copy) in enumerate(pairs)])
    reader = pipeline.collect(expected=2 * len(pairs))
    assert all(c > 0 for c in wait_for_clean_on_all(pipeline)), "both workers should have cleaned messages"
    firsts = {json.loads(f)["id"] for f, _ in pairs}
    dups = {d["id"]: d for d in reader.events["articles.duplicates"]}
    for first, copy in pairs:
        copy_id = json.loads(copy)["id"]
        assert copy_id in dups, f"{copy_id} was not caught"
        assert dups[copy_id]["duplicate_of"] == json.loads(first)["id"]
        # "exact" where cleaning left the very same text under another id
        assert dups[copy_id]["duplicate_kind"] in ("near", "exact")
    assert {a["id"] for a in reader.events["articles.unique"]} == firsts


def wire(article_id: str, title: str, paragraphs: list[str]) -> bytes:
    """A clean-text article, as a wire or an aggregator sends one."""
    return json.dumps({"id": article_id, "url": f"https://wire.example/{article_id}", "source": "wire.example",
                       "title": title, "body": "\n\n".join(paragraphs),
                       "published_at": "2026-12-02T06:00:00Z"}).encode()


def test_dedup_state_survives_a_worker_restart(pipeline: Pipeline, tmp_path) -> None:
    """Near copies, an excerpt and a fuller version, on both sides of a restart."""
    feed = make_feed(tmp_path, limit=400)
    pairs = story_pairs(feed, 5)
    stories = [g for g in feed.gold if g.get("expect") == "article" and g["body"].count("\n\n") >= 7]
    full, short = stories[0], stories[1]
    full_paras, short_paras = full["body"].split("\n\n"), short["body"].split("\n\n")
    worker = pipeline.start_worker()
    worker.wait_ready()
    pipeline.publish([first for first, _ in pairs] + [wire("take-1", short["title"], short_paras[:2]),
                                                       wire("story-1", full["title"], full_paras)])
    before = pipeline.collect(expected=len(pairs) + 2)
    assert len(before.events["articles.unique"]) == len(pairs) + 2
    worker.stop()

    # a new process under a new identity (another web port): it takes over the old member's partitions,
    # its tables (in memory) come back from their changelogs, and the second batch is already waiting
    pipeline.start_worker()
    pipeline.publish([copy for _, copy in pairs] + [wire("story-2", short["title"], short_paras),  # fuller
                                                    wire("excerpt-1", full["title"], full_paras[:2])])
    after = pipeline.collect(expected=2 * len(pairs) + 4)
    dups = {d["id"]: d for d in after.events["articles.duplicates"]}
    for first, copy in pairs:
        assert dups[json.loads(copy)["id"]]["duplicate_of"] == json.loads(first)["id"]
    assert (dups["excerpt-1"]["duplicate_of"], dups["excerpt-1"]["duplicate_kind"]) == ("story-1", "excerpt")
    fuller = [a for a in after.events["articles.tagged"] if a["id"] == "story-2"]
    assert fuller and fuller[0]["supersedes"] == "take-1", "a fuller version goes on, naming its excerpt"
