"""Clean stage: recover the article - headline and body paragraphs - from a page's text or HTML.

Plain text (a whole page's visible text, a scraped article with widgets around it, or a clean
article) goes to the learnt detector (:mod:`.detector`), which keeps the blocks of the page's
article and finds the headline when the producer sent no title; the rules (:mod:`.blocks`) then
remove what is boilerplate by shape, repetition or position inside what was kept. An HTML page is
read by trafilatura (:mod:`.html`), whose main text is the article: the detector, reading the page's
visible text, only trims it (a paragraph it is sure is page furniture) and stands in for it when
trafilatura returns next to nothing; the rules then apply as on the text path.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from streams.contract.events import CleanArticle, DeadLetter, RawArticle
from streams.contract.validate import Rejection, dead_letter, parse_raw, traceback_summary
from streams.stages.clean.blocks import (
    Block,
    Cleaned,
    clean_blocks,
    content_hash,
    cut_related,
    is_sentence,
    key,
    normalise,
    split_blocks,
    trigrams,
    words,
)
from streams.stages.clean.detector import MODEL_PATH, ArticleModel, Detection, load_model, page_scores, scores_of

if TYPE_CHECKING:
    from streams.stages.clean.html import Page

__all__ = ["Cleaned", "clean_article", "clean_message", "clean_text", "content_hash", "normalise", "words"]


def clean_text(body: str, title: str | None = None, content_type: str = "text/plain",
               model: ArticleModel | None = None) -> Cleaned:
    """The article title and paragraphs inside ``body``, and counts of what was removed.

    ``model`` overrides the shipped detector."""
    model = model or load_model(MODEL_PATH)
    title = normalise(title or "")
    if content_type != "text/html" and not is_markup(body):
        blocks = split_blocks(normalise(body))
        return from_page(blocks, model.detect(blocks, want_headline=not title), title)
    from streams.stages.clean.html import read_html  # trafilatura and lxml load with the first page

    page = read_html(body)
    blocks = split_blocks(normalise(page.text))
    detection = model.detect(blocks, want_headline=not title, titles=page.titles)
    if not title and detection.headline is not None:
        title = blocks[detection.headline].text
    title = title or normalise(next(iter(page.titles.all), ""))
    extracted = trafilatura_article(page, blocks, detection.p, model)
    if sum(b.n for b in extracted) < RESCUE_WORDS:
        return from_page(blocks, detection, title)
    return from_extract(extracted, detection, title)


#: text that is markup: tags and comments cover at least this share of its characters. A page's source
#: sent as text/plain (a scraper that saved the response, a misparsed page) is read as HTML; prose that
#: quotes a tag or two stays far below it (at most 0.3 on the development pages, 0.65-0.79 on their
#: eight page sources)
MARKUP_SHARE = 0.5
_TAG = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9]*\b[^<>]*|!--.*?--)>", re.S)


def is_markup(text: str) -> bool:
    """Whether ``text`` is a page's HTML source rather than text (see MARKUP_SHARE)."""
    if "<" not in text:
        return False
    return sum(map(len, _TAG.findall(text))) >= MARKUP_SHARE * len(text)


#: text path: a comments heading cuts the rest of the page unless prose the detector scores SURE or
#: more follows it (a comment-count link at the top of an article, the article going on below it)
SURE = 0.95


#: HTML: under this many words of trafilatura's text (none, a caption, a teaser), the page's
#: visible text is read by the detector instead
RESCUE_WORDS = 50
#: HTML: trafilatura's default text is read only when its precise text holds less than COVERED of
#: the word trigrams of what the detector takes for the article; it replaces the precise text when
#: it adds FULLER_SHARE of its words or more and the detector scores what it adds FULLER_P on
#: average (by word)
COVERED = 0.9
FULLER_SHARE = 0.1
FULLER_P = 0.5


