"""The article among a page's lines: a learnt line classifier, trained on real pages.

A page's text - a whole page's visible text with menus and footers, a scraped article with widgets
around it, or a clean article - is cut into blocks (:func:`streams.stages.clean.blocks.split_blocks`)
and each block is described by shallow features of itself and its neighbours: length, stop words,
sentence shape and final punctuation, capitals and digits, separators, position, repetition within
the page, the boilerplate shapes the rules know (bylines, share rows, captions, ...), and the shape
of comment threads (short dated lines, cue words). Two passes of gradient-boosted trees score each
block: the first on those features, the second also on the first pass's scores around it (where the
page's article region lies), which is what prefers one contiguous article over scattered prose-like
teasers and comments. A third small model picks the headline line when the producer sent no title,
and on an HTML page a fourth weighs what the page's markup calls its title (``<h1>``, ``og:title``,
``<title>``, each cut at its separators: "Headline - Site") against that model's choice.

The models are oblivious trees (CatBoost's: every level of a tree asks one question), stored as
arrays in ``streams/data/article/model.npz`` and evaluated here with numpy alone: a few array
operations per page, no training library at run time. ``streams train-clean`` retrains them from
the real-page corpus (:mod:`streams.tools.train_clean`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from streams.settings import DATA_DIR
from streams.stages.clean.blocks import MONTH, Block, is_sentence, is_widget, key, trigrams

MODEL_DIR = DATA_DIR / "article"
MODEL_PATH = MODEL_DIR / "model.npz"

SHAPE_KINDS = ("byline", "caption", "advertisement", "read_more", "tags", "copyright", "disclaimer", "cookie",
               "call_to_action", "share", "breadcrumb", "tail")
SEPARATORS = ("|", "•", "·", "»", "›", ">")
WORD = re.compile(r"\w+")
DATED = re.compile(rf"\b{MONTH}\.? \d"
                   r"|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\b\d{1,2}:\d{2}\b|\b(?:19|20)\d\d\b", re.I)
LINKISH = re.compile(r"https?://|www\.|\.com\b|@\w+\.", re.I)
#: Words of page furniture and comment threads, in any site's language of menus (a cue, not a cut).
CUES = frozenset((
    "comment", "comments", "reply", "replies", "says", "wrote", "posted", "permalink", "abuse", "login", "signin",
    "like", "likes", "share", "tweet", "related", "tag", "tags", "category", "categories", "archive", "archives",
    "home", "contact", "privacy", "terms", "advertise", "subscribe", "rss", "follow", "more", "previous", "next",
    "older", "newer", "top", "popular", "search", "menu", "skip", "navigation", "register", "print", "email",
    "copyright", "rights", "reserved"))
TITLE_REACH = 60  # blocks compared with the page's first line (the headline is near the top)
#: the headline is looked for in the page's first HEADLINE_REACH lines (the labelled headlines of the
#: 2,008 real pages stand within the first 511): on a page of many thousands of short lines and no
#: article (a directory) every line would be a candidate, and the candidates' features cost seconds
HEADLINE_REACH = 600

BASE = ("log_words", "log_chars", "stop_share", "capitalised_share", "all_caps_share", "digit_share",
        "word_char_share", "other_char_share", "ends_sentence", "ends_colon", "ends_ellipsis", "starts_lower",
        "starts_digit", "separators", "log_sentences", "mean_word_length", "position", "log_lines_before",
        "log_lines_after", "words_before_share", "words_after_share", "log_page_words", "first_of_paragraph",
        "repeated", "dated", "linkish", "copyright", "title_overlap", "widget", "prose", "cue",
        *(f"shape_{k}" for k in SHAPE_KINDS))
NEIGHBOURS = ("log_words", "stop_share", "capitalised_share", "ends_sentence", "log_sentences", "words_before_share")
WINDOWS = (1, 3, 10)
FEATURES: tuple[str, ...] = (
    *BASE, "log_lines_since_headline", "headline_seen",
    *(f"{name}_mean{w}" for w in WINDOWS for name in ("log_words", "stop_share", "ends_sentence", "long")),
    *(f"words_sum{w}_share" for w in WINDOWS),
    *(f"{kind}_{where}" for kind in ("dated", "cue") for where in ("before", "after", "near")),
    *(f"{name}_at{d:+d}" for d in (-2, -1, 1, 2) for name in NEIGHBOURS),
    "words_of_longest", "words_of_median",
)
CONTEXT: tuple[str, ...] = (
    "p", *(f"p_mean{w}" for w in (1, 2, 4, 8, 16)), "p_words_before", "p_words_after", "from_core",
    "log_from_core", "p_of_max", "p_max", "p_share_kept", "log_p_words",
)
HEADLINE: tuple[str, ...] = ("p2", "lines_to_article", "log_lines_to_article", "candidates_after",
                             "candidates_before", "first_line", "in_first_line", "repeated_inside",
                             "in_lead", "byline_below", "date_below", "dateish",
                             "copies")  # after the block's own features
_B = {name: i for i, name in enumerate(BASE)}
_NEIGHBOUR_COLUMNS = [_B[name] for name in NEIGHBOURS]


@lru_cache(maxsize=4096)
def _window(n: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a page of n blocks: the ends and the sizes of the windows i-w..i+w, clipped to the page."""
    i = np.arange(n)
    hi, lo = np.minimum(i + w + 1, n), np.maximum(i - w, 0)
    return hi, lo, (hi - lo).astype(float)[:, None]


