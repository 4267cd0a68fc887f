"""Clean stage: each kind of boilerplate goes, and a clean article is never damaged."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from streams.stages.clean import clean_text, content_hash, is_markup, normalise
from streams.stages.clean.blocks import clean_blocks, cut_related, split_blocks
from streams.stages.clean.detector import fill_gaps

ARTICLE = [
    "The central bank raised its key rate by half a point on Friday, the third increase this year, "
    "as inflation stayed well above its target.",
    "Governor Maria Lopez said the bank was prepared to act again if prices kept rising faster than wages.",
    "\"We will do what it takes,\" she told reporters.",
    "Economists had expected a smaller move. The currency rose 1.2% against the dollar after the announcement.",
]
TITLE = "Central bank raises rates again"


def body_of(*blocks: str, sep: str = "\n\n") -> str:
    return sep.join(blocks)


def assert_exact(result, paragraphs=ARTICLE) -> None:
    assert result.paragraphs == list(paragraphs), result.paragraphs


def test_clean_article_is_untouched() -> None:
    result = clean_text(body_of(*ARTICLE), TITLE)
    assert_exact(result)
    assert not result.removed


@pytest.mark.parametrize("paragraphs", [
    ["Short real paragraphs stay.", "Yes.", "The minister said no more than that, and left the room quickly."],
    ["Line-ups:", "City: Moss, Hart, Lane, Ruiz, Cole.", "Referee: H Webb (S Yorkshire).", "78,000", "2000 GMT"],
    ["The budget", "Ministers agreed a package of spending cuts on Tuesday after a long night of talks.",
     "What happens next", "Parliament will vote on the measures next month, officials said."],
    ["\"We use every tool we have,\" the governor said of the bank's approach to rising prices in the region.",
     "By the end of the year, the economy had grown by 3%, helped by exports of oil and gas."],
    ["The update puts your messages at the top of the screen, so you can answer friends and stay updated "
     "without leaving the page you are reading, the company said on Tuesday.",  # 31 words: no call to action
     "Older phones will get a lighter version of the app later in the year."],
    ["Join us? No: the club said it had no room for new members this year, and that its list of those who "
     "want to join is now two years long.", "The club was founded in 1921 and has never moved grounds."],
])
def test_must_not_damage(paragraphs: list[str]) -> None:
    assert_exact(clean_text(body_of(*paragraphs), "Some title"), paragraphs)


@pytest.mark.parametrize(("junk", "kind"), [
    ("By Jane Doe | Updated 3 hours ago", "byline"),
    ("Share on Facebook  Share on X  Share on LinkedIn  Email", "share"),
    ("Home › Business › Markets", "breadcrumb"),
    ("(Photo: Getty Images)", "caption"),
    ("Advertisement", "advertisement"),
    ("Read more: Oil falls as demand slows", "read_more"),
    ("Tags: banks, rates, inflation", "tags"),
    ("© 2026 Example News. All rights reserved.", "copyright"),
    ("Sign up for our morning briefing. Click here to subscribe.", "call_to_action"),
    ("If you're reading this, you're already ahead. Stay there with our newsletter.", "call_to_action"),
    ("We use cookies to improve your experience. Accept all", "cookie"),
    ("Disclaimer: This article is provided for informational purposes only and is not investment advice.",
     "disclaimer"),
])
def test_each_kind_of_boilerplate_is_removed(junk: str, kind: str) -> None:
    blocks = [ARTICLE[0], junk, *ARTICLE[1:]]
    result = clean_text(body_of(*blocks), TITLE)
    assert_exact(result)
    assert result.removed[kind] == 1


def test_page_header_before_the_title_line_goes() -> None:
    result = clean_text(body_of("Markets", "Live", TITLE, *ARTICLE), TITLE)
    assert_exact(result)
    assert result.removed["header"] == 2


def test_tail_section_after_a_related_heading_goes() -> None:
    for marker in ("Related Articles", "You May Also Like", "Most read", "More from Markets", "Recommended"):
        blocks = [*ARTICLE, marker, "Gold hits record high", "Stocks slide in Asia", "A teaser sentence that goes on."]
        result = clean_text(body_of(*blocks, sep="\n"), TITLE)
        assert_exact(result)
        assert sum(result.removed.values()) == 4, marker


def test_teasers_of_the_lead_go_with_or_without_an_ellipsis() -> None:
    lead = ARTICLE[0]
    for teaser in (lead[:80].rsplit(" ", 1)[0] + " […]", lead + lead, lead[:90].rsplit(" ", 1)[0] + "..."):
        result = clean_text(body_of(teaser, TITLE, *ARTICLE), TITLE)
        assert_exact(result)
        assert result.removed["teaser"] == 1


def test_repeated_paragraph_goes_once() -> None:
    result = clean_text(body_of(*ARTICLE, ARTICLE[1]), TITLE)
    assert_exact(result)
    assert result.removed["repeat"] == 1


def test_an_article_printed_twice_stays_once() -> None:
    """Some pages hold the article twice (a print copy under the first): each copy of the lead looks
    like a teaser of the other, but one copy of the article must stay."""
    result = clean_text(body_of(*ARTICLE, "By Jane Doe", *ARTICLE), TITLE)
    assert_exact(result)


DISCLAIMER = ("Disclaimer: The articles reposted on this site are provided for informational purposes only. "
              "They do not necessarily reflect the views of this site.")


def test_price_widget_between_article_and_disclaimer_goes() -> None:
    widget = ["Market Opportunity", "Toncoin Logo", "Toncoin Price(TON)", "$3.12", "+2.10%", "USD"]
    result = clean_text(body_of(*ARTICLE, *widget, DISCLAIMER), TITLE)
    assert_exact(result)
    assert sum(result.removed.values()) == len(widget) + 1


def test_price_widget_where_the_kept_article_ends_goes() -> None:
    """On a whole page the detector may keep a price box under the article and not the disclaimer
    below it: the rules see the kept blocks only, so the box is judged where they end."""
    blocks = split_blocks(body_of(*ARTICLE, "Market Opportunity", "Toncoin Price(TON)", "$3.12", "$3.12$3.12"))
    clean_blocks(blocks, TITLE)
    assert [b.kind for b in blocks[-4:]] == ["widget"] * 4
    assert all(b.kind is None for b in blocks[:-4])
    closing = split_blocks(body_of(*ARTICLE, "Brent crude rose 2% to $71.40 a barrel."))  # a sentence stays
    clean_blocks(closing, TITLE)
    assert all(b.kind is None for b in closing)


def test_a_logo_and_a_heading_the_detector_kept_of_a_price_box_go() -> None:
    """The detector may keep a price box's heading and logo alt text and drop its prices: what the
    rules see then carries no price, and the logo's alt text is the widget's sign."""
    blocks = split_blocks(body_of(*ARTICLE, "Market Opportunity", "Toncoin Logo", DISCLAIMER))
    clean_blocks(blocks, TITLE)
    assert [b.kind for b in blocks[-3:]] == ["widget", "widget", "disclaimer"]
    assert all(b.kind is None for b in blocks[:-3])


def test_the_articles_last_paragraph_past_an_inline_link_stays() -> None:
    """After the article, a paragraph the detector doubted stays when it continues the article
    directly, and an ad slot, a "Read more:" link or a caption between them does not break that
    (the link goes); a paragraph past a heading or a second link does not continue it."""
    blocks = split_blocks(body_of(*ARTICLE[:3], "Read more: Oil falls as demand slows", ARTICLE[3],
                                  "Comments", "I think the bank is wrong about this and rates will fall soon enough."))
    p = np.array([0.9, 0.95, 0.9, 0.3, 0.35, 0.1, 0.3])
    keep = p >= 0.5
    fill_gaps(blocks, keep, p)
    assert keep.tolist() == [True, True, True, False, True, False, False]
    twice = split_blocks(body_of(*ARTICLE[:3], "Advertisement", "Read more: Oil falls as demand slows", ARTICLE[3]))
    keep = np.array([True, True, True, False, False, False])
    fill_gaps(twice, keep, np.array([0.9, 0.95, 0.9, 0.1, 0.3, 0.35]))
    assert not keep[3:].any()


def test_html_page_gives_title_and_paragraphs() -> None:
    paras = "\n".join(f"<p>{p}</p>" for p in ARTICLE)
    html = (f"<html><head><title>{TITLE} | Site</title><script>var a = 1;</script></head><body>"
            "<div class='cookie'>We use cookies. <button>Accept all</button></div>"
            "<nav><a href='/'>Home</a> <a href='/m'>Markets</a></nav>"
            f"<main><article><h1>{TITLE}</h1>{paras}</article>"
            "<aside><h2>Most read</h2><ul><li><a href='/x'>Other story one</a></li></ul></aside></main>"
            "<footer>&copy; 2026 Site</footer></body></html>")
    result = clean_text(html, None, "text/html")
    assert result.title == TITLE
    assert_exact(result)


def test_page_source_sent_as_plain_text_is_read_as_html() -> None:
    """A scraper that saved the response sends markup as text/plain: the tags, scripts and styles must
    not reach the article (nor the tagger); prose quoting a tag stays text."""
    paras = "".join(f"<p class='story-body__paragraph' data-component='text-block'>{p}</p>" for p in ARTICLE)
    menu = "".join(f"<li class='nav__item'><a class='nav__link' href='/{s.lower()}' data-track='nav'>{s}</a></li>"
                   for s in ("Home", "World", "Business", "Markets", "Tech", "Sport"))
    source = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
              "<meta name='viewport' content='width=device-width, initial-scale=1'>"
              "<link rel='stylesheet' type='text/css' href='/static/css/main.min.css?v=20260101'>"
              f"<title>{TITLE}</title><script type='text/javascript' src='/static/js/ads.js' async></script>"
              f"</head><body class='article-page'><nav class='nav'><ul class='nav__list'>{menu}</ul></nav>"
              f"<div class='story' id='main-content'><h1 class='story__headline'>{TITLE}</h1>{paras}</div>"
              "<div id='footer' class='site-footer'><span class='copyright'>&copy; Site</span></div></body></html>")
    assert is_markup(source)
    result = clean_text(source, None, "text/plain")
    assert result.title == TITLE
    assert_exact(result)
    quoting = body_of(*ARTICLE[:-1], "Readers asked what the <blink> tag did; it made text flash on and off.")
    assert not is_markup(quoting)
    assert "<blink>" in clean_text(quoting, TITLE).body


def test_html_page_with_a_title_never_closed_still_gives_the_article() -> None:
    """A damaged page whose ``<title>`` is never closed: parsed as it stands, the whole document is
    the title's text, and the article would be lost."""
    paras = "\n".join(f"<p>{p}</p>" for p in ARTICLE)
    scripts = "\n".join(f"<script src='/js/widget{i}.js' type='text/javascript'></script>" for i in range(12))
    html = (f"<html><head><title>{TITLE}\n{scripts}\n</head><body><nav><a href='/'>Home</a></nav>"
            f"<article><h1>{TITLE}</h1>{paras}</article><footer>&copy; 2026 Site</footer></body></html>")
    result = clean_text(html, None, "text/html")
    assert result.title == TITLE
    assert_exact(result)