def trafilatura_article(page: Page, blocks: list[Block], p: np.ndarray, model: ArticleModel) -> list[Block]:
    """trafilatura's paragraphs of the article, less those the detector is sure are furniture.

    Its precise text as a rule; its default text where that keeps more of the article (a paragraph
    the precise one dropped), judged by the detector on what the default text adds, and asked for
    only where the precise text misses some of what the detector reads as the article (a fifth of
    the real pages: trafilatura's time is most of the HTML path's). Held out this halved the pages
    worse than trafilatura alone (88 -> 43 of 2,008) and added 0.003 F1."""
    from streams.stages.clean.html import paragraphs

    best = page_scores(blocks, p)

    def scored(text: str) -> list[tuple[Block, float | None]]:
        extracted = split_blocks(normalise(paragraphs(text)))
        return list(zip(extracted, scores_of(extracted, best), strict=True))

    chosen = scored(page.precise)
    if _coverage(chosen, [b for b, q in zip(blocks, p, strict=True) if q >= model.KEEP]) < COVERED:
        fuller = scored(page.full())
        have = {b.key for b, _ in chosen}
        added = [(b, q or 0.0) for b, q in fuller if b.key not in have]
        words_added = sum(b.n for b, _ in added)
        if words_added and words_added >= FULLER_SHARE * sum(b.n for b, _ in chosen) and (
                sum(b.n * q for b, q in added) >= FULLER_P * words_added):
            chosen = fuller
    return [b for b, q in chosen if q is None or q >= model.TRIM]


def _coverage(extracted: list[tuple[Block, float | None]], article: list[Block]) -> float:
    """The share of the article's word trigrams the extraction holds."""
    have = {t for b, _ in extracted for t in trigrams(b.words)}
    wanted = [t for b in article for t in trigrams(b.words)]
    return sum(t in have for t in wanted) / len(wanted) if wanted else 1.0


def from_extract(blocks: list[Block], detection: Detection, title: str) -> Cleaned:
    """The article from trafilatura's paragraphs, the detector's doubtful ones already gone: the
    rules remove the rest of the page that came with it (the headline again, bylines, related
    headlines, teasers)."""
    clean_blocks(blocks, title)
    return _cleaned(blocks, title, no_article=not detection.article)


def from_page(blocks: list[Block], detection: Detection, title: str) -> Cleaned:
    """The article from a page's whole text: the detector's blocks, then the rules."""
    keep = detection.keep.copy()
    headline_at = detection.headline if detection.headline is not None else find(blocks, title)
    if headline_at is not None and len(blocks) >= ArticleModel.PAGE_BLOCKS:
        keep_lead(blocks, keep, headline_at)
    kept_at = np.flatnonzero(keep)
    if len(kept_at):  # the page's tail as the rules see it, including the lines the detector kept
        tail = blocks[kept_at[0]:]
        cut_related(tail, [b.prose and q >= SURE for b, q in zip(tail, detection.p[kept_at[0]:], strict=True)])
    for i, (block, kept) in enumerate(zip(blocks, keep, strict=True)):
        if block.kind:
            continue
        if not kept:  # named by its shape, else by where it stood: above, inside or below the article
            block.kind = block.shape if block.shape and block.shape != "tail" else (
                "header" if not len(kept_at) or i < kept_at[0] else "footer" if i > kept_at[-1] else "inline")
    cut_tail(blocks, detection.p)
    if detection.headline is not None:
        headline = blocks[detection.headline]
        title, headline.kind = headline.text, "title"
    clean_blocks([b for b in blocks if b.kind is None], title)
    if not title:
        first = next((b for b in blocks if b.kind is None), None)
        if first is not None and first.n <= 20 and not first.text.endswith("."):
            title, first.kind = first.text, "title"
    return _cleaned(blocks, title, no_article=not detection.article and not leads_into_prose(blocks, title))


def _cleaned(blocks: list[Block], title: str, no_article: bool) -> Cleaned:
    removed = Counter(b.kind for b in blocks if b.kind and b.kind != "title")
    kept = [b for b in blocks if b.kind is None]
    return Cleaned(title, [b.text for b in kept], removed, [w for b in kept for w in b.words], no_article=no_article)


