"""Recovery on the real broker, as an operator meets it: two workers under a crash, a stall and a
crash of both, while a feed flows; and a local broker that keeps its data across a restart."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from streams.contract.topics import ensure_topics
from streams.settings import Settings
from streams.tools.broker import data_dir, start_background, stop_background
from streams.tools.runner import wait_for_group
from tests.conftest import Feed, Pipeline, assert_conserved_by_ref, require

FINAL = ("articles.tagged", "articles.duplicates", "articles.deadletter")


def longest_silence(published: list[float], done: list[float]) -> float:
    """The longest stretch with inputs waiting and no outcome produced, in seconds: between two
    outcomes (or an input and the next outcome) while more inputs had been published than had
    outcomes."""
    events = sorted([(t, 1) for t in published] + [(t, -1) for t in done])
    waiting, since, longest = 0, None, 0.0
    for t, step in events:
        if step < 0:
            if waiting > 0 and since is not None:
                longest = max(longest, t - since)
            since = t
        elif waiting == 0:
            since = t  # work starts waiting now
        waiting = max(0, waiting + step)
    return longest


@pytest.mark.kafka
def test_two_workers_recover_within_seconds_from_a_crash_a_stall_and_a_crash_of_both(
        pipeline: Pipeline, full_feed: Feed) -> None:
    lines = full_feed.lines[:900]
    env = {"STREAMS_SPACY_MODEL": "none"}
    a, b = pipeline.start_worker(**env), pipeline.start_worker(**env)
    a.wait_ready()
    b.wait_ready()
    wait_for_group(pipeline.settings, pipeline.bootstrap, 2)

    refs: list[str] = []
    sent_at: list[float] = []

    def publish() -> None:  # 40 articles a second, as in the run
        for i in range(0, len(lines), 10):
            refs.extend(pipeline.publish(lines[i:i + 10]))
            sent_at.extend([time.time()] * len(lines[i:i + 10]))
            time.sleep(0.25)

    feeder = threading.Thread(target=publish)
    feeder.start()
    time.sleep(4)
    a.kill()  # kill -9, restarted 5 s later under the same identity (its web port)
    time.sleep(5)
    a.start()
    time.sleep(2)
    assert b.proc is not None
    os.kill(b.proc.pid, signal.SIGSTOP)  # a stall: no heartbeats, no progress, for 15 s
    time.sleep(15)
    os.kill(b.proc.pid, signal.SIGCONT)
    feeder.join()
    a.kill()  # both die at once, and come back
    b.kill()
    a.start()
    b.start()

    reader = pipeline.collect(expected=len(lines), timeout=240)
    repeats = assert_conserved_by_ref(refs, reader)
    done = sorted(t for topic in FINAL for t in reader.times[topic])
    silence = longest_silence(sent_at, done)
    print(f"\n[recovery] crash, stall and crash of both with 900 inputs at 40/s: 0 lost, 0 in two places, "
          f"{repeats} replayed repeats; longest stretch with work waiting and no outcome {silence:.1f} s")
    assert silence <= 40, f"no outcome for {silence:.1f} s while work waited (goal: 30 s)"


def test_longest_silence_counts_only_while_work_waits() -> None:
    assert longest_silence([0, 1], [2, 3]) == 2  # the first input waited 2 s for the first outcome
    assert longest_silence([0, 10], [1, 11]) == 1  # idle between: nothing waited
    assert longest_silence([0, 1, 2], [3, 20, 21]) == 17


@pytest.mark.kafka
def test_the_local_broker_keeps_topics_offsets_and_changelogs_across_a_restart(
        tmp_path: Path, full_feed: Feed) -> None:
    """`streams kafka stop` then `start`: the same address, every topic, the group's committed
    offsets and the dedup changelog; a worker continues where it stopped."""
    require(shutil.which("java") is not None, "Java 17+ for the local broker")
    home = tmp_path / "home"
    home.mkdir()
    cache = Settings().home
    for jars in cache.glob("kafka-[0-9]*"):  # the jars Maven fetched once (kafka-<version>), not kafka-data
        (home / jars.name).symlink_to(jars)
    settings = Settings(home=home, app_id="streams-keep", partitions=2)
    state = start_background(settings)
    bootstrap = state["bootstrap"]
    run = Pipeline(settings.model_copy(update={"broker": bootstrap}), bootstrap, tmp_path)
    try:
        ensure_topics(run.settings, bootstrap)
        lines = full_feed.lines[:120]
        worker = run.start_worker(STREAMS_SPACY_MODEL="none")
        worker.wait_ready()
        first = run.publish(lines[:60])
        run.collect(expected=60)
        worker.stop()
        stop_background(settings)
        assert (data_dir(settings) / "logs" / "meta.properties").exists()

        again = start_background(settings)
        assert again["bootstrap"] == bootstrap and again["pid"] != state["pid"]
        # a copy of an article from before the restart: dedup remembers it (its changelog came back)
        copy = next(line for line, gold in zip(lines[:60], full_feed.gold, strict=False) if gold["expect"] == "article")
        # as operators restart: a new process under a new identity (another web port), its tables in
        # memory, and the second batch published while it starts and takes the old member's partitions
        second = run.publish([*lines[60:80]])
        run.start_worker(STREAMS_SPACY_MODEL="none").wait_ready()
        second += run.publish([*lines[80:], copy])
        reader = run.collect(expected=len(first) + len(second))
        conserved = assert_conserved_by_ref(first + second, reader)
        # what was done before the restart was not done again: offsets were kept
        assert conserved <= 5, f"{conserved} events repeated after the restart"
        duplicate_refs = {e["raw_ref"] for e in reader.events["articles.duplicates"]}
        assert second[-1] in duplicate_refs, "the copy of an article seen before the restart was not a duplicate"
        worker.stop()
    finally:
        run.stop()
        stop_background(settings)


LOOPS = int(os.environ.get("STREAMS_TEST_LOOPS", "3"))
STAGGER = float(os.environ.get("STREAMS_TEST_STAGGER", "3"))


@pytest.mark.kafka
def test_a_backlog_at_start_up_and_on_takeover_is_never_skipped(bootstrap: str, tmp_path: Path,
                                                                full_feed: Feed) -> None:
    """What operators do after an outage, a deploy or a scale-up, repeated on new topics each loop
    (partitions never committed yet): inputs wait before any worker runs, two fresh workers start at
    once while more arrive, one is killed (-9) and its partitions, with work waiting, move to the
    other. ``STREAMS_TEST_SEEK_DELAY`` widens the window after recovery's seek; with Faust's stock
    consumer (``STREAMS_TEST_STOCK_CONSUMER=1``) this loses inputs (docs/upstream-offset-tracking.md)."""
    widen = {"STREAMS_SPACY_MODEL": "none", "STREAMS_TEST_SEEK_DELAY": "0.5"}
    lost: list[int] = []
    outcomes: list[str] = []
    for i in range(LOOPS):
        run = uuid.uuid4().hex[:8]
        settings = Settings(broker=bootstrap, topic_prefix=f"t{run}.", app_id=f"streams-test-{run}", partitions=4)
        ensure_topics(settings, bootstrap)
        loop = Pipeline(settings, bootstrap, tmp_path / f"loop-{i}")
        lines = full_feed.lines[i * 400:(i + 1) * 400]
        try:
            refs = loop.publish(lines[:200])  # waiting before any worker starts
            a = loop.start_worker(**widen)
            refs += loop.publish(lines[200:300])  # arriving while it starts
            time.sleep(STAGGER)  # a second fresh member joins while the first is taking its first batches
            b = loop.start_worker(**widen)
            a.wait_ready()
            b.wait_ready()
            time.sleep(1)
            a.kill()  # b takes a's partitions over once the group evicts a, with work waiting on them
            refs += loop.publish(lines[300:])
            reader = loop.collect(expected=len(refs), timeout=180, quiet=45)
        finally:
            loop.stop()
        try:
            assert_conserved_by_ref(refs, reader)
            outcomes.append("ok")
        except AssertionError as exc:
            outcomes.append(str(exc))
        seen = {e.get("raw_ref") for topic in FINAL for e in reader.events[topic]}
        lost.append(sum(r not in seen for r in refs))
        print(f"[takeover] loop {i + 1}: {len(refs)} inputs, {lost[-1]} lost")
    print(f"\n[takeover] {LOOPS} loops (backlog at start-up, two fresh workers, kill -9 and takeover): "
          f"lost per loop {lost}")
    assert outcomes == ["ok"] * LOOPS, outcomes