def test_plain_text_without_title_takes_the_heading_line() -> None:
    result = clean_text(body_of(TITLE, *ARTICLE), None)
    assert result.title == TITLE
    assert_exact(result)


def test_normalise_unicode_and_whitespace() -> None:
    assert normalise("Cafe\u0301\u00a0 bar\u200b\r\n\r\n\r\n\r\nnext  line ") == "Café bar\n\nnext line"


def test_content_hash_ignores_case_spacing_and_title() -> None:
    assert content_hash("A", "Hello,  World.\n\nAgain") == content_hash("B", "hello world again")
    assert content_hash("A", "Hello world") != content_hash("A", "Hello there world")


def test_cli_prints_the_clean_event(tmp_path) -> None:
    page = tmp_path / "page.txt"
    page.write_text(body_of("By Jane Doe", *ARTICLE, "Related Articles", "Other story"))
    out = subprocess.run([sys.executable, "-m", "streams", "clean", str(page), "--title", TITLE],
                         capture_output=True, text=True, check=True).stdout
    event = json.loads(out)
    assert event["title"] == TITLE and event["body"] == "\n\n".join(ARTICLE)
    assert event["removed"] == {"byline": 1, "related": 2}
    assert event["word_count"] > 50 and len(event["content_hash"]) == 64