def _window_sums(M: np.ndarray, w: int) -> np.ndarray:
    """Sums over the rows i-w..i+w (clipped at the page's ends) of every column of ``M``."""
    hi, lo, _ = _window(len(M), w)
    c = np.zeros((len(M) + 1, M.shape[1]))
    np.cumsum(M, axis=0, out=c[1:])
    return c[hi] - c[lo]


def _window_counts(n: int, w: int) -> np.ndarray:
    return _window(n, w)[2]


def _ends_sentence(text: str) -> bool:
    return text.rstrip("\"'”’)]")[-1:] in (".", "!", "?")


def _base_row(b: Block, first_words: set[str]) -> tuple:
    """The block's own features, in :data:`BASE` order (page-level ones are filled in later)."""
    text, n, words = b.text, b.n, b.words
    chars = len(text)
    tokens = b.tokens  # as written: case matters here
    word_chars = sum(map(len, tokens))
    inv = 1.0 / n if n else 0.0
    ends = _ends_sentence(text)
    digits = sum(map(str.isdigit, tokens))
    overlap = 0.0
    if first_words and n:
        mine = set(words)
        overlap = len(first_words & mine) / len(first_words | mine)
    short = n <= 12
    return (
        math.log1p(n), math.log1p(chars), b.stops * inv, sum(map(str.istitle, tokens)) * inv,
        sum(map(str.isupper, tokens)) * inv, digits * inv, word_chars / chars,
        (chars - word_chars - text.count(" ")) / chars, ends, text[-1:] == ":", text.endswith(("...", "…")),
        text[:1].islower(), text[:1].isdigit(), sum(map(text.count, SEPARATORS)),
        math.log1p(text.count(". ") + text.count("? ") + text.count("! ") + ends), word_chars * inv,
        0, 0, 0, 0, 0, 0, b.first, 0,
        short and digits > 0 and DATED.search(text) is not None,
        n <= 40 and _linkish(text),
        "©" in text or "copyright" in words, overlap, is_widget(b), b.prose,
        short and not CUES.isdisjoint(words),
        *_SHAPE_COLUMNS[b.shape],
    )


_SHAPE_COLUMNS = {kind: tuple(kind == k for k in SHAPE_KINDS) for kind in (None, *SHAPE_KINDS)}


def _linkish(text: str) -> bool:
    """A URL, a domain or an e-mail address in the text (the regex only where one may be)."""
    lower = text.lower()
    return (("." in text and ("http" in lower or "www." in lower or ".com" in lower)) or "@" in text) and (
        LINKISH.search(text) is not None)


_WINDOWED = [_B["log_words"], _B["stop_share"], _B["ends_sentence"]]


