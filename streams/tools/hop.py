"""One Kafka hop through Faust: what the framework costs per record, and what each saving is worth.

``streams bench-hop`` writes N records of 2.7 kB to a fresh topic, then for each variant starts a
worker process whose one agent reads them from the beginning and sends each on to a second topic,
through the project's consumer; the worker reports its CPU time per record. Each variant puts back
one piece of Faust as released, so each saving is measured alone in one run (docs/benchmark.md):

* ``project``: what the pipeline's workers do;
* ``wait_first``: every record handed to the streams through Faust's four-task race;
* ``Topic.send``: outputs sent through ``Topic.send`` (its futures and sensor calls);
* ``Monitor``: Faust's Monitor keeping its per-event statistics;
* ``all three``: the three together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

VARIANTS: dict[str, frozenset[str]] = {
    "project": frozenset(),
    "wait_first": frozenset({"wait_first"}),
    "Topic.send": frozenset({"topic_send"}),
    "Monitor": frozenset({"monitor"}),
    "all three": frozenset({"wait_first", "topic_send", "monitor"}),
}
VALUE = b'{"id":"x","body":"' + b"a" * 2700 + b'"}'
PARTITIONS = 4
WARMUP = 100  # records before the clock starts: the group's join and the first fetches
REPORT = "bench-hop result: "  # the worker's one line (Faust sends a worker's stdout to its log, on stderr)


@dataclass(frozen=True)
class HopResult:
    variant: str
    records: int
    cpu_us_per_record: float
    seconds: float


def fill(bootstrap: str, topic_in: str, topic_out: str, records: int) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic_in, PARTITIONS, 1), NewTopic(topic_out, PARTITIONS, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)
    for i in range(records):
        producer.send(topic_in, key=str(i).encode(), value=VALUE, partition=i % PARTITIONS)
    producer.flush()
    producer.close()


def run_worker(bootstrap: str, topic_in: str, topic_out: str, records: int, variant: str) -> None:
    """The worker process: one Faust app, one agent; prints its one result line and exits."""
    import faust

    from streams.kafka.connection import WORKER_FLOW
    from streams.kafka.consumer import Consumer, Transport
    from streams.kafka.monitor import QuietMonitor

    stock = VARIANTS[variant]

    class RacingConsumer(Consumer):
        async def _hand_over(self, delivery) -> None:
            await self.wait_first(delivery, self.suspend_flow.wait())

    class RacingTransport(Transport):
        Consumer = RacingConsumer

    class App(faust.App):
        def _new_transport(self):
            return (RacingTransport if "wait_first" in stock else Transport)(self.conf.broker_consumer, self)

    app = App(f"hop-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
              value_serializer="raw", key_serializer="raw", topic_partitions=PARTITIONS,
              consumer_auto_offset_reset="earliest", web_enabled=False, **WORKER_FLOW,
              **({} if "monitor" in stock else {"Monitor": QuietMonitor}))
    source = app.topic(topic_in, value_type=bytes, key_type=bytes, partitions=PARTITIONS)
    sink = app.topic(topic_out, value_type=bytes, key_type=bytes, partitions=PARTITIONS)
    seen = [0]
    clock: dict[str, float] = {}

    @app.agent(source)
    async def hop(stream) -> None:
        async for event in stream.events():
            if "topic_send" in stock:
                await sink.send(key=event.key, value=event.value, partition=event.message.partition)
            else:
                await app.producer.send(topic_out, event.key, event.value, event.message.partition, None, None)
            seen[0] += 1
            if seen[0] == WARMUP:
                clock["cpu"], clock["wall"] = time.process_time(), time.perf_counter()
            if seen[0] == records:
                await app.producer.flush()
                measured = records - WARMUP
                print(REPORT + json.dumps({"cpu_us_per_record": (time.process_time() - clock["cpu"]) / measured * 1e6,
                                  "seconds": time.perf_counter() - clock["wall"]}), flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


def bench_hop(bootstrap: str, records: int, variants: list[str], timeout: float = 300,
              run: str | None = None) -> list[HopResult]:
    """Each variant in its own worker process over the same records, in the order given; the records
    go from ``bench-hop-<run>.in`` to ``bench-hop-<run>.out`` (``run``: random unless given)."""
    if records <= WARMUP:
        raise ValueError(f"use more than {WARMUP} records: the first {WARMUP} warm the worker up")
    run = run or uuid.uuid4().hex[:8]
    topic_in, topic_out = f"bench-hop-{run}.in", f"bench-hop-{run}.out"
    fill(bootstrap, topic_in, topic_out, records)
    results = []
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix="streams-bench-hop-") as workdir:  # Faust's data directory
            proc = subprocess.run([sys.executable, "-m", "streams.tools.hop", bootstrap, topic_in, topic_out,
                                   str(records), variant], capture_output=True, text=True, timeout=timeout,
                                  cwd=workdir)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if REPORT in line]
        if not lines:
            raise RuntimeError(f"the {variant} worker reported nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
        out = json.loads(lines[-1].split(REPORT, 1)[1])
        results.append(HopResult(variant, records, round(out["cpu_us_per_record"], 1), round(out["seconds"], 2)))
    return results


def print_table(results: list[HopResult], out=sys.stdout) -> None:
    base = results[0].cpu_us_per_record
    print(f"{'variant':<12} {'CPU µs/record':>14} {'vs first':>9} {'seconds':>8}", file=out)
    for r in results:
        print(f"{r.variant:<12} {r.cpu_us_per_record:>14.1f} {r.cpu_us_per_record / base:>8.2f}x {r.seconds:>8.2f}",
              file=out)


if __name__ == "__main__":  # the worker process
    bootstrap_, topic_in_, topic_out_, records_, variant_ = sys.argv[1:6]
    run_worker(bootstrap_, topic_in_, topic_out_, int(records_), variant_)