# A whole page as a scraper hands it over: menu, ticker, headline, the article, then other stories'
# headlines (no heading above them, or a short one) and the footer. Made up, not any real page.
PAGE_MENU = ["Home", "Markets", "Crypto", "Policy", "Subscribe"]
TICKER = ["BTC $97,120 +1.2%", "ETH $3,410 -0.4%", "SOL $182 +3.0%"]
RELATED = [
    "Fed's Waller says rate cuts could come sooner than markets expect",
    "S&P 500 notches a rare nine-day losing streak as tech slides",
    "Oil tanker rates jump after Red Sea attacks",
    "Japan's central bank keeps its yield cap in place",
    "Gold miners rally as bullion hits another record",
]
FOOTER = ["About us", "Contact", "© 2026 Example Wire. All rights reserved."]


def page_of(*parts: list[str]) -> str:
    return "\n".join(line for part in parts for line in part)


def related_cut(*lines: str) -> list[str]:
    """The lines the tail rule alone marks ``related``, with no detector in front of it."""
    blocks = split_blocks(body_of(*lines))
    cut_related(blocks)
    return [b.text for b in blocks if b.kind == "related"]


def test_related_headlines_after_the_article_go_without_a_heading() -> None:
    assert related_cut(*ARTICLE, *RELATED) == RELATED
    result = clean_text(page_of(PAGE_MENU, TICKER, [TITLE], ARTICLE, RELATED, FOOTER), TITLE)
    assert_exact(result)
    assert "Waller" not in result.body  # the entity a boilerplate headline would have handed the tagger