def line_features(blocks: list[Block]) -> np.ndarray:
    """One row of :data:`FEATURES` per block."""
    n = len(blocks)
    F = np.zeros((n, len(FEATURES)))
    if not n:
        return F
    first_words = set(blocks[0].words)
    X = F[:, :len(BASE)]
    X[:] = [_base_row(b, first_words if 0 < i < TITLE_REACH else set()) for i, b in enumerate(blocks)]
    words = np.array([b.n for b in blocks], float)
    total = max(words.sum(), 1.0)
    before = np.cumsum(words) - words
    index = np.arange(n, dtype=float)
    X[:, _B["position"]] = index / n
    X[:, _B["log_lines_before"]] = np.log1p(index)
    X[:, _B["log_lines_after"]] = np.log1p(n - 1 - index)
    X[:, _B["words_before_share"]] = before / total
    X[:, _B["words_after_share"]] = (total - before - words) / total
    X[:, _B["log_page_words"]] = math.log1p(total)
    keys = Counter(b.key for b in blocks)
    X[:, _B["repeated"]] = [keys[b.key] > 1 and b.n > 0 for b in blocks]

    # An article follows its headline: how far back the nearest line like the page's first line (its
    # <title>, on a whole page's text) stands; the headline line itself counts as seen
    headline_like = (X[:, _B["title_overlap"]] >= 0.5) & (words <= 30)
    last = np.where(headline_like, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    after_headline = last >= 0
    F[:, len(BASE)] = np.where(after_headline, np.log1p(np.arange(n) - last), 8.0)
    F[:, len(BASE) + 1] = after_headline

    # One running sum serves every window: a few columns' means, "long line", the page's words
    # nearby, and the comment-thread marks (short dated lines, cue words).
    c = np.zeros((n + 1, 7))
    c[1:, :3] = X[:, _WINDOWED]
    c[1:, 3] = words >= 10
    c[1:, 4] = words
    c[1:, 5] = X[:, _B["dated"]] * (words <= 12)
    c[1:, 6] = X[:, _B["cue"]]
    np.cumsum(c, axis=0, out=c)
    at = len(BASE) + 2
    for k, w in enumerate(WINDOWS):
        hi, lo, size = _window(n, w)
        sums = c[hi, :5] - c[lo, :5]
        F[:, at + 4 * k:at + 4 * k + 4] = sums[:, :4] / size
        F[:, at + 4 * len(WINDOWS) + k] = sums[:, 4] / max(sums[:, 4].max(), 1.0)
    at += 5 * len(WINDOWS)
    hi, lo, _ = _window(n, 5)
    near = c[hi, 5:] - c[lo, 5:]
    seen = c[:-1, 5:]
    after = c[-1, 5:] - c[1:, 5:]
    for k in range(2):
        F[:, at], F[:, at + 1], F[:, at + 2] = np.log1p(seen[:, k]), np.log1p(after[:, k]), near[:, k]
        at += 3
    src = X[:, _NEIGHBOUR_COLUMNS]
    width = len(NEIGHBOURS)
    for d in (-2, -1, 1, 2):
        if d < 0:
            F[-d:, at:at + width] = src[:d]
        else:
            F[:-d, at:at + width] = src[d:]
        at += width
    F[:, at] = words / max(words.max(), 1.0)
    F[:, at + 1] = words / max(float(np.median(words)), 1.0)
    return F


def _units(block: Block) -> Iterable[tuple]:
    """What a block is matched on across renderings: its word trigrams, or its key when shorter."""
    return trigrams(block.words) if block.n >= 3 else ((block.key,),)


def page_scores(blocks: list[Block], p: np.ndarray) -> dict[tuple, float]:
    """Per word trigram of the page (a short block: its key), the best score of a block holding it."""
    best: dict[tuple, float] = {}
    for block, q in zip(blocks, p, strict=True):
        for t in _units(block):
            if best.get(t, -1.0) < q:
                best[t] = q
    return best


def scores_of(paragraphs: list[Block], best: dict[tuple, float]) -> list[float | None]:
    """The detector's score for each paragraph of another extraction of the page (trafilatura's),
    read off the page's blocks (:func:`page_scores`): the mean over the paragraph's word trigrams of
    the best score of a block holding it; a paragraph under three words scores as the block equal to
    it. None where the page's blocks do not hold the paragraph (the renderings differ): no evidence
    either way."""
    scores: list[float | None] = []
    for para in paragraphs:
        found = [best[t] for t in _units(para) if t in best]
        scores.append(float(np.mean(found)) if found else None)
    return scores


def context_features(p: np.ndarray, words: np.ndarray) -> np.ndarray:
    """One row of :data:`CONTEXT` per block: the first pass's scores around it and where the article lies."""
    n = len(p)
    C = np.zeros((n, len(CONTEXT)))
    if not n:
        return C
    c = np.zeros((n + 1, 3))
    c[1:, 0] = p
    c[1:, 1] = p * (words >= 8)
    c[1:, 2] = p * words
    np.cumsum(c, axis=0, out=c)
    C[:, 0] = p
    for k, w in enumerate((1, 2, 4, 8, 16)):
        hi, lo, size = _window(n, w)
        C[:, 1 + k] = (c[hi, 0] - c[lo, 0]) / size[:, 0]
    hi, lo, _ = _window(n, 3)
    core = int(np.argmax(c[hi, 1] - c[lo, 1]))  # the middle of the densest run of article-like prose
    total = max(c[-1, 2], 1e-9)
    C[:, 6] = c[:-1, 2] / total  # the article's words before this block, as the first pass sees it
    C[:, 7] = (total - c[1:, 2]) / total
    offset = np.arange(n) - core
    C[:, 8] = offset / n
    C[:, 9] = np.log1p(np.abs(offset))
    top = max(float(p.max()), 1e-9)
    C[:, 10] = p / top
    C[:, 11] = top
    C[:, 12] = np.count_nonzero(p >= 0.5) / n
    C[:, 13] = math.log1p(c[-1, 2])
    return C


#: words of a date line (the rest is numbers)
MONTHS = frozenset((
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "mon", "tue", "wed",
    "thu", "fri", "sat", "sun", "am", "pm", "gmt", "utc", "est", "pst", "cet", "updated", "published",
    "posted"))
ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)?")


