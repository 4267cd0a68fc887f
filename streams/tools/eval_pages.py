"""``streams eval-pages``: the clean stage on real pages, against the article a person cut out.

Scored as ``../shared/tools/score_pages.py`` scores: lower-cased ``\\w+`` word 4-gram shingles
counted with multiplicity; per page precision = shared / predicted, recall = shared / gold; plain
means over pages, and the pages under F1 0.5. L3S-GN1's gold body leaves the headline out, the
others' include it, so a prediction is its body on L3S-GN1 and title + body elsewhere.

Both paths run on every page - ``text/plain`` with the page's whole visible text and no title, as
many scrapers hand pages over, and ``text/html`` with the page - next to the keep-everything floor
and trafilatura alone, in the same run. Each dataset is scored with the model trained without it
(``streams/data/article/without-<dataset>.npz``), since the sites a pipeline meets in production
are sites it never saw; ``--shipped`` scores the model trained on every page instead.

Per page, each path is also held against trafilatura alone: the pages where it is worse by more
than ``MARGIN`` F1 (and better). And the headline each path gives when the producer sends none,
against the gold headline (:func:`streams.tools.train_clean.gold_parts`): exact match of the words
and token F1, over the pages that have one.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trafilatura
from tqdm import tqdm

from streams.stages.clean import clean_text
from streams.stages.clean.blocks import words
from streams.stages.clean.detector import MODEL_DIR, MODEL_PATH, ArticleModel
from streams.stages.clean.html import headline, parse
from streams.tools.train_clean import gold_parts

TOKEN = re.compile(r"\w+")
HEADLINE_IN_GOLD = {"dragnet", "cleanportaleval"}
MARGIN = 0.05


def shingles(text: str) -> Counter:
    tokens = TOKEN.findall((text or "").lower())
    if 0 < len(tokens) < 4:
        return Counter([tuple(tokens)])
    return Counter(tuple(tokens[i:i + 4]) for i in range(len(tokens) - 3))


def score(pred: str, gold: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of one page's prediction."""
    p, g = shingles(pred), shingles(gold)
    if not p and not g:
        return 1.0, 1.0, 1.0
    shared = sum((p & g).values())
    precision = shared / sum(p.values()) if p else 0.0
    recall = shared / sum(g.values()) if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def token_f1(found: str, gold: str) -> float:
    """F1 of the two texts' words as bags (a headline with the site's name run in still scores)."""
    a, b = Counter(words(found)), Counter(words(gold))
    shared = sum((a & b).values())
    return 2 * shared / (sum(a.values()) + sum(b.values())) if shared else 0.0


def gold_article(page: dict) -> str:
    """The gold headline and body, as the output is: title and body."""
    if page["dataset"] in HEADLINE_IN_GOLD or not page.get("gold_title"):
        return page["gold_body"]
    return f"{page['gold_title']}\n\n{page['gold_body']}"


def as_scored(page: dict, title: str, body: str) -> str:
    """What is held against the gold: the body, with the title in front where the gold has the headline."""
    return f"{title}\n\n{body}" if page["dataset"] in HEADLINE_IN_GOLD and title else body


@dataclass
class Scores:
    """Per-page scores of one way of extracting, by dataset."""

    pages: dict[str, list[tuple[float, float, float]]] = field(default_factory=lambda: defaultdict(list))
    f1: dict[str, float] = field(default_factory=dict)  # by page id
    titles: dict[str, list[tuple[bool, float]]] = field(default_factory=lambda: defaultdict(list))
    worse: Counter | None = None  # by dataset, once compared with trafilatura alone
    better: Counter | None = None
    seconds: float = 0.0

    def add(self, page: dict, prf: tuple[float, float, float], title: str) -> None:
        self.pages[page["dataset"]].append(prf)
        self.f1[page["id"]] = prf[2]
        gold_title = gold_parts(page)[0]
        if gold_title:
            self.titles[page["dataset"]].append((words(title) == words(gold_title), token_f1(title, gold_title)))

    def against(self, other: Scores, pages: list[dict]) -> None:
        """Count, per dataset, the pages where this path is worse (better) than ``other`` by MARGIN."""
        self.worse, self.better = Counter(), Counter()
        for page in pages:
            diff = self.f1[page["id"]] - other.f1[page["id"]]
            self.worse[page["dataset"]] += diff < -MARGIN
            self.better[page["dataset"]] += diff > MARGIN

    def summary(self) -> dict[str, dict]:
        out = {}
        groups = {"all": [x for rows in self.pages.values() for x in rows], **dict(sorted(self.pages.items()))}
        for name, rows in groups.items():
            n = len(rows)
            out[name] = {"pages": n, "precision": round(sum(r[0] for r in rows) / n, 4),
                         "recall": round(sum(r[1] for r in rows) / n, 4), "f1": round(sum(r[2] for r in rows) / n, 4),
                         "under_half": sum(r[2] < 0.5 for r in rows)}
            if self.worse is not None:
                datasets = list(self.pages) if name == "all" else [name]
                out[name] |= {"worse_than_trafilatura": sum(self.worse[d] for d in datasets),
                              "better_than_trafilatura": sum(self.better[d] for d in datasets)}
            titles = [t for d in (self.titles if name == "all" else [name]) for t in self.titles[d]]
            if titles:
                n = len(titles)
                out[name]["headline"] = {"pages": n, "exact": round(sum(t[0] for t in titles) / n, 4),
                                         "token_f1": round(sum(t[1] for t in titles) / n, 4)}
        if self.seconds:
            out["all"]["pages_per_second"] = round(n_all / self.seconds, 1) if (n_all := len(groups["all"])) else 0
        return out


