"""Train the clean stage's article detector on real pages (``streams train-clean``).

The corpus is ``webpages.jsonl.gz`` (one page per line: ``id``, ``dataset``, ``text`` - the page's
whole visible text - and the gold ``gold_title``/``gold_body`` a person cut out); its path is an
argument and nothing of it is copied into the repository. Each block of a page's text is labelled
by the gold: a block belongs to the article when most of its words sit in a word 4-gram the gold
has, each gold 4-gram claimed once (so the page's ``<title>`` line and related-links lists that
repeat the headline do not count as the article beside the headline itself). The headline block is
the one that matches the gold headline (L3S-GN1's annotated title; the first gold paragraph when it
is a heading elsewhere).

Models are CatBoost oblivious trees (depth 6), exported as arrays that
:class:`streams.stages.clean.detector.Trees` evaluates with numpy. The second pass learns from
out-of-fold first-pass scores, and the headline models from out-of-fold second-pass scores, as they
will meet them on unseen pages; the headline models rank each page's candidate lines (YetiRank),
and the title model is the headline model with what the page's markup calls its title beside each
line (``<h1>``, ``og:title``, ``<title>``), for the HTML path. Besides the
model trained on every page, one model per dataset is trained *without* that dataset, so that
``streams eval-pages`` and the tests report figures on sites the model never saw.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from streams.stages.clean import is_markup
from streams.stages.clean.blocks import MONTH, Block, normalise, split_blocks
from streams.stages.clean.detector import (
    FEATURES,
    MODEL_DIR,
    MODEL_PATH,
    MONTHS,
    ArticleModel,
    Titles,
    Trees,
    context_features,
    dateish,
    headline_candidates,
    line_features,
    title_candidates,
)
from streams.stages.clean.html import parse, titles

TOKEN = re.compile(r"\w+")
HEADING_END = re.compile(r"[.!?][\"'”’)\]]*$")
PASSED_OVER = re.compile(r"(?i)(?:by|posted|written|filed|updated|published)\b|.*\bcomments?\b")
#: a full date (a day with its month, or d/m/y): a year alone is often part of a headline
FULL_DATE = re.compile(rf"(?i)\b{MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{MONTH}\b"
                       r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b")
CLOCK = frozenset(("last", "on", "a", "m", "p", "et", "pt", "ct", "mt", "bst", "cest", "aest", "edt", "pdt", "cdt"))
CLOCK_NUMBER = re.compile(r"\d+(?:st|nd|rd|th|am|pm)?")
BYLINE_END = re.compile(r"\b[Bb]y\s+[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,2}\s*$")
DATASETS = ("l3s-gn1", "dragnet", "cleanportaleval")
ITERATIONS = 200  # as good as 300 held out (0.9228 against 0.9210), a third less time per page
DEPTH = 6
FOLDS = 3
#: what every model is grown with, the classifiers and the rankers alike
TREES = {"depth": DEPTH, "learning_rate": 0.1, "random_seed": 0, "thread_count": -1, "verbose": 0,
         "allow_writing_files": False}


def read_pages(path: Path, limit: int | None = None) -> list[dict]:
    """The pages of a ``webpages.jsonl.gz``-style corpus."""
    opener = gzip.open if str(path).endswith(".gz") else open
    pages = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                pages.append(json.loads(line))
                if limit and len(pages) >= limit:
                    break
    return pages


def date_line(text: str) -> bool:
    """A dateline with at most a section's name or a byline around the date ("24 July 2012 Last
    updated at 06:50 ET", "In Depth | 24 July 2012", "Nov 5, 2012 - 3:39PM PT", "October 25th, 2012
    by Dan Meyer"); a headline with a date in it has more words of its own ("AWS Week in Review -
    October 29, 2012", "August 24 - Neptune At Opposition")."""
    if not FULL_DATE.search(text):
        return False
    own = [w for w in TOKEN.findall(text.lower())
           if w not in MONTHS and w not in CLOCK and not CLOCK_NUMBER.fullmatch(w)]
    return len(own) <= 2 or BYLINE_END.search(text) is not None


def gold_parts(page: dict) -> tuple[str, str]:
    """The gold (headline, body), the headline separated where the annotation allows: L3S-GN1's
    annotated title; elsewhere the first heading-like paragraph among the first three (a date line,
    a byline or a comment count above it is passed over; a sentence before it means there is none).

    The dragnet gold keeps some sites' datelines above the article; taken for the headline, 35 of them
    taught the headline models to pick a page's date and scored the right pick as a miss."""
    body = page["gold_body"] or ""
    if page.get("gold_title"):
        title = page["gold_title"].split("\n\n")[0]
        if body.startswith(title):
            body = body[len(title):].lstrip()
        return title, body
    paras = body.split("\n\n")
    for i, para in enumerate(paras[:3]):
        tokens = TOKEN.findall(para.lower())
        if len(tokens) > 30 or HEADING_END.search(para):
            break
        if len(tokens) >= 2 and not dateish(tokens) and not PASSED_OVER.match(para) and not date_line(para):
            return para, "\n\n".join(paras[:i] + paras[i + 1:])
    return "", body