def dateish(words: list[str]) -> bool:
    """A date or a time and little else ("Friday, November 9, 2012", "Posted 10:02 AM")."""
    return sum(w not in MONTHS and not ORDINAL.fullmatch(w) for w in words) < 2


def headline_candidates(p: np.ndarray, X: np.ndarray, words: np.ndarray,
                        blocks: list[Block]) -> tuple[list[int], np.ndarray]:
    """Blocks that may be the headline - short lines up to just after the article starts - and their
    :data:`HEADLINE` rows."""
    start = _article_start(p, words)
    candidates = [j for j in range(min(start + 3, len(p), HEADLINE_REACH)) if 1 <= words[j] <= 30]
    return candidates, headline_rows(p, X, blocks, candidates, start, len(candidates))


def _article_start(p: np.ndarray, words: np.ndarray) -> int:
    article = np.flatnonzero((p >= 0.5) & (words >= 12))
    return int(article[0]) if len(article) else len(p)


def headline_rows(p: np.ndarray, X: np.ndarray, blocks: list[Block], lines: list[int], start: int,
                  k: int, rank: int = 0) -> np.ndarray:
    """The :data:`HEADLINE` rows of these lines, the first of them the ``rank``-th of ``k`` candidates
    (lines past the candidates rank after them). What gives a
    headline away on a scraped page: the page's first line (its ``<title>``) holds it, a breadcrumb or
    a related list repeats it, its words come back in the lead, and a byline or a date sits right
    under it; a date line looks like one and is not."""
    if not lines:
        return np.zeros((0, X.shape[1] + len(HEADLINE)))
    first = set(blocks[0].words)
    lead = set(blocks[start].words) if start < len(blocks) else set()
    copies = Counter(b.key for b in blocks)
    reach = [b.key for b in blocks[:TITLE_REACH]]
    rows = []
    for r, j in enumerate(lines, start=rank):
        block = blocks[j]
        mine, below = set(block.words), blocks[j + 1:j + 4]
        rows.append(np.concatenate([X[j], [
            p[j], start - j, math.log1p(max(start - j, 0)), k - r, r, float(j == 0),
            len(mine & first) / len(mine) if j and mine else 0.0,
            sum(1 for i, other in enumerate(reach) if i != j and block.key and block.key in other),
            len(mine & lead) / len(mine) if mine else 0.0,
            any(b.shape == "byline" for b in below),
            any(b.n <= 12 and DATED.search(b.text) is not None for b in below),
            dateish(block.words), copies[block.key]]]))
    return np.array(rows)