def test_related_headlines_under_a_short_heading_go() -> None:
    for heading in ("Trending", "Latest news", "Markets Wrap"):
        assert related_cut(*ARTICLE, heading, *RELATED[:3]) == [heading, *RELATED[:3]]
        assert_exact(clean_text(body_of(*ARTICLE, heading, *RELATED[:3]), TITLE))


def test_related_headlines_with_a_summary_each_go() -> None:
    summaries = [f"{line}." for line in ("Markets now price three cuts before the summer",
                                         "The benchmark has not fallen that long since 2004")]
    tail = [RELATED[0], summaries[0], RELATED[1], summaries[1], RELATED[2], "2 hours ago"]
    assert related_cut(*ARTICLE, "More from Markets", *tail) == ["More from Markets", *tail]


def test_a_related_box_inside_the_article_goes_and_the_article_goes_on() -> None:
    box = ["Related Stories:", *RELATED[:3]]
    assert related_cut(ARTICLE[0], *box, *ARTICLE[1:]) == box
    assert_exact(clean_text(body_of(ARTICLE[0], *box, *ARTICLE[1:]), TITLE))


def test_the_articles_own_lists_stay() -> None:
    lists = [
        [ARTICLE[0], "The bank named three risks to its outlook:", "Energy prices rising again this winter",
         "Wage growth running ahead of productivity", "A weaker currency pushing up import costs",
         "Higher borrowing costs for households and firms"],
        [ARTICLE[0], "Ingredients for four:", "2 tsp vegetable oil", "1 large onion", "4 cloves garlic",
         "salt and pepper to taste"],
        [ARTICLE[0], "Weekend results", "Arsenal 2 Chelsea 1", "Leeds United 0 Everton 0", "Fulham 3 Wolves 2"],
    ]
    for paragraphs in lists:
        assert related_cut(*paragraphs) == []
        assert_exact(clean_text(body_of(*paragraphs), TITLE), paragraphs)