def find(blocks: list[Block], title: str) -> int | None:
    """Where the headline stands in the page, if it does."""
    title_key = key(title)
    return next((i for i, b in enumerate(blocks) if title_key and b.key == title_key), None)


def keep_lead(blocks: list[Block], keep: np.ndarray, headline_at: int) -> None:
    """The sentences between the headline and the article the detector found are the article's lead
    (past a byline, a date, share buttons): kept. The lead is what excerpts and first takes repeat,
    so dedup needs it most; the detector, seeing it beside page furniture, sometimes doubts it."""
    for i in range(headline_at + 1, min(headline_at + 8, len(blocks))):
        if keep[i]:
            return
        if is_sentence(blocks[i]) and blocks[i].shape is None:
            keep[i] = True


def cut_tail(blocks: list[Block], p: np.ndarray) -> None:
    """A "Related articles" or "Comments" heading after the article's first sentence starts the
    page's tail: what the detector kept after it only because nothing on the page scored high (a
    short article among lists of links) goes. Blocks it is sure of stay, since an article can have
    such a box in its middle; a heading above the article cuts nothing."""
    seen_prose = False
    for i, block in enumerate(blocks):
        if block.shape == "tail" and seen_prose:
            for rest, q in zip(blocks[i + 1:], p[i + 1:], strict=True):
                if rest.kind is None and q < ArticleModel.KEEP:
                    rest.kind = "related"
            return
        seen_prose = seen_prose or (block.kind is None and is_sentence(block))


def leads_into_prose(blocks: list[Block], title: str) -> bool:
    """Whether the headline stands in the page followed by a sentence - an article's opening, however
    short, which a page of headlines or an error page does not have."""
    title_key = key(title)
    for i, block in enumerate(blocks):
        if title_key and block.key == title_key:
            return any(map(is_sentence, blocks[i + 1:i + 3]))
    return False


def clean_article(raw: RawArticle, ingested_at: datetime) -> CleanArticle | Rejection:
    """The ``articles.clean`` event for one valid raw article, or why there is none: ``no_article``
    (the page holds no article: a section front of headlines, an error or consent page) or
    ``no_content`` (nothing was left after cleaning)."""
    cleaned = clean_text(raw.body, raw.title, raw.content_type)
    if cleaned.no_article:
        return Rejection("no_article", "the page holds no article (a list of headlines, a menu, an error or "
                         "consent page); nothing of it reads as an article's text", raw.id)
    if not cleaned.paragraphs:
        return Rejection("no_content", "nothing of the article was left after cleaning", raw.id)
    return CleanArticle(
        id=raw.id, url=str(raw.url), source=raw.source, title=cleaned.title, body=cleaned.body,
        content_type=raw.content_type, published_at=raw.published_at, ingested_at=ingested_at,
        content_hash=content_hash(cleaned.title, cleaned.body_words),
        word_count=len(words(cleaned.title)) + len(cleaned.body_words),
        removed=dict(cleaned.removed),
    )


def clean_message(data: bytes, ingested_at: datetime, max_body_bytes: int,
                  raw_ref: str = "") -> CleanArticle | DeadLetter:
    """One raw message in, exactly one event out: the clean article or its dead letter."""
    ref = raw_ref or None
    parsed = parse_raw(data, max_body_bytes)
    if isinstance(parsed, Rejection):
        return dead_letter(data, "clean", parsed.reason, parsed.detail, parsed.id, raw_ref=ref)
    try:
        article = clean_article(parsed, ingested_at)
    except Exception as exc:  # a bug or a pathological page must not stop the partition
        return dead_letter(data, "clean", "stage_error", traceback_summary(exc), parsed.id, raw_ref=ref)
    if isinstance(article, Rejection):  # no article on the page, or nothing left of it
        return dead_letter(data, "clean", article.reason, article.detail, parsed.id, raw_ref=ref)
    article.raw_ref = raw_ref
    return article