@dataclass(frozen=True, slots=True)
class Titles:
    """What a page's markup calls its title: its ``<h1>`` headings, its ``og:title``-like meta tags
    and its ``<title>``. Each is a hint, not the headline: on many sites the ``<h1>`` is the site's
    name and the ``<title>`` runs the site or section into the headline."""

    h1: tuple[str, ...] = ()
    meta: tuple[str, ...] = ()
    title: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.h1 or self.meta or self.title)

    @property
    def all(self) -> tuple[str, ...]:
        """Likeliest first: the ``<h1>``, the meta title, the ``<title>``."""
        return self.h1 + self.meta + self.title


#: where a title joins its parts: "Headline - Site", "Site | Section | Headline", "Site: Headline"
TITLE_SEPARATOR = re.compile(r"\s+[-|–—»:·•]\s+|\s*[|»]\s*|_|:\s+")
TITLE_GROUPS = ("h1", "meta", "title")
TITLED: tuple[str, ...] = (
    "in_a_title", "title_share", "is_a_title", "a_title_segment", "titles_segmented_so", "titles_holding",
    "titles", "first_title_holding", "lines_holding",
    *(f"{name}_{group}" for group in TITLE_GROUPS for name in ("is", "in", "segment_of", "share_of", "has")),
    "first_title_segment", "last_title_segment", "title_segments", "title_segment_beside_a_heading",
)  # after the line's HEADLINE row


def _segments(text: str) -> list[str]:
    return [k for k in (key(part) for part in TITLE_SEPARATOR.split(text)) if k]


def title_candidates(p: np.ndarray, X: np.ndarray, words: np.ndarray, blocks: list[Block],
                     candidates: list[int], H: np.ndarray, titles: Titles) -> tuple[list[int], np.ndarray]:
    """The headline candidates (``H``: their HEADLINE rows) and any other line that is one of the
    page's titles or a part of one, with their HEADLINE and :data:`TITLED` rows: which titles hold
    them, whole or as a part. A site name is often the ``<h1>`` and a part of the ``<title>`` beside
    the headline; the headline is then the ``og:title`` and the other part."""
    groups = [([key(t) for t in group], [set(_segments(t)) for t in group])
              for group in (titles.h1, titles.meta, titles.title)]
    hinted = [k for group_keys, _ in groups for k in group_keys]  # in the order of titles.all
    split = [s for _, group_split in groups for s in group_split]
    every = set().union(*split)
    wanted = every | set(hinted)
    have = set(candidates)
    added = [j for j, b in enumerate(blocks[:HEADLINE_REACH]) if j not in have and b.key in wanted and 1 <= b.n <= 30]
    lines = [*candidates, *added]
    title_parts = [s for t in titles.title for s in _segments(t)]
    headings = {key(t) for t in titles.h1 + titles.meta}
    page = "\n".join(b.key for b in blocks)  # lines holding a line: its count in the page less its copies
    copies = Counter(b.key for b in blocks)
    rows = []
    for j in lines:
        k = blocks[j].key
        holding = [i for i, t in enumerate(hinted) if k and k in t]
        row = [float(bool(holding)), max((len(k) / len(t) for t in hinted if k and k in t), default=0.0),
               float(k in hinted), float(k in every), sum(k in s for s in split), len(holding), len(hinted),
               holding[0] if holding else -1, page.count(k) - copies[k] if k else 0]
        for group_keys, group_split in groups:
            row += [float(k in group_keys), float(any(k and k in t for t in group_keys)),
                    float(any(k in s for s in group_split)),
                    max((len(k) / len(t) for t in group_keys if k and k in t), default=0.0), float(bool(group_keys))]
        row += [float(bool(title_parts) and title_parts[0] == k), float(bool(title_parts) and title_parts[-1] == k),
                len(title_parts), float(k in title_parts and any(s != k and s in headings for s in title_parts))]
        rows.append(row)
    k = len(candidates)
    H = np.vstack([H, headline_rows(p, X, blocks, added, _article_start(p, words), k, rank=k)]) if added else H
    return lines, np.hstack([H, np.array(rows, float).reshape(len(lines), len(TITLED))])


