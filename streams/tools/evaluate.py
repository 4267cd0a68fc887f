"""``streams eval``: the stages' logic run in-process over a labelled feed, scored against its gold.

The feed and gold come from ``../shared/tools/make_feed.py``. Each stage is timed on its own so the
report also gives in-process throughput per core (one process, no broker), the floor the pipeline
is compared with.

* clean: word tokens (lower-cased ``\\w+``) of title + body against the gold title + body;
  per-document precision and recall averaged over documents, F1 of the two means; overall and
  per source site.
* deadletter: precision and recall of "should be dead-lettered", and the share of correct reasons.
* dedup: precision and recall of "is a duplicate", the share of detected duplicates whose
  ``duplicate_of`` carries the same gold story, and bytes of dedup state per article.
* tag: entities and topics per article, and throughput of the default tag pipeline in the worker's
  batches and one article at a time (the batches' gain, measured in the same run).
* alert: the default rules on the pipeline's output against the same rules on each story's gold
  text: extra alerts (from boilerplate or missed duplicates), missed ones, and the most alerts one
  story got from one rule.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from streams.build import Stages
from streams.contract.events import CleanArticle, DeadLetter
from streams.settings import get_settings
from streams.stages.clean import clean_message, words
from streams.stages.dedup import mark_unique, shingles
from streams.stages.tag import BATCH as TAG_BATCH


def _prf(pairs: list[tuple[float, float]]) -> dict[str, float]:
    if not pairs:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "documents": 0}
    p = sum(x for x, _ in pairs) / len(pairs)
    r = sum(y for _, y in pairs) / len(pairs)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0, 4),
            "documents": len(pairs)}


def token_pr(output: str, gold: str) -> tuple[float, float]:
    """Precision and recall of the output's word tokens (a multiset) against the gold's."""
    out, ref = Counter(words(output)), Counter(words(gold))
    overlap = sum((out & ref).values())
    n_out, n_ref = sum(out.values()), sum(ref.values())
    precision = overlap / n_out if n_out else float(n_ref == 0)
    recall = overlap / n_ref if n_ref else 1.0
    return precision, recall


def _source(line: str) -> str:
    try:
        obj = json.loads(line)
        return obj.get("source", "?") if isinstance(obj, dict) else "?"
    except json.JSONDecodeError:
        return "?"


COPY_KINDS = ("exact", "look-alike", "excerpt", "fuller", "related")
#: the tag stage is also timed one article at a time on this many articles (the batches' gain; a
#: multiple of the worker's batch, so that its first batches hold exactly the same articles)
TAG_ONE_SAMPLE = 400


def copy_kinds(gold: list[dict]) -> dict[int, str]:
    """Each gold copy's relation to its story's first sighting, from the two gold texts: ``exact``,
    ``look-alike`` (Jaccard of word 5-shingles >= 0.5), ``excerpt`` (>= 90 % of it inside the first),
    ``fuller`` (>= 90 % of the first inside it), or ``related`` (the gold's same story, none of these)."""
    by_id = {g["id"]: g for g in gold if g.get("expect") == "article" and g.get("duplicate_of") is None}
    kinds = {}
    for g in gold:
        first = by_id.get(g.get("duplicate_of") or "")
        if g.get("expect") != "article" or first is None:
            continue
        if g.get("duplicate_kind") == "exact":
            kinds[g["line"]] = "exact"
            continue
        mine, theirs = (set(shingles(x["title"], x["body"])) for x in (g, first))
        shared = len(mine & theirs)
        if shared / len(mine | theirs) >= 0.5:
            kinds[g["line"]] = "look-alike"
        elif shared >= 0.9 * len(mine):
            kinds[g["line"]] = "excerpt"
        elif shared >= 0.9 * len(theirs):
            kinds[g["line"]] = "fuller"
        else:
            kinds[g["line"]] = "related"
    return kinds


def evaluate(feed_path: Path, gold_path: Path, progress: bool = True, tag: bool = True) -> dict:
    settings = get_settings()
    feed = feed_path.read_bytes().split(b"\n")
    feed = [line for line in feed if line]
    gold = [json.loads(line) for line in gold_path.read_text(encoding="utf-8").splitlines() if line]
    if len(feed) != len(gold):
        raise ValueError(f"{feed_path} has {len(feed)} lines but {gold_path} has {len(gold)}")
    now = datetime.now(UTC)

    # -- clean + dead letters -----------------------------------------------------------------
    outputs = []
    seconds: Counter = Counter()  # by path: the text path's and the HTML path's time are reported apart
    by_path: Counter = Counter()
    for line in tqdm(feed, desc="clean", unit="msg", disable=not progress, leave=False):
        started = time.perf_counter()
        outputs.append(clean_message(line, now, settings.max_body_bytes))
        path = "html" if b'"text/html"' in line else "text"
        seconds[path] += time.perf_counter() - started
        by_path[path] += 1

    by_source: dict[str, list[tuple[float, float]]] = defaultdict(list)
    dl = Counter()
    for line, g, out in zip(feed, gold, outputs, strict=True):
        if g["expect"] == "deadletter":
            if isinstance(out, DeadLetter):
                dl["tp"] += 1
                dl["reason_ok"] += out.reason == g["reason"]
            else:
                dl["fn"] += 1
            continue
        if isinstance(out, DeadLetter):
            dl["fp"] += 1
            out_text = ""
        else:
            out_text = f"{out.title}\n{out.body}"
        by_source[_source(line.decode("utf-8", "replace"))].append(token_pr(out_text, f"{g['title']}\n{g['body']}"))
    all_pairs = [p for pairs in by_source.values() for p in pairs]
    report: dict = {
        "messages": len(feed),
        "clean": {**_prf(all_pairs), "by_source": {s: _prf(p) for s, p in sorted(by_source.items())}},
        "deadletter": {
            "precision": round(dl["tp"] / (dl["tp"] + dl["fp"]), 4) if dl["tp"] + dl["fp"] else 1.0,
            "recall": round(dl["tp"] / (dl["tp"] + dl["fn"]), 4) if dl["tp"] + dl["fn"] else 1.0,
            "correct_reason": round(dl["reason_ok"] / dl["tp"], 4) if dl["tp"] else 1.0,
            "expected": dl["tp"] + dl["fn"],
        },
        "throughput": {f"clean {path}": round(by_path[path] / seconds[path], 1) for path in sorted(by_path)},
    }

    # -- dedup ----------------------------------------------------------------------------------
    articles = [(g, out) for g, out in zip(gold, outputs, strict=True) if isinstance(out, CleanArticle)]
    stages = Stages(settings)
    dedup = stages.dedup()
    story_of = {}
    for g, out in articles:
        story_of.setdefault(out.id, g.get("story"))
    counts = Counter()
    started = time.perf_counter()
    verdicts = [dedup.check(out) for _, out in tqdm(articles, desc="dedup", unit="msg", disable=not progress,
                                                    leave=False)]
    dedup_seconds = time.perf_counter() - started
    kinds = copy_kinds(gold)
    found_by_kind: Counter = Counter()
    for (g, _), v in zip(articles, verdicts, strict=True):
        truth = g.get("duplicate_of") is not None
        if v.same_story and truth:
            counts["tp"] += 1
            counts["same_story"] += story_of.get(v.duplicate_of) == g.get("story")
            found_by_kind[kinds[g["line"]]] += 1
        elif v.same_story:
            counts["fp"] += 1
        elif truth:
            counts["fn"] += 1
    expected_by_kind = Counter(kinds.values())
    report["dedup"] = {
        "precision": round(counts["tp"] / (counts["tp"] + counts["fp"]), 4) if counts["tp"] + counts["fp"] else 1.0,
        "recall": round(counts["tp"] / (counts["tp"] + counts["fn"]), 4) if counts["tp"] + counts["fn"] else 1.0,
        "same_story": round(counts["same_story"] / counts["tp"], 4) if counts["tp"] else 1.0,
        "duplicates_expected": counts["tp"] + counts["fn"],
        "recall_by_kind": {k: {"recall": round(found_by_kind[k] / n, 4), "expected": n}
                           for k, n in sorted(expected_by_kind.items(), key=lambda kv: COPY_KINDS.index(kv[0]))},
        "verdicts": dict(Counter(v.kind for v in verdicts if v.kind)),
        "state_bytes_per_article": round(dedup.state_bytes() / max(1, len(dedup.signatures)), 1),
        "lsh_bands": dedup.b, "lsh_rows": dedup.r,
    }
    report["throughput"]["dedup"] = round(len(articles) / dedup_seconds, 1)

    # -- tag ------------------------------------------------------------------------------------
    # -- stories (in dedup's hop in the worker): alerts are suppressed per story, as there ----------
    stories = stages.stories()
    unique, category = [], {}
    for (g, out), v in zip(articles, verdicts, strict=True):
        if not v.is_duplicate:
            unique.append(stories.place(mark_unique(out, v))[0])
            category[out.id] = (g.get("story") or "").split("-")[1:2]  # bbc-<category>-NNN
    members = Counter(u.story_id for u in unique)
    same = Counter((u.story_id, str(category[u.id])) for u in unique)
    report["stories"] = {
        "unique_articles": len(unique), "stories": len(members),
        # the feed's articles are a year of BBC news in one day, so time cannot keep stories apart; a
        # story mixing BBC categories (business, sport, tech, ...) is certainly a false merge
        "category_purity": round(sum(same[u.story_id, str(category[u.id])] / members[u.story_id] for u in unique)
                                 / max(1, len(unique)), 4)}

    if tag:
        tagger = stages.tagger
        tagger.tag_many(unique[:50])  # warm the tokenizer cache, as a running worker's is
        sample = unique[:TAG_ONE_SAMPLE]  # tagged in batches below, then one at a time: the batches' gain
        started = time.perf_counter()
        tagged = []
        for i in tqdm(range(0, len(unique), TAG_BATCH), desc="tag", unit="batch", disable=not progress, leave=False):
            tagged.extend(tagger.tag_many(unique[i:i + TAG_BATCH]))  # the worker's batches
            if i < len(sample):  # the sample's batches are the first ones
                batch_seconds = time.perf_counter() - started
        tag_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for article in sample:
            tagger.tag(article)
        one_seconds = time.perf_counter() - started
        labels = Counter(e.label for t in tagged for e in t.entities)
        topics = Counter(tp.id for t in tagged for tp in t.topics)
        report["tag"] = {
            "articles": len(tagged),
            "model": settings.spacy_model or "blank('en') + knowledge base + patterns",
            "entities_per_article": round(sum(len(t.entities) for t in tagged) / max(1, len(tagged)), 2),
            "with_kb_id": round(sum(1 for t in tagged for e in t.entities if e.id)
                                / max(1, sum(len(t.entities) for t in tagged)), 4),
            "labels": dict(labels.most_common()),
            "topics": dict(topics.most_common()),
            "batch_gain": round(one_seconds / batch_seconds, 3),
        }
        report["throughput"]["tag"] = round(len(tagged) / tag_seconds, 1)
        report["alert"] = evaluate_alerts(stages, tagged, articles, verdicts)
    return report


def evaluate_alerts(stages: Stages, tagged: list, articles: list, verdicts: list) -> dict:
    """Alerts from the pipeline's output against alerts from each story's gold clean text.

    Extra alerts come from text the clean stage should have removed (or from dedup misses), missed
    ones from text it removed wrongly; ``max_per_story`` > 1 means a story alerted twice for a rule.
    """
    story_of = {out.id: g.get("story") for (g, out), v in zip(articles, verdicts, strict=True) if not v.is_duplicate}
    engine = stages.alerts()
    fired = Counter((a.rule_id, story_of[t.id]) for t in tagged for a in engine.evaluate(t))
    firsts = [(g, out) for (g, out), v in zip(articles, verdicts, strict=True) if not v.is_duplicate]
    gold_articles = [out.model_copy(update={"title": g["title"], "body": g["body"]}) for g, out in firsts]
    gold_engine = stages.alerts()
    expected = {(a.rule_id, g["story"]) for (g, _), t in zip(firsts, stages.tagger.tag_many(gold_articles), strict=True)
                for a in gold_engine.evaluate(t)}
    got = set(fired)
    # a rule that fired for a story is suppressed for the story's other articles: an expected alert of
    # a gold story that shares its predicted story with one that fired the rule is not lost, it is merged
    story_id = {t.id: t.story_id for t in tagged}
    fired_in = {(rule, story_id[t.id]) for (rule, s) in got for t in tagged if story_of[t.id] == s}
    merged = {(rule, s) for rule, s in expected - got
              if any((rule, story_id[t.id]) in fired_in for t in tagged if story_of[t.id] == s)}
    return {"fired": sum(fired.values()), "expected": len(expected),
            "extra": len(got - expected), "missed": len(expected - got - merged),
            "merged_into_a_story_that_alerted": len(merged),
            "max_per_story": max(fired.values(), default=0),
            "by_rule": dict(Counter(rule for rule, _ in fired.elements()).most_common())}


def print_report(report: dict) -> None:
    c, d, dd = report["clean"], report["deadletter"], report["dedup"]
    print(f"{report['messages']} messages\n")
    print(f"clean       precision {c['precision']:.4f}  recall {c['recall']:.4f}  F1 {c['f1']:.4f}  "
          f"({c['documents']} articles)")
    for source, s in c["by_source"].items():
        print(f"  {source:28} P {s['precision']:.4f}  R {s['recall']:.4f}  F1 {s['f1']:.4f}  ({s['documents']})")
    print(f"deadletter  precision {d['precision']:.4f}  recall {d['recall']:.4f}  correct reason "
          f"{d['correct_reason']:.4f}  ({d['expected']} expected)")
    print(f"dedup       precision {dd['precision']:.4f}  recall {dd['recall']:.4f}  same story "
          f"{dd['same_story']:.4f}  ({dd['duplicates_expected']} expected; LSH {dd['lsh_bands']}x{dd['lsh_rows']}, "
          f"{dd['state_bytes_per_article']:.0f} B state/article)")
    print("  recall by kind of copy: " + ", ".join(f"{k} {v['recall']:.4f} ({v['expected']})"
                                                  for k, v in dd["recall_by_kind"].items()))
    if "tag" in report:
        t = report["tag"]
        print(f"tag         {t['entities_per_article']} entities/article, {t['with_kb_id']:.0%} canonical; "
              f"model: {t['model']}; batches of {TAG_BATCH} {t['batch_gain']:.2f}x one at a time")
        print(f"  topics: {', '.join(f'{k}={v}' for k, v in t['topics'].items())}")
    if "alert" in report:
        a = report["alert"]
        print(f"alert       {a['fired']} fired, {a['expected']} expected from the gold text: {a['extra']} extra, "
              f"{a['missed']} missed, at most {a['max_per_story']} per rule and story; "
              f"{a['merged_into_a_story_that_alerted']} suppressed because their story already alerted for the rule")
    if "stories" in report:
        st = report["stories"]
        print(f"stories     {st['unique_articles']} unique articles in {st['stories']} stories; BBC category purity "
              f"{st['category_purity']:.4f} (a story mixing categories is a false merge)")
    print("\nin-process throughput, one core (articles/s): "
          + ", ".join(f"{k} {v:,.0f}" for k, v in report["throughput"].items()))
