"""``streams eval-stories``: replay a JSONL of articles through clean, dedup and stories in-process,
in ``published`` order (the worker's order: stories run in dedup's hop, before the tagger, whose
entities they do not use), and score the story ids against gold events when the file has them.

The stages never read ``event_id``; it is used here only to score. Scores are computed as
``../shared/tools/score_stories.py`` computes them (BCubed averaged over articles; pairwise over
unordered pairs), with the two floors. Breaking alerts are scored against the same breaking rule
applied to the gold events: a gold event is breaking when ``breaking_sources`` distinct sources
published it within ``breaking_window``; an alert is right when its story's articles are mostly
of a breaking gold event not already alerted.

``--folds K`` also reports the figures held out by event: the events are split into K folds; for
each, the few knobs in :data:`GRID` are chosen on the other folds' articles (scored within the
whole replay, so the held-out articles are there as distractors, unlabelled) and the held-out
articles are scored with the chosen knobs. BCubed is an average over articles, so the held-out
figure is the average over every article scored by knobs chosen without its event.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from streams.build import Stages
from streams.contract.events import CleanArticle, DeadLetter
from streams.settings import Settings
from streams.stages.clean import clean_message
from streams.stages.stories import Stories, StoryConfig, breaks

GRID = {"threshold": (0.08, 0.10, 0.12, 0.15, 0.18), "time_scale_hours": (240.0, 1000.0, 5000.0)}


@dataclass
class Prepared:
    """An article as the stories stage sees it, after clean and dedup (computed once)."""

    id: str
    article: CleanArticle | None  # None: dead-lettered by clean
    duplicate_of: str | None
    gold: object = None


def _published(row: dict) -> datetime:
    return datetime.fromisoformat(row["published"].replace("Z", "+00:00"))


def prepare(rows: list[dict], settings: Settings, progress: bool = True) -> list[Prepared]:
    """Clean and dedup every article, in replay order."""
    stages = Stages(settings)
    dedup = stages.dedup()
    out: list[Prepared] = []
    for row in tqdm(rows, desc="clean+dedup", unit="art", disable=not progress, leave=False):
        raw = {"id": row["id"], "url": row["url"], "source": row["source"], "title": row.get("title"),
               "body": row["body"], "published_at": row["published"]}
        cleaned = clean_message(json.dumps(raw).encode(), _published(row), settings.max_body_bytes)
        if isinstance(cleaned, DeadLetter):
            out.append(Prepared(row["id"], None, None, row.get("event_id")))
            continue
        verdict = dedup.check(cleaned)
        out.append(Prepared(row["id"], cleaned, verdict.duplicate_of if verdict.is_duplicate else None,
                            row.get("event_id")))
    return out


def replay(prepared: list[Prepared], config: StoryConfig) -> tuple[dict, list, list[float]]:
    """Story id per article id, the alerts as (kind, story id, article id), seconds per assignment."""
    stories = Stories({}, config)
    ids: dict[str, str] = {}
    alerts: list[tuple[str, str, str]] = []
    costs: list[float] = []
    for p in prepared:
        if p.article is None:  # dead-lettered: a story of its own, so that every id has one
            ids[p.id] = f"dead-{p.id}"
            continue
        if p.duplicate_of is not None:
            ids[p.id] = ids.get(p.duplicate_of) or stories.story_of(p.duplicate_of) or f"dup-{p.id}"
            continue
        started = time.perf_counter()
        done = stories.assign(p.article)
        costs.append(time.perf_counter() - started)
        ids[p.id] = done.story_id
        if done.alert:
            alerts.append((done.alert, done.story_id, p.id))
    return ids, alerts, costs


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def score(gold: dict, pred: dict, items: Iterable | None = None) -> dict:
    """BCubed and pairwise, as score_stories.py computes them; over ``items`` only when given
    (each item's predicted cluster still counts every article, so a false merge with an article
    outside ``items`` costs precision)."""
    items = list(gold if items is None else items)
    gsize = Counter(gold.values())
    psize = Counter(pred.values())
    cell = Counter((pred[i], gold[i]) for i in gold)
    bp = sum(cell[pred[i], gold[i]] / psize[pred[i]] for i in items) / len(items)
    br = sum(cell[pred[i], gold[i]] / gsize[gold[i]] for i in items) / len(items)
    chosen = set(items)
    tp = pp = gp = 0
    members: dict = defaultdict(list)
    for i in gold:
        members[pred[i]].append(i)
    for cluster in members.values():
        for a, b in itertools.combinations(cluster, 2):
            if a in chosen or b in chosen:
                pp += 1
                tp += gold[a] == gold[b]
    for label in {gold[i] for i in items}:
        gp += _pairs(sum(1 for i in gold if gold[i] == label))
    pwp, pwr = (tp / pp if pp else 1.0), (tp / gp if gp else 1.0)
    return {"bcubed": {"precision": bp, "recall": br, "f1": _f1(bp, br)},
            "pairwise": {"precision": pwp, "recall": pwr, "f1": _f1(pwp, pwr)},
            "pred_clusters": len({pred[i] for i in items})}


def gold_breaking(prepared: list[Prepared], config: StoryConfig) -> set:
    """Gold events that meet the breaking rule, on the same clamped times and distinct sources."""
    firsts: dict = defaultdict(dict)
    clock = Stories({}, config)
    for p in prepared:
        if p.article is None or p.duplicate_of is not None:
            continue
        t = clock.event_time(p.article.published_at, p.article.ingested_at)
        firsts[p.gold].setdefault(p.article.source, t)
        firsts[p.gold][p.article.source] = min(firsts[p.gold][p.article.source], t)
    window = config.breaking_window_minutes * 60
    return {event for event, sources in firsts.items()
            if breaks(list(sources.values()), config.breaking_sources, window)}


def score_breaking(prepared: list[Prepared], ids: dict, alerts: list, config: StoryConfig) -> dict:
    gold_of = {p.id: p.gold for p in prepared}
    truth = gold_breaking(prepared, config)
    members: dict = defaultdict(list)
    for aid, sid in ids.items():
        members[sid].append(gold_of[aid])
    breaking = [sid for kind, sid, _ in alerts if kind == "breaking"]
    matched, right = set(), 0
    for sid in breaking:
        event = Counter(members[sid]).most_common(1)[0][0]
        if event in truth and event not in matched:
            matched.add(event)
            right += 1
    precision = right / len(breaking) if breaking else 1.0
    recall = len(matched) / len(truth) if truth else 1.0
    return {"gold_events": len(truth), "alerts": len(breaking), "precision": precision, "recall": recall,
            "once_per_story": len(breaking) == len(set(breaking)),
            "updated": sum(1 for kind, _, _ in alerts if kind == "updated")}


def folds_by_event(prepared: list[Prepared], k: int) -> list[set]:
    """Events dealt round-robin into k folds, largest first, so the folds hold similar article counts."""
    sizes = Counter(p.gold for p in prepared)
    folds: list[set] = [set() for _ in range(k)]
    for n, event in enumerate(sorted(sizes, key=lambda e: (-sizes[e], str(e)))):
        folds[n % k].add(event)
    return folds


def held_out(prepared: list[Prepared], base: StoryConfig, k: int, progress: bool) -> dict:
    """Knobs chosen on k-1 folds of events, each article scored with the knobs of its fold."""
    gold = {p.id: p.gold for p in prepared}
    configs = [replace(base, **dict(zip(GRID, values, strict=True))) for values in itertools.product(*GRID.values())]
    runs = [replay(prepared, c)[0] for c in tqdm(configs, desc="grid", disable=not progress, leave=False)]
    p_sum = r_sum = 0.0  # BCubed is a mean over articles: sum each fold's, weighted by its articles
    chosen = []
    for fold in folds_by_event(prepared, k):
        train = [i for i in gold if gold[i] not in fold]
        test = [i for i in gold if gold[i] in fold]
        best = max(range(len(configs)), key=lambda n: score(gold, runs[n], train)["bcubed"]["f1"])
        chosen.append({name: getattr(configs[best], name) for name in GRID})
        held = score(gold, runs[best], test)["bcubed"]
        p_sum += held["precision"] * len(test)
        r_sum += held["recall"] * len(test)
    p, r = p_sum / len(gold), r_sum / len(gold)
    return {"folds": k, "bcubed": {"precision": p, "recall": r, "f1": _f1(p, r)}, "chosen": chosen}


def evaluate(corpus: Path, settings: Settings, config: StoryConfig, pred_path: Path | None = None,
             folds: int = 0, progress: bool = True) -> dict:
    rows = [json.loads(line) for line in corpus.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    started = time.perf_counter()
    prepared = prepare(rows, settings, progress)
    prepare_s = time.perf_counter() - started
    ids, alerts, costs = replay(prepared, config)
    if pred_path is not None:
        with pred_path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"id": row["id"], "story_id": ids[row["id"]]}) + "\n")
    costs.sort()
    report: dict = {
        "articles": len(rows), "stories": len(set(ids.values())),
        "dead_lettered": sum(1 for p in prepared if p.article is None),
        "duplicates": sum(1 for p in prepared if p.duplicate_of is not None),
        "stage_ms": {"mean": round(1000 * sum(costs) / max(1, len(costs)), 3),
                     "p99": round(1000 * costs[int(0.99 * (len(costs) - 1))], 3) if costs else 0.0},
        "articles_per_s": round(len(rows) / (prepare_s + sum(costs)), 1),
        "config": config.__dict__,
    }
    if all(r.get("event_id") is not None for r in rows):
        gold = {p.id: p.gold for p in prepared}
        report["score"] = score(gold, ids)
        report["floors"] = {"singletons": score(gold, {i: i for i in gold}),
                            "one_cluster": score(gold, dict.fromkeys(gold, 0))}
        report["breaking"] = {"window_min": config.breaking_window_minutes,
                              **score_breaking(prepared, ids, alerts, config)}
        day = replace(config, breaking_window_minutes=24 * 60)
        ids_day, alerts_day, _ = replay(prepared, day)
        report["breaking_24h"] = {"window_min": day.breaking_window_minutes,
                                  **score_breaking(prepared, ids_day, alerts_day, day)}
        if folds:
            report["held_out"] = held_out(prepared, config, folds, progress)
    return report


def cost_at_scale(load: Path, config: StoryConfig, live: int = 5000, probes: int = 1000,
                  progress: bool = True) -> dict:
    """The stage's cost with ``live`` stories: each article of ``load`` (title + body JSONL, e.g. the
    BBC corpus) is cut into paragraph groups that open a story each until ``live`` are live; then
    ``probes`` articles (each an article's other paragraphs, so they join or open as real follow-ups
    would) are timed one by one. Also the state's bytes per story as its changelog carries it."""
    from datetime import UTC, timedelta

    rows = [json.loads(line) for line in load.open(encoding="utf-8") if line.strip()]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fill = Stories({}, replace(config, threshold=1.01, max_live=max(config.max_live, live + 1)))

    def article(n: int, row: dict, paragraphs: list[str], at: datetime) -> CleanArticle:
        body = "\n\n".join(paragraphs)
        return CleanArticle(id=f"load-{n}", url=f"https://load.example/{n}", source=f"site{n % 50}.example",
                            title=row["title"], body=body, content_type="text/plain", published_at=at,
                            ingested_at=at, content_hash=str(n), word_count=len(body.split()))

    n = 0
    bar = tqdm(total=live, desc="fill", disable=not progress, leave=False)
    while len(fill.state) < live:
        row = rows[n % len(rows)]
        paragraphs = [p for p in row["body"].split("\n\n") if p.strip()]
        part = (n // len(rows)) % 3
        at = start + timedelta(seconds=10 * n)
        fill.assign(article(n, row, paragraphs[part::3] or paragraphs, at))
        n += 1
        bar.update(len(fill.state) - bar.n)
    bar.close()
    stories = Stories(fill.state, config)
    costs = []
    for k in tqdm(range(probes), desc="probe", disable=not progress, leave=False):
        row = rows[(k * 7) % len(rows)]
        paragraphs = [p for p in row["body"].split("\n\n") if p.strip()]
        at = start + timedelta(seconds=10 * (n + k))
        probe = article(n + k, row, paragraphs[1::2] or paragraphs, at)
        started = time.perf_counter()
        stories.assign(probe)
        costs.append(time.perf_counter() - started)
    costs.sort()
    # memory: the state and the derived indexes of 1,000 stories, traced from empty
    import tracemalloc

    tracemalloc.start()
    sample = Stories({}, fill.config)
    for k in range(1000):
        row = rows[k % len(rows)]
        paragraphs = [p for p in row["body"].split("\n\n") if p.strip()]
        sample.assign(article(10**7 + k, row, paragraphs[(k // len(rows)) % 3::3] or paragraphs, start))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"live_stories": live, "probes": probes, "memory_bytes_per_story": round(held / len(sample.state)),
            "ms_mean": round(1000 * sum(costs) / len(costs), 3),
            "ms_p50": round(1000 * costs[len(costs) // 2], 3),
            "ms_p99": round(1000 * costs[int(0.99 * (len(costs) - 1))], 3),
            "state_bytes_per_story": round(stories.state_bytes_per_story())}


def print_report(r: dict) -> None:
    print(f"{r['articles']} articles -> {r['stories']} stories ({r['duplicates']} copies, "
          f"{r['dead_lettered']} dead-lettered); stage {r['stage_ms']['mean']} ms/article mean, "
          f"p99 {r['stage_ms']['p99']} ms; end to end {r['articles_per_s']} articles/s in-process")
    if "cost" in r:
        c = r["cost"]
        print(f"cost with {c['live_stories']} live stories: {c['ms_mean']} ms/article mean, p50 {c['ms_p50']}, "
              f"p99 {c['ms_p99']} ms over {c['probes']} articles; state {c['state_bytes_per_story']} bytes per story "
              f"on the changelog, {c['memory_bytes_per_story']} in memory with the indexes")
    if "score" not in r:
        return
    print(f"{'':<22} {'BCubed P':>8} {'R':>6} {'F1':>6}   {'pair P':>6} {'R':>6} {'F1':>6}  clusters")
    rows = [("stories (defaults)", r["score"]), ("floor: all alone", r["floors"]["singletons"]),
            ("floor: all in one", r["floors"]["one_cluster"])]
    for name, s in rows:
        b, p = s["bcubed"], s["pairwise"]
        print(f"{name:<22} {b['precision']:8.3f} {b['recall']:6.3f} {b['f1']:6.3f}   "
              f"{p['precision']:6.3f} {p['recall']:6.3f} {p['f1']:6.3f}  {s['pred_clusters']:>8}")
    if "held_out" in r:
        h = r["held_out"]["bcubed"]
        print(f"{'held out (' + str(r['held_out']['folds']) + ' folds)':<22} {h['precision']:8.3f} "
              f"{h['recall']:6.3f} {h['f1']:6.3f}   knobs chosen per fold: "
              + "; ".join(",".join(f"{v:g}" for v in c.values()) for c in r["held_out"]["chosen"]))
    for key in ("breaking", "breaking_24h"):
        b = r[key]
        print(f"breaking ({b['window_min']:g} min): {b['alerts']} alerts for {b['gold_events']} gold events, "
              f"precision {b['precision']:.3f} recall {b['recall']:.3f}, once per story: {b['once_per_story']}, "
              f"{b['updated']} updated")