def test_a_comment_count_link_above_the_rest_of_the_article_cuts_nothing() -> None:
    """"Comments" under the lead is a link to the thread when the article goes on below it (the
    detector is sure of those paragraphs); after the article it heads the thread, which goes."""
    thread = ["Great analysis, thanks for writing this.", "I disagree, the bank waited far too long to act."]

    def cut(lines: list[str], sure: list[bool]) -> list[str]:
        blocks = split_blocks(body_of(*lines))
        cut_related(blocks, sure)
        return [b.text for b in blocks if b.kind == "comments"]

    lines = [ARTICLE[0], "Comments", *ARTICLE[1:]]
    assert cut(lines, [True, False] + [True] * (len(ARTICLE) - 1)) == []
    assert cut(lines, [False] * len(lines)) == lines[1:]  # nothing sure below: a thread, cut
    tail = [*ARTICLE, "Comments", *thread]
    assert cut(tail, [True] * len(ARTICLE) + [False] * 3) == ["Comments", *thread]


def test_a_comment_thread_goes_even_where_the_detector_took_its_prose_for_the_article() -> None:
    """A comment count or a comments heading with a commenter's line (a name with a date or "says:")
    under it starts a thread, whatever the detector scored the comments; a count with the article's
    prose under it (a link under the lead) cuts nothing."""
    comments = ["Great analysis, thanks for writing this. The bank waited far too long to act on prices.",
                "I disagree: the committee had little choice once wages started to run ahead of output."]
    threads = [
        ["{ 53 comments… read them below or add one }", "1", "Tim Walker 11.06.12 at 11:06 am", comments[0],
         "2", "ohreally 11.06.12 at 11:22 am", comments[1]],
        ["1 Comment", "Mark 08-08-2012", comments[0]],
        ["12 Responses to “Rates on hold”", "Anna Berg says:", "March 3, 2024 at 9:14 pm", *comments],
        ["Comments", "Joe Bloggs 2 hours ago", *comments],
    ]
    for thread in threads:
        blocks = split_blocks(body_of(*ARTICLE, *thread))
        cut_related(blocks, [True] * len(blocks))  # the detector sure of every paragraph
        assert [b.text for b in blocks if b.kind == "comments"] == thread
        assert_exact(clean_text(body_of(*ARTICLE, *thread), TITLE))
    under_the_lead = [ARTICLE[0], "12 comments", *ARTICLE[1:]]
    blocks = split_blocks(body_of(*under_the_lead))
    cut_related(blocks, [True] * len(blocks))
    assert [b.kind for b in blocks] == [None] * len(blocks)


def test_a_bulleted_list_of_places_is_not_a_breadcrumb() -> None:
    trail, places = "Home / News / Regions", ["- Leeds/Bradford/Wakefield, England", "- Cork/Limerick/Galway, Ireland"]
    assert [b.shape for b in split_blocks(body_of(trail, *places))] == ["breadcrumb", None, None]
    paragraphs = [ARTICLE[0], "The service reaches three more areas this week:", *places]
    assert_exact(clean_text(body_of(*paragraphs), TITLE), paragraphs)


def test_a_teaser_cut_off_and_run_into_the_next_line_goes_once() -> None:
    lead = ARTICLE[0]
    teaser = lead[:70].rsplit(" ", 1)[0] + " […] " + RELATED[0]
    for blocks in ([teaser, *ARTICLE], [*ARTICLE[:2], teaser, *ARTICLE[2:]]):
        result = clean_text(body_of(*blocks), TITLE)
        assert_exact(result)
        assert result.removed["teaser"] == 1
