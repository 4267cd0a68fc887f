"""The benchmark: its articles are unique past the corpus size, and a small run on the real broker
produces the report, the JSON file and the chart, with figures that hang together."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.stages.clean import clean_message
from streams.stages.dedup import Deduplicator
from streams.tools.bench import bench_articles, run_bench
from tests.conftest import CORPUS, require


def test_bench_articles_stay_unique_past_the_corpus_size() -> None:
    require(CORPUS.exists(), f"{CORPUS} is needed")
    corpus_size = sum(1 for line in CORPUS.read_text().splitlines() if line.strip())
    messages = bench_articles(CORPUS, corpus_size + 600)
    dedup = Deduplicator.from_settings(Settings(), {})
    now = datetime.now(UTC)
    verdicts = [dedup.check(clean_message(m, now, 1_000_000, f"0:{i}")) for i, m in enumerate(messages)]
    extra = verdicts[corpus_size:]
    assert len({json.loads(m)["id"] for m in messages}) == len(messages)
    assert sum(v.is_duplicate for v in extra) <= 0.01 * len(extra)  # new text, not copies of the corpus


@pytest.mark.kafka
def test_a_small_bench_run_reports_throughput_latency_and_the_floor(
        bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(CORPUS.exists(), f"{CORPUS} is needed")
    report = run_bench(CORPUS, articles=300, workers=[1], fixed_rate=50, fixed_seconds=2, out_dir=tmp_path,
                       as_json=True, timeout=180, settings=Settings(broker=bootstrap))
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == report == json.loads((tmp_path / "bench.json").read_text())
    assert report["articles"] == 300 and report["workers"] == 1
    assert report["throughput_articles_per_s"] > 0 and report["floor_articles_per_s"] > 0
    assert report["efficiency"] == pytest.approx(report["throughput_articles_per_s"] / report["floor_articles_per_s"],
                                                 rel=0.01)
    assert 0 < report["latency_p50_s"] <= report["latency_p99_s"] < 60
    run = report["runs"][0]
    assert [p["name"] for p in run["phases"]] == ["fixed load", "saturation"]
    assert sum(p["articles"] for p in run["phases"]) == 300
    assert all(run["stage_ms_per_article"][s] > 0 for s in ("clean", "dedup", "tag", "alert"))
    assert run["worker_cpu_ms_per_article"] > sum(run["stage_ms_per_article"].values()) * 0.5
    assert run["peak_memory_mb"][0] > 50
    # the per-hop overhead: worker CPU outside stage logic, in total and split by where it is spent
    assert report["overhead_ms_per_article"] == run["overhead_ms_per_article"] == pytest.approx(
        run["worker_cpu_ms_per_article"] - sum(run["stage_ms_per_article"].values()), abs=0.01)
    split = run["overhead_ms_by_stage"]
    assert {"clean", "dedup", "tag", "alert", "outside agents"} <= set(split)
    assert sum(split.values()) == pytest.approx(report["overhead_ms_per_article"], abs=0.05)
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.kafka
def test_bench_hop_passes_every_record_on_in_each_variant(bootstrap: str) -> None:
    """``streams bench-hop``: each variant's worker reads every record and sends each on, and reports
    its CPU per record (the figures themselves are for benchmarks, not tests)."""
    from kafka import KafkaConsumer

    from streams.tools.hop import bench_hop

    records, run = 400, uuid.uuid4().hex[:8]
    results = bench_hop(bootstrap, records, ["project", "all three"], timeout=120, run=run)
    assert [r.variant for r in results] == ["project", "all three"]
    assert all(r.records == records and r.cpu_us_per_record > 0 and r.seconds > 0 for r in results)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=3000,
                             auto_offset_reset="earliest")
    consumer.subscribe([f"bench-hop-{run}.out"])
    assert sum(1 for _ in consumer) == records * len(results)
    consumer.close()