def run(pages: Iterable[dict], extract: Callable[[dict], tuple[str, str]], desc: str, progress: bool) -> Scores:
    """Score ``extract(page) -> (title, body)`` over the pages, timing the extraction alone."""
    scores = Scores()
    for page in tqdm(list(pages), desc=desc, unit="page", disable=None if progress else True, leave=False):
        started = time.perf_counter()
        title, body = extract(page)
        scores.seconds += time.perf_counter() - started
        scores.add(page, score(as_scored(page, title, body), page["gold_body"]), title)
    return scores


def models_for(pages: list[dict], model_dir: Path, shipped: bool) -> dict[str, ArticleModel]:
    """The model each dataset is scored with: the one trained without it, or the shipped one."""
    from streams.tools.train_clean import held_out_path

    if shipped:
        model = ArticleModel.load(model_dir / MODEL_PATH.name)
        return defaultdict(lambda: model)
    return {d: ArticleModel.load(held_out_path(d, model_dir)) for d in sorted({p["dataset"] for p in pages})}


def entity_precision(outputs: dict[str, tuple[str, str]], pages: list[dict], progress: bool) -> dict:
    """Of the entities the tag stage finds in the output, the share it also finds in the gold text.

    Each page's distinct entities (knowledge-base id, else lower-cased text) count once; pooled over
    pages. The gold article is its headline and body (L3S-GN1's gold body leaves the headline out:
    an entity of the headline is the article's, not boilerplate). Entities from menus, teasers and
    footers are what this catches: each one is a candidate false alert and noise in the trend-burst
    counts."""
    from streams.settings import get_settings
    from streams.stages.tag import Tagger

    tagger = Tagger.from_settings(get_settings())
    shared = found = 0
    for page in tqdm(pages, desc="entities", unit="page", disable=None if progress else True, leave=False):
        title, body = outputs[page["id"]]
        mine = {e.id or e.text.lower() for e in tagger.entities(f"{title}\n\n{body}")}
        gold = {e.id or e.text.lower() for e in tagger.entities(gold_article(page))}
        shared += len(mine & gold)
        found += len(mine)
    return {"entity_precision": round(shared / found, 4) if found else 1.0, "entities": found}


def evaluate_pages(pages: list[dict], model_dir: Path = MODEL_DIR, shipped: bool = False,
                   entities: bool = True, progress: bool = True) -> dict:
    """Both paths, the floor and trafilatura alone over ``pages``; see the module docstring."""
    models = models_for(pages, model_dir, shipped)
    outputs: dict[str, tuple[str, str]] = {}

    def text_path(page: dict) -> tuple[str, str]:
        cleaned = clean_text(page["text"], None, "text/plain", model=models[page["dataset"]])
        outputs[page["id"]] = cleaned.title, cleaned.body
        return cleaned.title, cleaned.body

    def html_path(page: dict) -> tuple[str, str]:
        cleaned = clean_text(page["html"], None, "text/html", model=models[page["dataset"]])
        return cleaned.title, cleaned.body

    def trafilatura_alone(page: dict) -> tuple[str, str]:  # as a user would call it, with its defaults
        tree = parse(page["html"])
        return headline(tree), trafilatura.extract(tree) or ""

    runs = {
        "floor": run(pages, lambda p: ("", p["text"]), "floor", progress),
        "trafilatura": run(pages, trafilatura_alone, "trafilatura", progress),
        "text/plain": run(pages, text_path, "text path", progress),
        "text/html": run(pages, html_path, "HTML path", progress),
    }
    for name in ("text/plain", "text/html"):
        runs[name].against(runs["trafilatura"], pages)
    report = {"held_out": not shipped, "paths": {name: s.summary() for name, s in runs.items()}}
    if entities:
        report["text/plain entities"] = entity_precision(outputs, pages, progress)
    return report


def print_report(report: dict) -> None:
    held = "each dataset scored by the model trained without it" if report["held_out"] else "the shipped model"
    print(f"real pages, {held}; worse/better: pages more than {MARGIN} F1 below/above trafilatura alone\n")
    print(f"{'path':14}{'dataset':17}{'pages':>6}{'precision':>10}{'recall':>8}{'F1':>8}{'F1<0.5':>8}"
          f"{'worse':>7}{'better':>7}{'pages/s':>9}")
    for path, summary in report["paths"].items():
        for dataset, row in summary.items():
            versus = (f"{row['worse_than_trafilatura']:>7}{row['better_than_trafilatura']:>7}"
                      if "worse_than_trafilatura" in row else " " * 14)
            speed = f"{row['pages_per_second']:>9,.1f}" if "pages_per_second" in row else ""
            print(f"{path if dataset == 'all' else '':14}{dataset:17}{row['pages']:>6}{row['precision']:>10.3f}"
                  f"{row['recall']:>8.3f}{row['f1']:>8.3f}{row['under_half']:>8}{versus}{speed}")
    print(f"\nheadline, no title sent\n{'path':14}{'dataset':17}{'pages':>6}{'exact':>8}{'token F1':>10}")
    for path, summary in report["paths"].items():
        for dataset, row in summary.items():
            if "headline" in row and path != "floor":  # the floor sends no headline
                h = row["headline"]
                print(f"{path if dataset == 'all' else '':14}{dataset:17}{h['pages']:>6}{h['exact']:>8.3f}"
                      f"{h['token_f1']:>10.3f}")
    if "text/plain entities" in report:
        e = report["text/plain entities"]
        print(f"\ntext path: {e['entity_precision']:.1%} of the {e['entities']:,} entities tagged in the output are "
              "also tagged in the gold text")
