"""``streams audit`` on the real broker: waiting, done, and an input committed past with no outcome."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from streams.contract.topics import RAW
from streams.kafka import connection
from streams.tools.audit import audit
from tests.conftest import Feed, Pipeline


def run_audit(pipeline: Pipeline) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAMS_BROKER": pipeline.bootstrap, "STREAMS_TOPIC_PREFIX": pipeline.settings.topic_prefix,
           "STREAMS_APP_ID": pipeline.settings.app_id}
    return subprocess.run([sys.executable, "-m", "streams", "audit"], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.kafka
def test_audit_tells_waiting_done_and_lost_apart(pipeline: Pipeline, full_feed: Feed) -> None:
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    refs = pipeline.publish(full_feed.lines[:20])
    waiting = audit(pipeline.settings, pipeline.bootstrap)
    assert (waiting.inputs, len(waiting.waiting), waiting.done, waiting.lost) == (20, 20, 0, {})

    # the group commits past the first input of a partition that nobody processed: a loss (the
    # producer sends unkeyed, so which partitions get inputs varies from run to run)
    partition, offset = min(tuple(map(int, r.split(":"))) for r in refs)
    skipped = f"{partition}:{offset}"
    from kafka.errors import CoordinatorNotAvailableError, NotCoordinatorError

    group = connection.consumer(pipeline.settings, bootstrap=pipeline.bootstrap, group_id=pipeline.settings.app_id,
                                enable_auto_commit=False)
    past = OffsetAndMetadata(offset + 1, "", -1)
    deadline = time.monotonic() + 60
    try:
        while True:  # a new group's coordinator takes a moment to be elected
            try:
                group.commit({TopicPartition(pipeline.settings.topic(RAW), partition): past})
                break
            except (CoordinatorNotAvailableError, NotCoordinatorError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        group.close()
    found = run_audit(pipeline)
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"lost {skipped}: the clean stage committed past it" in found.stdout

    worker = pipeline.start_worker(STREAMS_SPACY_MODEL="none")
    worker.wait_ready()
    pipeline.collect(expected=19, timeout=120, quiet=30)
    after = audit(pipeline.settings, pipeline.bootstrap)
    assert after.done == 19 and list(after.lost) == [skipped] and not after.waiting and not after.doubled