class Trees:
    """Oblivious decision trees: tree t sends a row to leaf sum_k 2^k [x[feature[t,k]] > border[t,k]]."""

    def __init__(self, feature: np.ndarray, border: np.ndarray, leaves: np.ndarray, bias: float) -> None:
        self.feature = np.asarray(feature, np.intp)  # (trees, depth)
        self.border = np.asarray(border, float)  # (trees, depth); +inf pads a shallower tree
        self.leaves = np.asarray(leaves, float)  # (trees, 2**depth)
        self.bias = float(bias)
        trees, self.depth = self.feature.shape
        self._features, self._borders = self.feature.ravel(), self.border.ravel()
        self._offsets = np.arange(trees) * self.leaves.shape[1]
        self._values = self.leaves.ravel()

    def logit(self, X: np.ndarray) -> np.ndarray:
        if not len(X):
            return np.zeros(0)
        bits = (X[:, self._features] > self._borders).reshape(len(X), -1, self.depth)
        leaf = bits[:, :, 0].astype(np.intp)
        for k in range(1, self.depth):
            leaf |= bits[:, :, k].astype(np.intp) << k
        return self._values[leaf + self._offsets].sum(axis=1) + self.bias

    def proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(X)))


def fill_gaps(blocks: list[Block], keep: np.ndarray, p: np.ndarray) -> None:
    """Keep a short line between two kept blocks - a sub-heading, a quoted line - and a paragraph
    inside the article that scored above GAP_MIN (one the widgets around it made doubtful), unless
    its shape says it is furniture (an advertisement slug, a "Read more:" line, a caption). After
    the article, only paragraphs that continue it directly are kept that way (its last paragraph,
    doubted for its shortness next to a "Related" heading): anywhere below it the same rule cost
    held-out pages, since comments follow articles; held out the continuation is neutral (text
    path F1 0.8975 -> 0.8984). It passes over one line of furniture that stands inside articles (an
    ad slot, a "Read more:" link, a caption), which stays out: the last paragraph past "Read more:"
    went where the detector scored it under 0.5 (3 real pages changed, +0.04 F1 in all)."""
    kept = np.flatnonzero(keep)
    if not len(kept):
        return
    for i in range(kept[0] + 1, kept[-1]):
        if keep[i] or blocks[i].shape is not None:
            continue
        if (keep[i - 1] and keep[i + 1] and blocks[i].n <= 12) or (blocks[i].prose and p[i] >= GAP_MIN):
            keep[i] = True
    i = kept[-1] + 1
    while i < len(blocks):
        if blocks[i].shape in INSIDE_SHAPES and i + 1 < len(blocks):
            i += 1  # past an ad slot, a "Read more:" link or a caption, which stay out
        if not (blocks[i].prose and blocks[i].shape is None and p[i] >= GAP_MIN):
            break
        keep[i] = True
        i += 1


GAP_MIN = 0.2
#: furniture that stands inside articles: the continuation after the article passes over one
INSIDE_SHAPES = frozenset(("advertisement", "read_more", "caption"))


@dataclass(frozen=True, slots=True)
class Detection:
    keep: np.ndarray  # bool per block: part of the article
    p: np.ndarray  # the second pass's probability per block
    headline: int | None  # index of the headline block, when asked for and found
    article: bool  # some block reads as an article's prose: False for a section front, an error page


MODELS = ("first", "second", "headline", "titled")