@dataclass(slots=True)
class Page:
    """One page cut into blocks, with its features and labels."""

    id: str
    dataset: str
    blocks: list[Block]
    X: np.ndarray
    y: np.ndarray  # bool per block: part of the article (headline included)
    weight: np.ndarray  # words per block
    headline: int  # block index of the headline, -1 when unknown
    titles: Titles  # what the page's markup calls its title


def label(blocks: list[Block], title: str, body: str) -> tuple[np.ndarray, int]:
    """Article blocks (each gold 4-gram claimed once, best-covered blocks first) and the headline block."""
    gold = TOKEN.findall(f"{title}\n\n{body}".lower())
    remaining = Counter(tuple(gold[i:i + 4]) for i in range(len(gold) - 3))
    tokens = [w for b in blocks for w in b.words]
    owner = np.repeat(np.arange(len(blocks)), [b.n for b in blocks])
    starts: list[list[int]] = [[] for _ in blocks]
    for i in range(len(tokens) - 3):
        starts[owner[i]].append(i)
    found = [sum(tuple(tokens[i:i + 4]) in remaining for i in s) for s in starts]
    anchor = int(np.argmax(found)) if blocks else 0
    covered = np.zeros(len(tokens), bool)
    for j in sorted(range(len(blocks)), key=lambda j: (-found[j], abs(j - anchor))):
        if not found[j]:
            break
        for i in starts[j]:
            shingle = tuple(tokens[i:i + 4])
            if remaining[shingle] > 0:
                remaining[shingle] -= 1
                covered[i:i + 4] = True
    n = np.array([b.n for b in blocks], float)
    share = np.bincount(owner, weights=covered, minlength=len(blocks)) / np.maximum(n, 1)
    y = share >= 0.5
    headline, best = -1, 0.6
    want = set(TOKEN.findall(title.lower()))
    for j, b in enumerate(blocks):
        if want and 0 < b.n <= 2 * len(want) + 3:
            mine = set(b.words)
            overlap = len(want & mine) / len(want | mine)
            if overlap > best or (overlap == best and headline >= 0 and y[j] and not y[headline]):
                headline, best = j, overlap
    if headline >= 0:
        y[headline] = True
    return y, headline


def prepare(pages: Iterable[dict], progress: bool = True) -> list[Page]:
    """Blocks, features and labels of each page's whole visible text.

    Only real pages: cuts made from them (the article alone, the article with a little page around
    it, a lead inside page furniture) were tried as extra training pages and cost held-out F1 even at
    a quarter of a page's weight (0.9210 -> 0.9187, pages under 0.5: 5.3 % -> 6.1 %); clean and short
    articles are left to the rules for texts of fewer than PAGE_BLOCKS blocks and to gap filling. A
    page whose text is its HTML source is left out: the clean stage reads such a text as HTML."""
    out = []
    for page in tqdm(list(pages), desc="features", unit="page", disable=not progress, leave=False):
        blocks = split_blocks(normalise(page["text"]))
        if not blocks or is_markup(page["text"]):
            continue
        y, headline = label(blocks, *gold_parts(page))
        out.append(Page(page["id"], page["dataset"], blocks, line_features(blocks), y,
                        np.array([b.n for b in blocks], float), headline,
                        titles(parse(page["html"])) if page.get("html") else Titles()))
    return out


def _fit(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, iterations: int) -> Trees:
    from catboost import CatBoostClassifier

    model = CatBoostClassifier(iterations=iterations, **TREES)
    model.fit(X, y, sample_weight=weight)
    return export(model)


def _fit_ranker(X: np.ndarray, y: np.ndarray, page: np.ndarray, iterations: int) -> Trees:
    """A ranking of each page's candidates (YetiRank, rows grouped by ``page``): which line is the
    page's headline is a choice among its lines, not a yes or no per line. As a classifier over
    every candidate of every page (a hundred menu items on some) it scored most headlines near 0 and
    let a byline or a "Print this article" line win by a hundredth; held out, the ranking took the
    text path's exact headlines from 0.878 to 0.893 and the HTML path's from 0.911 to 0.913."""
    from catboost import CatBoost, Pool

    model = CatBoost({"loss_function": "YetiRank", "iterations": iterations, **TREES})
    model.fit(Pool(X, y.astype(float), group_id=page))
    return export(model)


