"""The local broker: reachable by clients, and driven by `streams kafka start|status|stop`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka


def test_broker_round_trip(bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send("smoke-test", b"hello").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer("smoke-test", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000)
    assert [r.value for r in consumer][:1] == [b"hello"]
    consumer.close()


def test_kafka_cli_start_status_stop(bootstrap: str, tmp_path: Path) -> None:
    home = Path(os.environ.get("STREAMS_HOME", Path.home() / ".cache" / "streams"))
    jars = tmp_path / "home"
    jars.mkdir()
    for lib in home.glob("kafka-[0-9]*"):  # reuse the resolved jars (kafka-<version>), not kafka-data
        (jars / lib.name).symlink_to(lib)
    env = {**os.environ, "STREAMS_HOME": str(jars)}
    env.pop("STREAMS_BROKER", None)

    def streams(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "streams", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    assert streams("kafka", "status").returncode == 1
    started = streams("kafka", "start")
    assert started.returncode == 0 and "running at 127.0.0.1:" in started.stdout, started.stderr
    try:
        assert streams("kafka", "status").returncode == 0
        topics = streams("topics")
        assert "articles.raw" in topics.stdout and "(created)" in topics.stdout, topics.stderr
    finally:
        stopped = streams("kafka", "stop")
    assert "stopped" in stopped.stdout
    assert streams("kafka", "status").returncode == 1
