"""The HTML path: a page's visible text, trafilatura's main text, and the headline, from one parse.

trafilatura's main text is the article; the page's visible text, rendered by html-text (as a
scraper that keeps everything would, and as the real-page corpus the detector learnt from was
rendered), is what the detector reads to trim trafilatura's text and to stand in for it when it
is missing or tiny (:func:`streams.stages.clean.clean_text`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import html_text
import lxml.html
import trafilatura

from streams.stages.clean.detector import Titles


def parse(html: str) -> lxml.html.HtmlElement:
    """The page's tree. Parsed from UTF-8 bytes, so a stale ``<meta charset>`` or an XML encoding
    declaration in an already decoded page does no harm. A ``<title>`` never closed (a truncated or
    damaged page) would hold the whole document as its text: it is closed where its first line ends."""
    tree = html_text.parse_html(html)
    title = tree.findtext(".//title") or ""
    if len(title) > MAX_TITLE and "<" in title:
        tree = html_text.parse_html(_UNCLOSED_TITLE.sub(r"\1\2</title>", html, count=1))
    return tree


#: a longer ``<title>`` is a misparsed page, not a title
MAX_TITLE = 300
_UNCLOSED_TITLE = re.compile(r"(<title\b[^>]*>)([^<\n]*)", re.I)


def titles(tree: lxml.html.HtmlElement) -> Titles:
    """The page's own titles: its first ``<h1>`` headings, ``og:title``/``twitter:title``, ``<title>``
    (a string of a whole misparsed page is no title)."""

    def kept(found: Iterable[str]) -> tuple[str, ...]:
        return tuple(text for text in (" ".join(t.split()) for t in found) if text and len(text) <= MAX_TITLE)

    return Titles(
        h1=kept(h1.text_content() for h1 in itertools.islice(tree.iter("h1"), 3)),
        meta=kept(meta.get("content") or "" for meta in tree.iter("meta")
                  if "title" in (meta.get("property") or meta.get("name") or "").split(":")[-1:]),
        title=kept([tree.findtext(".//title") or ""]),
    )


def headline(tree: lxml.html.HtmlElement) -> str:
    """The page's first title: what a user of trafilatura alone would take as the headline."""
    return next(iter(titles(tree).all), "")


def main_text(tree: lxml.html.HtmlElement, precise: bool = True) -> str:
    """trafilatura's main text, paragraphs one per line: ``precise`` (``favor_precision``, 0.910 F1
    on the real pages against 0.840 for its defaults) or with its defaults, which keep more of the
    article on some pages. With its fallback extractors: ``fast=True`` saves a third of its time but
    cost trafilatura 5 points of F1 on real pages (0.846 against 0.896 on a third of them)."""
    return trafilatura.extract(tree, favor_precision=precise, include_comments=False, include_tables=True) or ""


CELL = re.compile(r"(?<!\\)\|")


def paragraphs(main: str) -> str:
    """trafilatura's text one paragraph per block: a table row (``| a | b |``, as it writes tables)
    becomes its cells, so that a byline, a date or a copyright line in a layout table is judged as
    one; a pipe escaped inside a cell stays a pipe."""
    out = []
    for line in main.split("\n"):
        if line.lstrip().startswith("|") or line.rstrip().endswith("|"):
            out += [cell.strip().replace("\\|", "|") for cell in CELL.split(line) if cell.strip()]
        elif line.strip():
            out.append(line.strip())
    return "\n\n".join(out)


@dataclass(frozen=True, slots=True)
class Page:
    tree: lxml.html.HtmlElement
    text: str  # the whole visible text
    precise: str  # trafilatura's main text, favouring precision
    titles: Titles

    def full(self) -> str:
        """trafilatura's main text with its defaults: a second extraction, so only on demand."""
        return main_text(self.tree, precise=False)


def read_html(html: str) -> Page:
    """The page's whole visible text, trafilatura's precise main text of it, and its titles."""
    tree = parse(html)
    text = html_text.extract_text(tree, guess_layout=True)  # works on a cleaned copy of the tree
    return Page(tree, text, main_text(tree), titles(tree))
