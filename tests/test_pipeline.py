"""End to end on the real broker: the labelled feed through a running worker."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Pipeline, assert_conserved, make_feed

pytestmark = pytest.mark.kafka


def scrape_counters(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name):]] = float(value)
    return out


def test_feed_is_conserved_with_gold_reasons(pipeline: Pipeline, tmp_path: Path) -> None:
    feed = make_feed(tmp_path, limit=250)
    worker = pipeline.start_worker()
    worker.wait_ready()
    pipeline.publish(feed.lines)
    reader = pipeline.collect(expected=len(feed.lines))
    print(f"\n[kafka] produced {len(feed.lines)} messages, consumed {reader.accounted()} final events "
          f"({len(reader.events['articles.tagged'])} tagged, {len(reader.events['articles.duplicates'])} duplicates, "
          f"{len(reader.events['articles.deadletter'])} dead letters, {len(reader.events['alerts'])} alerts)")

    assert_conserved(feed.ids, reader)

    # dead letters carry the original bytes and the reasons the gold file names for those lines
    want = Counter((line.decode(), g["reason"]) for line, g in zip(feed.lines, feed.gold, strict=True)
                   if g["expect"] == "deadletter")
    got = Counter((d["original"], d["reason"]) for d in reader.events["articles.deadletter"])
    assert got == want

    # every duplicate points at an article that went on as unique
    unique_ids = {a["id"] for a in reader.events["articles.unique"]}
    assert all(d["duplicate_of"] in unique_ids for d in reader.events["articles.duplicates"])

    # the worker's counters agree with what arrived: in = out for every stage
    text = worker.scrape()
    ins = scrape_counters(text, "streams_articles_in_total")
    outs = scrape_counters(text, "streams_articles_out_total")
    assert ins['{stage="clean"}'] == len(feed.lines)
    for stage in ("clean", "dedup", "tag"):
        out_total = sum(v for k, v in outs.items() if f'stage="{stage}"' in k)
        assert out_total == ins[f'{{stage="{stage}"}}'], stage
    assert ins['{stage="dedup"}'] == len(reader.events["articles.clean"])

    # trend counting: entity.mentions carries every canonical mention of the tagged articles, each
    # entity on its one partition, and the bursts agent has consumed them all
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    from streams.stages.burst import mention_partition

    topic = pipeline.settings.topic("entity.mentions")
    consumer = KafkaConsumer(bootstrap_servers=pipeline.bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)
    consumer.seek_to_beginning()
    sent: Counter[str] = Counter()
    for record in consumer:
        for m in json.loads(record.value)["mentions"]:
            assert record.partition == mention_partition(m["entity"], len(parts))
            sent[m["entity"]] += m["count"]
    ends = consumer.end_offsets(parts)
    consumer.close()
    want = Counter()
    for article in reader.events["articles.tagged"]:
        for e in article["entities"]:
            if e["id"]:
                want[e["id"]] += e["count"]
    assert sent == want and len(want) > 20
    admin = KafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    committed = admin.list_group_offsets({pipeline.settings.app_id: parts})[pipeline.settings.app_id]
    admin.close()
    assert all(committed[tp].offset == ends[tp] for tp in parts if ends[tp]), (committed, ends)


def test_alert_events_match_their_schema_and_are_deterministic(pipeline: Pipeline) -> None:
    from streams.contract.events import Alert
    from streams.settings import DATA_DIR
    from streams.stages.alert import alert_id

    lines = [line for line in (DATA_DIR / "sample_feed.jsonl").read_bytes().split(b"\n") if line]
    pipeline.start_worker().wait_ready()
    pipeline.publish(lines)
    reader = pipeline.collect(expected=len(lines))
    assert reader.accounted() == len(lines)
    alerts = [Alert.model_validate(a) for a in reader.events["alerts"]]
    fired = {a.rule_id for a in alerts}
    assert {"russia-sanctions-payments", "crypto-regulation"} <= fired, fired
    rule_alerts = [a for a in alerts if a.kind == "rule"]
    for a in rule_alerts:  # once per rule and story: the id says which
        assert a.story_id and a.id == alert_id(a.rule_id, a.story_id)
    # the syndicated copy of the Russia story was merged by dedup, so that story alerts once per rule
    per_story = Counter((a.rule_id, a.story_id) for a in rule_alerts)
    assert max(per_story.values()) == 1
    # whichever of the original and its syndicated copy reached dedup first is the first sighting
    dup = {d["id"]: d["duplicate_of"] for d in reader.events["articles.duplicates"]}
    assert dup.get("partner-0101") == "wire-0001" or dup.get("wire-0001") == "partner-0101"
    assert json.loads(json.dumps(reader.events["alerts"][0]))["evidence"]

    # the tag agent alerts on a batch of articles from several partitions: each suppression record
    # is on its story's partition, the one whose owner restores it after a takeover
    from kafka import KafkaConsumer, TopicPartition

    def records(topic: str) -> list:
        consumer = KafkaConsumer(bootstrap_servers=pipeline.bootstrap, enable_auto_commit=False, group_id=None,
                                 consumer_timeout_ms=3000)
        consumer.assign([TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))])
        consumer.seek_to_beginning()
        got = list(consumer)
        consumer.close()
        return got

    story_partition = {r.key.decode(): r.partition for r in records(pipeline.settings.topic("articles.unique"))}
    suppressions = records(f"{pipeline.settings.app_id}-alerts-fired-changelog")
    assert len(suppressions) >= len(rule_alerts) and len(set(story_partition.values())) > 1
    for r in suppressions:
        story = json.loads(r.key).split(":", 1)[1]
        assert r.partition == story_partition[story], (story, r.partition)
