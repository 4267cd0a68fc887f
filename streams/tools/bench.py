"""``streams bench`` (``make bench``): the whole pipeline on a real broker, measured against its floor.

For each worker count it starts a fresh pipeline (own topics, consumer group and state) and runs
two phases over unique articles built from the BBC corpus:

* **fixed load**: articles published at a steady rate (50/s by default); publish-to-tagged and
  publish-to-alert latencies at that load;
* **saturation**: the rest published at once; sustained end-to-end throughput (articles reaching
  their final place per second, from the first publish to the last arrival) and latencies under
  backlog.

The **floor** is the same stage functions (clean, dedup and stories, tag, alert) called in-process over the same
articles with no broker, in as many processes as there are workers. ``efficiency`` is pipeline
throughput over floor throughput: a ratio that compares across noisy machines where raw figures do
not. Per-stage time per article comes from the workers' own ``streams_stage_seconds`` histograms; the
rest of a worker's CPU time is Kafka, Faust and serialisation overhead.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from streams.contract.topics import ALERTS, FINAL, MAX_MESSAGE_BYTES, RAW, TAGGED, ensure_topics
from streams.errors import ConfigError
from streams.kafka import connection
from streams.settings import Settings, get_settings
from streams.tools.audit import QUIET_S, audit
from streams.tools.broker import LocalKafka, free_port
from streams.tools.runner import Worker, wait_for_group, worker_env

WARMUP = 50  # articles sent before measuring
FINISHED = "streams_articles_out_total"  # per stage: articles it has finished
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
STAGES = ("clean", "dedup", "tag", "alert")


def bench_articles(corpus: Path, n: int) -> list[bytes]:
    """N unique raw articles (JSON) from the corpus, with ids unique to this run.

    Past the corpus size, each further article interleaves the sentences of two corpus articles of
    similar length (a different pairing each round): new text by dedup's
    measure (about half of either source's shingles), in the corpus's own words."""
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n > len(rows) * (len(rows) - 1):
        raise ConfigError(f"--articles {n}: too many for {corpus} ({len(rows)} articles)")
    by_length = sorted(range(len(rows)), key=lambda k: len(rows[k]["body"]))
    published = datetime.now(UTC).isoformat()
    run = uuid.uuid4().hex[:6]
    out = []
    for i in range(n):
        rank, rounds = i % len(rows), i // len(rows)
        row = rows[by_length[rank]] if rounds else rows[i]
        title, body = row["title"], row["body"]
        if rounds:
            # 17 ranks apart: a similar length, but not the neighbour (the corpus repeats some stories)
            other = rows[by_length[(rank + 17 * rounds) % len(rows)]]
            mine, theirs = SENTENCE_END.split(body), SENTENCE_END.split(other["body"])
            picked = [mine[k] if k % 2 == 0 else theirs[k] for k in range(max(len(mine), len(theirs)))
                      if k < (len(mine) if k % 2 == 0 else len(theirs))]
            body = "\n\n".join(" ".join(picked[k:k + 3]) for k in range(0, len(picked), 3))
            title = f"{title}: {other['title']}"
        out.append(json.dumps({"id": f"bench-{run}-{i}", "url": f"https://www.bbc.co.uk/news/{row['id']}/{i}",
                               "source": "bbc.co.uk", "title": title, "body": body,
                               "published_at": published}).encode())
    return out


# -- the floor ---------------------------------------------------------------------------------------

def _floor_worker(args: tuple[list[bytes], Settings]) -> tuple[int, float]:
    """One process: every stage's logic over its share, as the worker calls it (clean, dedup and
    stories, tag, alert rules, burst counting), minus Kafka."""
    messages, settings = args
    from streams.build import Stages
    from streams.stages.burst import mention_batches
    from streams.stages.clean import clean_message
    from streams.stages.dedup import mark_unique
    from streams.stages.tag import BATCH as TAG_BATCH

    stages = Stages(settings)  # what the worker builds, from the same settings
    tagger, engine, dedup, bursts = stages.tagger, stages.alerts(), stages.dedup(), stages.bursts()
    stories = stages.stories()
    tagger.tag_many([])  # load lazily initialised parts outside the clock, as a running worker has
    started = time.perf_counter()
    now = datetime.now(UTC)
    unique = []
    for i, data in enumerate(messages):
        out = clean_message(data, now, settings.max_body_bytes, f"0:{i}")
        if not hasattr(out, "body"):
            continue
        verdict = dedup.check(out)
        if not verdict.is_duplicate:
            unique.append(stories.place(mark_unique(out, verdict))[0])
    for i in range(0, len(unique), TAG_BATCH):  # in the worker's tag batches
        tagged = tagger.tag_many(unique[i:i + TAG_BATCH])
        for t in tagged:
            engine.evaluate(t, now)
        for batch in mention_batches(tagged, settings.partitions).values():
            for m in batch.mentions:
                bursts.mention(m.entity, m.at, m.count)
    return len(messages), time.perf_counter() - started


def floor(messages: list[bytes], processes: int, settings: Settings) -> float:
    """Articles per second of the stage logic alone, in ``processes`` parallel processes."""
    shares = [(messages[i::processes], settings) for i in range(processes)]
    if processes == 1:
        done, seconds = _floor_worker(shares[0])
        return done / seconds
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_floor_worker, shares)
    return sum(n for n, _ in results) / max(s for _, s in results)


# -- the pipeline ------------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    name: str
    articles: int
    offered_per_s: float | None
    throughput_articles_per_s: float
    tagged_latency_s: dict[str, float]
    alert_latency_s: dict[str, float]
    alerts: int


@dataclass
class RunResult:
    workers: int
    floor_articles_per_s: float
    phases: list[PhaseResult] = field(default_factory=list)
    stage_ms_per_article: dict[str, float] = field(default_factory=dict)
    worker_cpu_ms_per_article: float = 0.0
    broker_cpu_ms_per_article: float | None = None  # the local broker's, when it runs here
    bench_cpu_ms_per_article: float = 0.0  # this process: publishing and reading the topics
    #: worker CPU per article outside stage logic (Faust, aiokafka, JSON, metrics), in total and by where
    #: it is spent: each agent's step beyond its stage logic, and outside the agents (Faust's consumer,
    #: stream iteration, acks and commits, the producer)
    overhead_ms_per_article: float = 0.0
    overhead_ms_by_stage: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: list[float] = field(default_factory=list)
    #: (seconds since the first publish, articles each stage has finished so far), every half second
    timeline: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # phase -> publish-to-tagged seconds

    @property
    def saturation(self) -> PhaseResult:
        return self.phases[-1]

    @property
    def efficiency(self) -> float:
        return self.saturation.throughput_articles_per_s / self.floor_articles_per_s


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0], "n": 1}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 4), "p95": round(q[94], 4), "p99": round(q[98], 4), "n": len(values)}


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak resident MB) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return cpu, hwm / 1024


def _by_stage(procs: list[Worker], metric: str) -> dict[str, float]:
    """One per-stage metric (e.g. ``streams_stage_seconds_sum``) summed over all workers."""
    out: dict[str, float] = {}
    for w in procs:
        for line in w.scrape().splitlines():
            if line.startswith(metric + "{"):
                stage = line.split('stage="', 1)[1].split('"', 1)[0]
                out[stage] = out.get(stage, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class Publisher:
    def __init__(self, settings: Settings, bootstrap: str) -> None:

        self.topic = settings.topic(RAW)
        self.producer = connection.producer(settings, bootstrap, acks="all", linger_ms=2,
                                            max_request_size=MAX_MESSAGE_BYTES)

    def publish(self, messages: list[bytes], rate: float | None, desc: str,
                tick: Callable[[], None] = lambda: None) -> dict[str, float]:
        """Publish (at ``rate`` per second, or as fast as possible); the publish time of each id.
        ``tick`` runs while waiting for the next slot."""
        sent: dict[str, float] = {}
        start = time.time()
        for i, data in enumerate(tqdm(messages, desc=desc, unit="msg", leave=False, disable=None)):
            if rate:
                tick()
                delay = start + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            now = time.time()
            sent[json.loads(data)["id"]] = now
            self.producer.send(self.topic, value=data, timestamp_ms=int(now * 1000))
        self.producer.flush()
        return sent

    def close(self) -> None:
        self.producer.close()


_LEADING_ID = re.compile(rb'^\{"id":("(?:[^"\\]|\\.)*")')


def leading_id(value: bytes) -> str:
    """The ``id`` of an event serialised by pydantic (``{"id":"...",`` first), without decoding the rest."""
    match = _LEADING_ID.match(value)
    return json.loads(match.group(1)) if match else json.loads(value)["id"]


class Reader:
    """Reads the final topics from the start for timestamps and ids only: it shares the cores with
    the pipeline, so it decodes no article bodies (ids come from record keys)."""

    def __init__(self, settings: Settings, bootstrap: str, on_record) -> None:

        self.names = {settings.topic(t): t for t in (*FINAL, ALERTS)}
        self.consumer = connection.consumer(settings, *self.names, bootstrap=bootstrap, auto_offset_reset="earliest",
                                            enable_auto_commit=False, group_id=None, fetch_max_bytes=64 * 1024 * 1024)
        self.on_record = on_record

    def poll(self, timeout_ms: int) -> None:
        for tp, records in self.consumer.poll(timeout_ms=timeout_ms, max_records=5000).items():
            for r in records:
                self.on_record(self.names[tp.topic], r)

    def close(self) -> None:
        self.consumer.close()


def _drain(reader: Reader, sent: dict[str, float], arrivals: dict[str, float], timeout: float,
           tick: Callable[[], None], settings: Settings, bootstrap: str) -> None:
    """Poll until every published id has reached a final topic; give up after ``timeout``, or after
    :data:`QUIET_S` with no new outcome, naming what has none (by ``raw_ref``, from ``streams audit``)."""
    deadline = time.monotonic() + timeout
    missing = len(sent)
    last_news = time.monotonic()
    with tqdm(total=len(sent), desc="  accounted for", unit="msg", leave=False, disable=None) as bar:
        while missing and time.monotonic() < min(deadline, last_news + QUIET_S):
            reader.poll(timeout_ms=100)
            tick()
            now_missing = sum(1 for i in sent if i not in arrivals)  # one pass per poll, shared with the bar
            if now_missing < missing:
                last_news = time.monotonic()
            missing = now_missing
            bar.update(len(sent) - missing - bar.n)
    if missing:
        found = audit(settings, bootstrap)
        ids = [i for i in sent if i not in arrivals][:10]
        raise RuntimeError(f"{missing} of {len(sent)} articles did not reach a final topic (ids {ids}); "
                           f"streams audit of this run:\n{found.summary()}")


def run_pipeline(base: Settings, bootstrap: str, messages: list[bytes], warmup: list[bytes], workers: int,
                 fixed_rate: float,
                 fixed_count: int, workdir: Path, timeout: float, broker_pid: int | None = None) -> RunResult:
    run_id = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topic_prefix": f"bench-{run_id}.", "app_id": f"streams-bench-{run_id}"})
    ensure_topics(settings, bootstrap)
    procs = [Worker(worker_env(settings, bootstrap, workdir / f"state-{run_id}-{k}"), free_port(),
                    workdir / f"worker-{run_id}-{k}.log") for k in range(workers)]
    result = RunResult(workers=workers, floor_articles_per_s=0.0)
    publisher = Publisher(settings, bootstrap)
    arrivals: dict[str, float] = {}  # id -> time of its final record
    alert_times: list[tuple[str, float, float]] = []  # (article id, alert record time, ingested)
    tagged = [0]  # records on articles.tagged so far: the alert stage's input

    def on_record(topic: str, record) -> None:
        at = record.timestamp / 1000
        tagged[0] += topic == TAGGED
        if topic == TAGGED:  # keyed by story: the id is the value's first field, read without parsing the body
            arrivals.setdefault(leading_id(record.value), at)
        elif topic in FINAL:  # keyed by article id; a dead letter may lack the key
            arrivals.setdefault(record.key.decode() if record.key else json.loads(record.value)["id"], at)
        elif topic == ALERTS:
            event = json.loads(record.value)
            if event.get("ingested_at") and event.get("article_ids"):
                ingested = datetime.fromisoformat(event["ingested_at"]).timestamp()
                alert_times.append((event["article_ids"][0], at, ingested))

    reader = Reader(settings, bootstrap, on_record)

    try:
        for w in procs:
            w.start()
        for w in procs:
            w.wait_ready()
        wait_for_group(settings, bootstrap, len(procs))
        # warm-up, not measured: the first batches load caches and settle the group's fetch positions
        _drain(reader, publisher.publish(warmup, None, "  warm-up"), arrivals, timeout, lambda: None, settings,
               bootstrap)
        t0 = time.time()

        def sample() -> None:
            """Every half second: how far each stage has got (for the chart)."""
            if not result.timeline or time.time() - t0 - result.timeline[-1][0] >= 0.5:
                result.timeline.append((round(time.time() - t0, 2), _by_stage(procs, FINISHED)))

        phases = (("fixed load", messages[:fixed_count], fixed_rate),
                  ("saturation", messages[fixed_count:], None))
        for name, batch, rate in phases:
            if not batch:
                continue
            cpu_before = sum(_proc_stats(w.proc.pid)[0] for w in procs)
            broker_before = _proc_stats(broker_pid)[0] if broker_pid else 0.0
            own_before = time.process_time()
            stages_before = _by_stage(procs, "streams_stage_seconds_sum")
            agents_before = _by_stage(procs, "streams_agent_cpu_seconds_total")
            desc = f"  {workers} worker(s), {name}" + (f" at {rate:g}/s" if rate else "")
            sent = publisher.publish(batch, rate, desc, sample)
            _drain(reader, sent, arrivals, timeout, sample, settings, bootstrap)
            # the alert stage finishes a tagged article just after sending it on: wait for it too
            deadline = time.monotonic() + timeout
            while _by_stage(procs, FINISHED).get("alert", 0) < tagged[0] and time.monotonic() < deadline:
                reader.poll(timeout_ms=100)
                sample()
            reader.poll(timeout_ms=1000)
            done = sorted(arrivals[i] for i in sent)
            first = min(sent.values())
            # the whole batch over its whole time: a window over the middle of the arrivals would
            # flatter it, since the stages run in waves and the final stage's arrivals bunch up late
            throughput = len(done) / max(1e-9, done[-1] - first)
            tagged_latency = [arrivals[i] - sent[i] for i in sent]
            alerts = [at - ingested for aid, at, ingested in alert_times if aid in sent]
            result.latencies[name] = tagged_latency
            result.phases.append(PhaseResult(
                name=name, articles=len(batch), offered_per_s=rate, throughput_articles_per_s=round(throughput, 1),
                tagged_latency_s=percentiles(tagged_latency), alert_latency_s=percentiles(alerts), alerts=len(alerts)))
            # time per article over the last phase (saturation): stage logic, and all of the workers' CPU
            stages = _by_stage(procs, "streams_stage_seconds_sum")
            result.stage_ms_per_article = {s: round((stages.get(s, 0.0) - stages_before.get(s, 0.0)) * 1000
                                                    / len(batch), 3) for s in STAGES}
            cpu = sum(_proc_stats(w.proc.pid)[0] for w in procs) - cpu_before
            result.worker_cpu_ms_per_article = round(cpu * 1000 / len(batch), 3)
            agents = _by_stage(procs, "streams_agent_cpu_seconds_total")
            agent_ms = {s: (agents.get(s, 0.0) - agents_before.get(s, 0.0)) * 1000 / len(batch) for s in agents}
            logic = sum(result.stage_ms_per_article.values())
            result.overhead_ms_per_article = round(result.worker_cpu_ms_per_article - logic, 3)
            by_stage = {s: ms - result.stage_ms_per_article.get(s, 0.0) for s, ms in agent_ms.items()}
            by_stage["outside agents"] = result.worker_cpu_ms_per_article - sum(agent_ms.values())
            result.overhead_ms_by_stage = {s: round(ms, 3) for s, ms in by_stage.items()}
            result.bench_cpu_ms_per_article = round((time.process_time() - own_before) * 1000 / len(batch), 3)
            if broker_pid:
                broker = _proc_stats(broker_pid)[0] - broker_before
                result.broker_cpu_ms_per_article = round(broker * 1000 / len(batch), 3)
        result.peak_memory_mb = [round(_proc_stats(w.proc.pid)[1], 1) for w in procs]
        return result
    finally:
        publisher.close()
        reader.close()
        for w in procs:
            w.stop()


# -- report ------------------------------------------------------------------------------------------

def summary(runs: list[RunResult], articles: int) -> dict:
    """The headline figures (for ``--json``): the run with the most workers, plus every run."""
    best = runs[-1]
    fixed = best.phases[0] if len(best.phases) > 1 else best.saturation
    return {
        "articles": articles,
        "workers": best.workers,
        "throughput_articles_per_s": best.saturation.throughput_articles_per_s,
        "floor_articles_per_s": round(best.floor_articles_per_s, 1),
        "efficiency": round(best.efficiency, 3),
        "latency_p50_s": fixed.tagged_latency_s.get("p50"),
        "latency_p99_s": fixed.tagged_latency_s.get("p99"),
        "alert_latency_p99_s": fixed.alert_latency_s.get("p99"),
        # worker CPU per article outside stage logic in the last run's last phase, over all hops (#30)
        "overhead_ms_per_article": best.overhead_ms_per_article,
        "overhead_ms_by_stage": best.overhead_ms_by_stage,
        "cores": os.cpu_count(),
        "runs": [{**{k: v for k, v in asdict(r).items() if k not in ("timeline", "latencies")},
                  "efficiency": round(r.efficiency, 3)} for r in runs],
    }


def print_table(runs: list[RunResult], out=sys.stdout) -> None:
    def lat(d: dict) -> str:
        return f"{d['p50']:.3f} / {d['p95']:.3f} / {d['p99']:.3f}" if d else "-"

    print(f"\n{'workers':>7}  {'phase':<11} {'offered/s':>9} {'articles/s':>10}  "
          f"{'to tagged p50/p95/p99 s':<24} {'to alert p50/p95/p99 s':<24} alerts", file=out)
    for r in runs:
        for p in r.phases:
            offered = f"{p.offered_per_s:g}" if p.offered_per_s else "max"
            print(f"{r.workers:>7}  {p.name:<11} {offered:>9} {p.throughput_articles_per_s:>10,.1f}  "
                  f"{lat(p.tagged_latency_s):<24} {lat(p.alert_latency_s):<24} {p.alerts}", file=out)
    print(f"\n{'workers':>7}  {'pipeline/s':>10} {'floor/s':>8} {'efficiency':>10}  peak MB per worker", file=out)
    for r in runs:
        print(f"{r.workers:>7}  {r.saturation.throughput_articles_per_s:>10,.1f} {r.floor_articles_per_s:>8,.1f} "
              f"{r.efficiency:>10.2f}  {', '.join(map(str, r.peak_memory_mb))}", file=out)
    print("\nms per article at saturation: time in each stage's logic, then CPU by process", file=out)
    print(f"{'workers':>7}  {'clean':>6} {'dedup':>6} {'tag':>6} {'alert':>6}  {'workers':>8} {'broker':>7} "
          f"{'bench':>6}", file=out)
    for r in runs:
        st = r.stage_ms_per_article
        broker = f"{r.broker_cpu_ms_per_article:.2f}" if r.broker_cpu_ms_per_article is not None else "-"
        print(f"{r.workers:>7}  " + " ".join(f"{st.get(s, 0):>6.2f}" for s in STAGES)
              + f"  {r.worker_cpu_ms_per_article:>8.2f} {broker:>7} {r.bench_cpu_ms_per_article:>6.2f}", file=out)
    print("\nworker CPU per article outside stage logic at saturation (ms): in total, then where", file=out)
    for r in runs:
        where = ", ".join(f"{s} {ms:.2f}" for s, ms in r.overhead_ms_by_stage.items())
        print(f"{r.workers:>7}  {r.overhead_ms_per_article:>6.2f}   {where}", file=out)


def chart(runs: list[RunResult], path: Path) -> None:
    """Throughput over time per stage, and the latency distribution, one row per worker count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(13, 4 * len(runs)), squeeze=False)
    for (left, right), r in zip(axes, runs, strict=True):
        times = [t for t, _ in r.timeline]
        for stage in STAGES:
            done = [d.get(stage, 0.0) for _, d in r.timeline]
            rates = [(b - a) / (t1 - t0) if t1 > t0 else 0.0
                     for a, b, t0, t1 in zip(done, done[1:], times, times[1:], strict=False)]
            left.plot(times[1:], rates, label=stage, linewidth=1.2)
        left.set_title(f"{r.workers} worker(s): articles finished per second, by stage")
        left.set_xlabel("seconds since first publish")
        left.set_ylabel("articles/s")
        left.legend()
        values_all = [v for values in r.latencies.values() for v in values if v > 0]
        if values_all:  # log-spaced bins: fixed-load milliseconds and saturation seconds on one axis
            lo, hi = math.log10(min(values_all)), math.log10(max(values_all))
            bins = [10 ** (lo + (hi - lo) * i / 60) for i in range(61)]
            for name, values in r.latencies.items():
                if values:
                    right.hist(values, bins=bins, alpha=0.6, label=f"{name} (p99 {percentiles(values)['p99']:.2f} s)")
            right.set_xscale("log")
        right.set_title(f"{r.workers} worker(s): publish-to-tagged latency")
        right.set_xlabel("seconds (log scale)")
        right.set_ylabel("articles")
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_bench(corpus: Path, articles: int, workers: list[int], fixed_rate: float, fixed_seconds: float,
              out_dir: Path, as_json: bool, timeout: float = 600.0, settings: Settings | None = None) -> dict:
    base = settings or get_settings()
    messages = bench_articles(corpus, articles + WARMUP)
    warmup, messages = messages[-WARMUP:], messages[:-WARMUP]
    fixed_count = min(len(messages) // 2, int(fixed_rate * fixed_seconds))
    log = sys.stderr if as_json else sys.stdout
    kafka: LocalKafka | None = None
    runs: list[RunResult] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streams-bench-") as tmp:
        try:
            if base.broker:
                bootstrap = base.broker.removeprefix("kafka://")
            else:
                print("starting a local Kafka broker…", file=log, flush=True)
                kafka = LocalKafka(home=base.home).start()
                bootstrap = kafka.bootstrap
            for k in workers:
                print(f"{k} worker(s): floor (stage logic in-process, {k} process(es))…", file=log, flush=True)
                floor_rate = floor(messages[fixed_count:], k, base)
                print(f"{k} worker(s): pipeline on {bootstrap}…", file=log, flush=True)
                result = run_pipeline(base, bootstrap, messages, warmup, k, fixed_rate, fixed_count, Path(tmp), timeout,
                                      broker_pid=kafka.proc.pid if kafka and kafka.proc else None)
                result.floor_articles_per_s = floor_rate
                runs.append(result)
        finally:
            if kafka is not None:
                kafka.stop()
    report = summary(runs, len(messages))
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(runs, out_dir / "bench.png")
    print_table(runs, out=log)
    print(f"\nwrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'}", file=log)
    if as_json:
        print(json.dumps(report))
    return report