def export(model) -> Trees:
    """CatBoost's oblivious trees as arrays (checked against CatBoost's own scores by the tests)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        model.save_model(f.name, format="json")
        dump = json.loads(Path(f.name).read_text())
    trees = dump["oblivious_trees"]
    depth = max(len(t["splits"]) for t in trees)
    feature = np.zeros((len(trees), depth), np.intp)
    border = np.full((len(trees), depth), np.inf)  # padding levels never fire: x > inf is False
    leaves = np.zeros((len(trees), 2 ** depth))
    for t, tree in enumerate(trees):
        for k, split in enumerate(tree["splits"]):
            feature[t, k] = split["float_feature_index"]
            border[t, k] = split["border"]
        values = np.array(tree["leaf_values"])
        leaves[t, :len(values)] = values
    scale, bias = dump["scale_and_bias"]
    return Trees(feature, border, leaves * scale, float(np.sum(bias)))


def _stack(pages: list[Page]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.vstack([p.X for p in pages]), np.concatenate([p.y for p in pages]), _weights(pages))


def _weights(pages: list[Page]) -> np.ndarray:
    """A block weighs the square root of its words: a paragraph counts more than a menu item, not
    fifty times more."""
    return np.concatenate([np.sqrt(p.weight + 1) for p in pages])


def _folds(pages: list[Page], folds: int) -> list[list[int]]:
    order = np.random.default_rng(0).permutation(len(pages))
    return [sorted(order[k::folds]) for k in range(folds)]


def _out_of_fold(pages: list[Page], fit, predict, folds: int) -> list[np.ndarray]:
    """Scores of each page by a model that did not see it."""
    scores: list[np.ndarray] = [np.zeros(0)] * len(pages)
    for held in _folds(pages, folds):
        held_set = set(held)
        model = fit([p for i, p in enumerate(pages) if i not in held_set])
        for i in held:
            scores[i] = predict(model, pages[i])
    return scores


def train(pages: list[Page], iterations: int = ITERATIONS, folds: int = FOLDS, progress: bool = True,
          note: str = "") -> ArticleModel:
    """The four models on these pages."""
    steps = tqdm(total=2 * folds + 4, desc=f"train {note}".strip(), unit="fit", disable=not progress, leave=False)

    def fit_first(ps: list[Page]) -> Trees:
        steps.update()
        return _fit(*_stack(ps), iterations)

    def first_p(model: Trees, page: Page) -> np.ndarray:
        return model.proba(page.X)

    p1 = _out_of_fold(pages, fit_first, first_p, folds)
    second_X = [np.hstack([p.X, context_features(q, p.weight)]) for p, q in zip(pages, p1, strict=True)]
    index = {id(p): i for i, p in enumerate(pages)}

    def fit_second(ps: list[Page]) -> Trees:
        steps.update()
        rows = [index[id(p)] for p in ps]
        return _fit(np.vstack([second_X[i] for i in rows]), np.concatenate([pages[i].y for i in rows]),
                    _weights([pages[i] for i in rows]), iterations)

    def second_p(model: Trees, page: Page) -> np.ndarray:
        return model.proba(second_X[index[id(page)]])

    p2 = _out_of_fold(pages, fit_second, second_p, folds)
    first = fit_first(pages)
    second = fit_second(pages)
    H, h, hg, T, t, tg = [], [], [], [], [], []
    for i, (page, q) in enumerate(zip(pages, p2, strict=True)):
        candidates, rows = headline_candidates(q, page.X, page.weight, page.blocks)
        H.append(rows)
        h += [j == page.headline for j in candidates]
        hg += [i] * len(candidates)
        if candidates:  # a page without titles teaches the title model what the headline model knows
            lines, titled_rows = title_candidates(q, page.X, page.weight, page.blocks, candidates, rows, page.titles)
            T.append(titled_rows)
            t += [j == page.headline for j in lines]
            tg += [i] * len(lines)
    steps.update()
    headline = _fit_ranker(np.vstack(H), np.array(h), np.array(hg), iterations)
    steps.update()
    titled = _fit_ranker(np.vstack(T), np.array(t), np.array(tg), iterations)
    steps.close()
    meta = {"features": list(FEATURES), "pages": len(pages), "datasets": dict(Counter(p.dataset for p in pages)),
            "iterations": iterations, "depth": DEPTH, "folds": folds, "note": note}
    return ArticleModel(first, second, headline, titled, meta)


def held_out_path(dataset: str, model_dir: Path = MODEL_DIR) -> Path:
    """Where the model trained without ``dataset`` is kept."""
    return model_dir / f"without-{dataset}.npz"


def train_all(corpus: Path, model_dir: Path = MODEL_DIR, iterations: int = ITERATIONS,
              progress: bool = True) -> Iterator[Path]:
    """The shipped model (every page) and one model without each dataset; yields the paths written."""
    pages = prepare(read_pages(corpus), progress=progress)
    model_dir.mkdir(parents=True, exist_ok=True)
    for dataset in DATASETS:
        out = held_out_path(dataset, model_dir)
        train([p for p in pages if p.dataset != dataset], iterations, progress=progress,
              note=f"without {dataset}").save(out)
        yield out
    out = model_dir / MODEL_PATH.name
    train(pages, iterations, progress=progress, note="all pages").save(out)
    yield out