@dataclass(frozen=True, slots=True)
class ArticleModel:
    """The four models: first pass, second pass (with context), and two rankers of a page's lines for
    its headline: the lines alone, and with the page's titles."""

    first: Trees
    second: Trees
    headline: Trees
    titled: Trees
    meta: dict

    #: a block is kept at p >= KEEP, or at p >= RELATIVE * the best paragraph's p when none reaches KEEP
    KEEP = 0.5
    RELATIVE = 0.6
    #: a headline candidate that reads as a sentence (a lead, a standfirst) needs HEADLINE_SENTENCE
    #: of its page's odds
    HEADLINE_SENTENCE = 0.3
    #: a page has an article when a block of 8 words or more scores at least ARTICLE_MIN; a text of
    #: fewer than PAGE_BLOCKS blocks is never judged a page without one (a short article, a brief)
    ARTICLE_MIN = 0.2
    PAGE_BLOCKS = 8
    #: HTML path: a paragraph of trafilatura's text goes when the detector scores it under TRIM
    TRIM = 0.01

    def detect(self, blocks: list[Block], want_headline: bool = False, titles: Titles = Titles()) -> Detection:
        """Which blocks are the article (and the headline). ``titles`` are what the page's markup calls
        its title, when it has markup: the title model then picks the headline among the candidates
        and the lines those titles hold."""
        X = line_features(blocks)
        words = np.array([b.n for b in blocks], float)
        p1 = self.first.proba(X)
        p = self.second.proba(np.hstack([X, context_features(p1, words)]))
        # the threshold drops for a page whose paragraphs all score low, so that its best paragraphs
        # are kept rather than its headline alone: the best of the blocks that read as sentences, since
        # a headline often scores higher than the text (held out, text path: 71 -> 65 pages under 0.5,
        # three of them pages that came out as a headline and nothing else)
        best = max((q for b, q in zip(blocks, p, strict=True) if b.n >= 8 and is_sentence(b)), default=1.0)
        keep = p >= min(self.KEEP, self.RELATIVE * best)
        headline = None
        if want_headline:
            candidates, H = headline_candidates(p, X, words, blocks)
            if candidates and titles:
                candidates, T = title_candidates(p, X, words, blocks, candidates, H, titles)
                headline = self._headline(blocks, candidates, self.titled.logit(T))
            elif candidates:
                headline = self._headline(blocks, candidates, self.headline.logit(H))
        if len(blocks) < self.PAGE_BLOCKS:  # a brief or a clean short article: no page around it to cut
            keep[:] = True
        else:
            fill_gaps(blocks, keep, p)
        article = len(blocks) < self.PAGE_BLOCKS or any(
            b.n >= 8 and q >= self.ARTICLE_MIN for b, q in zip(blocks, p, strict=True))
        return Detection(keep, p, headline, article)

    def _headline(self, blocks: list[Block], candidates: list[int], rank: np.ndarray) -> int | None:
        """The best-ranked candidate; one that reads as a sentence only when the model is fairly sure,
        its share of the page's odds (a softmax of the ranks) at least HEADLINE_SENTENCE. Held out,
        any threshold on the rest cost more exact headlines (L3S-GN1: 0.83 at none, 0.64 at 0.3) than
        it saved clean articles from losing a short first line."""
        share = np.exp(rank - rank.max())
        share /= share.sum()
        sentence = np.array([is_sentence(blocks[j]) for j in candidates])
        score = np.where(sentence & (share < self.HEADLINE_SENTENCE), -1.0, share)
        best = int(np.argmax(score))
        return candidates[best] if score[best] >= 0 else None

    def save(self, path: Path) -> None:
        arrays = {}
        for name in MODELS:
            trees: Trees = getattr(self, name)
            arrays |= {f"{name}.feature": trees.feature, f"{name}.border": trees.border,
                       f"{name}.leaves": trees.leaves, f"{name}.bias": np.array(trees.bias)}
        meta = {"features": list(FEATURES), **self.meta, "context": list(CONTEXT), "headline": list(HEADLINE),
                "titled": list(TITLED)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> ArticleModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            names = (list(FEATURES), list(CONTEXT), list(HEADLINE), list(TITLED))
            if (meta["features"], meta["context"], meta.get("headline"), meta.get("titled")) != names:
                raise ValueError(f"{path} was trained on other features than this code computes: "
                                 "retrain it with `streams train-clean`")
            parts = {name: Trees(z[f"{name}.feature"].astype(np.intp), z[f"{name}.border"], z[f"{name}.leaves"],
                                 float(z[f"{name}.bias"])) for name in MODELS}
        return cls(**parts, meta=meta)


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> ArticleModel:
    """The shipped model, loaded once per process."""
    return ArticleModel.load(path)


