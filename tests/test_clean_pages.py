"""The clean stage on real pages: held-out floors on a CI-sized slice of the development corpus, the
headline, pages with no article, the exported trees, and the training tool end to end."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streams.contract.events import CleanArticle, DeadLetter
from streams.stages.clean import clean_message, clean_text, is_markup
from streams.stages.clean.blocks import normalise, split_blocks
from streams.stages.clean.detector import (
    FEATURES,
    HEADLINE_REACH,
    MODEL_DIR,
    TITLED,
    ArticleModel,
    Titles,
    Trees,
    headline_candidates,
    line_features,
    title_candidates,
)
from streams.tools.eval_pages import as_scored, evaluate_pages, score
from streams.tools.train_clean import held_out_path, read_pages
from tests.conftest import SHARED, require

CORPUS = SHARED / "corpus" / "webpages.jsonl.gz"
SCORER = SHARED / "tools" / "score_pages.py"
NOW = datetime(2026, 12, 2, tzinfo=UTC)

#: Floors for the slice (every sixth page: 104 L3S-GN1, 220 dragnet, 11 CleanPortalEval), each
#: dataset scored by the model trained without it; about two points under what the slice measured,
#: so that they fail on a real regression. Measured (2026-12-07): text 0.929 / 0.892 / 0.993, 8 pages
#: under 0.5; HTML 0.940, 6 pages worse than trafilatura alone.
TEXT_FLOORS = {"l3s-gn1": 0.88, "dragnet": 0.86, "cleanportaleval": 0.96}
HTML_FLOOR = 0.90
#: exact headlines measured on the slice with the ranking headline models: text 0.876, HTML 0.905
#: (0.850 and 0.899 with the classifiers before them)
HEADLINE_FLOOR = 0.85
HTML_HEADLINE_FLOOR = 0.88


@pytest.fixture(scope="module")
def pages() -> list[dict]:
    require(CORPUS.exists(), f"the real-page corpus ({CORPUS})")
    return read_pages(CORPUS)


@pytest.fixture(scope="module")
def slice_report(pages: list[dict]) -> dict:
    return evaluate_pages(pages[::6], entities=False, progress=False)


def test_text_path_held_out_floors(slice_report: dict) -> None:
    text = slice_report["paths"]["text/plain"]
    for dataset, floor in TEXT_FLOORS.items():
        assert text[dataset]["f1"] >= floor, (dataset, text[dataset])
    assert text["all"]["under_half"] <= 0.07 * text["all"]["pages"], text["all"]  # 19 of 335 measured
    floor = slice_report["paths"]["floor"]["all"]["f1"]
    assert text["all"]["f1"] >= floor + 0.25  # far above keeping the whole page


def test_html_path_held_out_floor_and_never_behind_trafilatura(slice_report: dict) -> None:
    """trafilatura's text is the HTML path's default: on no dataset may the path do worse than
    trafilatura alone, and few pages may."""
    html, alone = slice_report["paths"]["text/html"], slice_report["paths"]["trafilatura"]
    assert html["all"]["f1"] >= HTML_FLOOR, html["all"]
    for dataset in TEXT_FLOORS:
        assert html[dataset]["f1"] >= alone[dataset]["f1"], (dataset, html[dataset], alone[dataset])
    assert html["all"]["worse_than_trafilatura"] <= 0.05 * html["all"]["pages"], html["all"]


def test_the_headline_is_found_held_out(slice_report: dict) -> None:
    for path in ("text/plain", "text/html"):
        headline = slice_report["paths"][path]["all"]["headline"]
        assert headline["exact"] >= HEADLINE_FLOOR and headline["pages"] > 300, (path, headline)
    html, text = (slice_report["paths"][path]["all"]["headline"] for path in ("text/html", "text/plain"))
    assert html["exact"] > slice_report["paths"]["trafilatura"]["all"]["headline"]["exact"] + 0.2  # beyond <h1>
    # what the markup calls its title, weighed by the title model, is worth more than the text alone
    assert html["exact"] >= HTML_HEADLINE_FLOOR and html["exact"] >= text["exact"] + 0.02, (html, text)


def test_scores_agree_with_the_shared_scorer(pages: list[dict]) -> None:
    require(SCORER.exists(), f"the shared scorer ({SCORER})")
    spec = importlib.util.spec_from_file_location("score_pages", SCORER)
    shared = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shared)
    for page in pages[:40]:
        cleaned = clean_text(page["text"])
        prediction = {"title": cleaned.title, "body": cleaned.body}
        assert score(shared.predicted(page, prediction), page["gold_body"]) == shared.score(
            shared.predicted(page, prediction), page["gold_body"])


MENU = ["Home", "World", "Business", "Markets", "Tech", "Sport", "Opinion", "Subscribe", "Sign in"]
HEADLINE = "Central bank raises rates for the third time this year"
STORY = [
    "The central bank raised its key interest rate by half a point on Friday, the third increase this year, as "
    "inflation stayed well above its target for a ninth month.",
    "Governor Maria Lopez told reporters the bank was prepared to act again if prices kept rising faster than "
    "wages, and that the decision had been unanimous.",
    "Economists had expected a smaller move. The currency rose 1.2% against the dollar after the announcement, "
    "while bond yields climbed to their highest level since 2011.",
    "Retailers warned that higher borrowing costs would weigh on spending in the run-up to the holidays, when "
    "many of them make most of their annual profit.",
]
FOOTER = ["Most read", "Oil falls as demand slows", "Stocks slide in Asia", "Gold hits record high",
          "Contact us", "Privacy policy", "Terms of use", "© 2026 Example News. All rights reserved."]


def test_the_headline_is_found_in_a_whole_page_and_kept_out_of_the_body() -> None:
    page = "\n".join([*MENU, "", HEADLINE, "By Jane Doe", "2 December 2026", "", "\n\n".join(STORY), "", *FOOTER])
    cleaned = clean_text(page)
    assert cleaned.title == HEADLINE
    assert cleaned.paragraphs == STORY
    assert not any(word in cleaned.body for word in ("Subscribe", "Privacy", "Stocks slide"))


SECTION_FRONT = [*MENU, "Markets"] + [
    line for n in range(12) for line in (f"Shares in firm {n} {'rise' if n % 2 else 'fall'} after results",
                                         f"{n + 1} hours ago", "Markets")] + FOOTER


def test_a_page_with_no_article_is_dead_lettered_no_article() -> None:
    for lines in (SECTION_FRONT, [*MENU, "Page not found", "Sorry, we could not find that page.",
                                  "Go to the home page", *FOOTER]):
        message = json.dumps({"id": "front", "url": "https://news.example/markets", "source": "news.example",
                              "body": "\n".join(lines), "published_at": "2026-12-02T06:00:00Z"}).encode()
        out = clean_message(message, NOW, 1_000_000)
        assert isinstance(out, DeadLetter) and out.reason == "no_article", out


def test_a_short_article_among_lists_of_links_is_kept() -> None:
    """An aggregator's one-paragraph excerpt inside its page furniture is an article, not a front."""
    lines = [HEADLINE, STORY[0], "Related Articles", *FOOTER[1:4], *FOOTER[1:4], "RECOMMEND",
             *(x for pair in zip(FOOTER[1:4], ["14/09/2026", "20/11/2026", "24/07/2026"], strict=True) for x in pair)]
    message = json.dumps({"id": "ex", "url": "https://agg.example/1", "source": "agg.example", "title": HEADLINE,
                          "body": "\n".join(lines), "published_at": "2026-12-02T06:00:00Z"}).encode()
    out = clean_message(message, NOW, 1_000_000)
    assert isinstance(out, CleanArticle) and out.body == STORY[0], out


def test_the_html_path_reads_the_page_when_trafilatura_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.stages.clean import html

    paras = "".join(f"<p>{p}</p>" for p in STORY)
    page = (f"<html><head><title>{HEADLINE} - Example News</title></head><body><nav>{' | '.join(MENU)}</nav>"
            f"<h1>{HEADLINE}</h1><div>{paras}</div><footer>{'<br>'.join(FOOTER)}</footer></body></html>")
    assert clean_text(page, None, "text/html").paragraphs == STORY
    monkeypatch.setattr(html, "main_text", lambda tree, precise=True: "")  # as on a page it cannot read
    cleaned = clean_text(page, None, "text/html")
    assert cleaned.title == HEADLINE and cleaned.paragraphs == STORY


def test_a_page_whose_headline_outscores_its_paragraphs_keeps_them(pages: list[dict]) -> None:
    """On a page the detector doubts (an unseen site), the threshold drops to a share of the best
    paragraph's score. The best was taken over every block of 8 words or more, so a long headline
    scored 0.98 held it at 0.5 and the page came out as a headline with no body (dead-lettered
    ``no_content``): a paragraph is a block that reads as a sentence. A real page, held out."""
    page = next(p for p in pages if p["id"] == "dragnet/R7")
    cleaned = clean_text(page["text"], model=ArticleModel.load(held_out_path("dragnet")))
    precision, recall, _ = score(as_scored(page, cleaned.title, cleaned.body), page["gold_body"])
    assert cleaned.paragraphs and precision >= 0.9 and recall >= 0.4, (precision, recall, cleaned.paragraphs)


def test_the_page_titles_are_read_by_kind() -> None:
    from streams.stages.clean.html import headline, parse, titles

    tree = parse("<html><head><title>Example News: Ferry route approved</title>"
                 "<meta property='og:title' content='Ferry route approved'>"
                 "<meta name='twitter:title' content='Ferry route approved!'></head>"
                 "<body><h1>Example  News</h1><p>Text.</p></body></html>")
    found = titles(tree)
    assert found == Titles(h1=("Example News",), meta=("Ferry route approved", "Ferry route approved!"),
                           title=("Example News: Ferry route approved",))
    assert headline(tree) == "Example News"  # what trafilatura alone would take: the first <h1>
    assert not titles(parse("<html><body><p>No titles at all.</p></body></html>"))


def test_a_part_of_the_title_anywhere_on_the_page_is_a_headline_candidate() -> None:
    """The headline model looks at the lines above the article's start; a line that is a part of the
    page's ``<title>`` ("Site | Headline") is weighed wherever it stands, with which titles hold it."""
    lines = [*MENU, *STORY, "Related", HEADLINE, *FOOTER]
    blocks = split_blocks(normalise("\n".join(lines)))
    X = line_features(blocks)
    n = np.array([b.n for b in blocks], float)
    p = np.where(n >= 12, 0.9, 0.0)
    candidates, H = headline_candidates(p, X, n, blocks)
    at = next(i for i, b in enumerate(blocks) if b.text == HEADLINE)
    assert at not in candidates
    lines_, T = title_candidates(p, X, n, blocks, candidates, H, Titles(title=(f"Example News | {HEADLINE}",)))
    assert lines_[:len(candidates)] == candidates and at in lines_
    row = dict(zip(TITLED, T[lines_.index(at), H.shape[1]:], strict=True))
    assert row["a_title_segment"] and row["last_title_segment"] and not row["first_title_segment"]
    assert row["in_title"] and not row["is_title"] and not row["has_h1"]
    assert T.shape == (len(lines_), H.shape[1] + len(TITLED))


def test_the_headline_is_looked_for_near_the_top_only() -> None:
    """A page of thousands of short lines and no article (a directory) made every line a headline
    candidate, and the title model's features of each cost a scan of the page: 17 s of 25 s on such a
    page of 0.9 MB. The candidates stop at HEADLINE_REACH lines; the headlines of the real pages stand
    within the first 511."""
    lines = [f"Directory entry {i}" for i in range(3 * HEADLINE_REACH)]
    blocks = split_blocks(normalise("\n".join(lines)))
    X = line_features(blocks)
    n = np.array([b.n for b in blocks], float)
    p = np.zeros(len(blocks))
    candidates, H = headline_candidates(p, X, n, blocks)
    assert candidates == list(range(HEADLINE_REACH))
    titles = Titles(title=(f"{lines[-1]} | Directory",), h1=(lines[-2],))
    found, T = title_candidates(p, X, n, blocks, candidates, H, titles)
    assert found == candidates and len(T) == HEADLINE_REACH  # the titles' lines stand beyond the reach


def test_the_html_headline_is_the_title_part_that_is_not_the_site() -> None:
    """A blog-like page: the site's name is the ``<h1>`` and the first part of the ``<title>``; the
    post's title is the other part and stands above the post."""
    paras = "".join(f"<p>{p}</p>" for p in STORY)
    page = (f"<html><head><title>Harbour Notes: {HEADLINE}</title></head><body>"
            f"<div id='header'><h1>Harbour Notes</h1><p>A blog about ships and money</p></div>"
            f"<nav>{'<br>'.join(MENU)}</nav><h2>Thursday, October 18, 2012</h2><h3>{HEADLINE}</h3>{paras}"
            f"<p>Posted by Sam at 8:14 PM</p><footer>{'<br>'.join(FOOTER)}</footer></body></html>")
    cleaned = clean_text(page, None, "text/html")
    assert cleaned.title == HEADLINE
    assert cleaned.paragraphs == STORY


def test_the_shipped_models_load_and_refuse_other_features(tmp_path: Path) -> None:
    for name in ("model.npz", "without-l3s-gn1.npz", "without-dragnet.npz", "without-cleanportaleval.npz"):
        assert ArticleModel.load(MODEL_DIR / name).meta["pages"] > 600
    model = ArticleModel.load(MODEL_DIR / "model.npz")
    assert model.meta["pages"] > 1990  # every page but the eight whose text is their HTML source
    stale = dataclasses.replace(model, meta={**model.meta, "features": ["old", "features"]})
    stale.save(tmp_path / "stale.npz")
    with pytest.raises(ValueError, match="train-clean"):
        ArticleModel.load(tmp_path / "stale.npz")


def test_exported_trees_score_as_catboost_does() -> None:
    try:
        import catboost
    except ImportError:
        require(False, "catboost, to train the article detector (pip install 'streams[train]')")
    from streams.tools.train_clean import export

    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 12))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] ** 2 + rng.normal(scale=0.5, size=2000)) > 0
    model = catboost.CatBoostClassifier(iterations=40, depth=5, verbose=0, random_seed=0, allow_writing_files=False)
    model.fit(X, y)
    trees: Trees = export(model)
    assert np.allclose(trees.proba(X[:300]), model.predict_proba(X[:300])[:, 1], atol=1e-9)


def test_the_headline_rankers_export_as_catboost_ranks() -> None:
    """The headline models rank a page's candidates (YetiRank): their exported trees give CatBoost's
    own raw scores, and they learn which of a page's lines is its pick."""
    try:
        import catboost
    except ImportError:
        require(False, "catboost, to train the article detector (pip install 'streams[train]')")
    from streams.tools.train_clean import _fit_ranker, export

    rng = np.random.default_rng(2)
    n, lines = 300, 8  # pages of 8 candidate lines; the pick is the line with the most of x0 - x1
    X = rng.normal(size=(n * lines, 6))
    page = np.repeat(np.arange(n), lines)
    best = np.array([i * lines + int(np.argmax(X[i * lines:(i + 1) * lines, 0] - X[i * lines:(i + 1) * lines, 1]))
                     for i in range(n)])
    y = np.zeros(len(X), bool)
    y[best] = True
    model = catboost.CatBoost({"loss_function": "YetiRank", "iterations": 40, "depth": 5, "random_seed": 0,
                               "verbose": 0, "allow_writing_files": False})
    model.fit(catboost.Pool(X, y.astype(float), group_id=page))
    assert np.allclose(export(model).logit(X[:300]), model.predict(X[:300], prediction_type="RawFormulaVal"))
    trees = _fit_ranker(X, y, page, iterations=60)
    picked = [int(np.argmax(trees.logit(X[i * lines:(i + 1) * lines]))) + i * lines for i in range(n)]
    assert np.mean(np.array(picked) == best) > 0.8  # it learnt the page's choice, not a line's yes or no


def test_a_dateline_is_not_taken_for_the_gold_headline() -> None:
    """Some gold bodies keep the site's dateline above the article. Taken for the headline, it taught
    the headline models to pick a page's date and scored the right pick as a miss."""
    from streams.tools.train_clean import gold_parts

    def headline(*paragraphs: str) -> str:
        return gold_parts({"gold_body": "\n\n".join([*paragraphs, STORY[0]])})[0]

    for dateline in ("24 July 2012 Last updated at 06:50 ET", "In Depth | 24 July 2012", "Nov 5, 2012 - 3:39PM PT",
                     "July 24, 2012, 11:56 a.m. ET", "October 25th, 2012 by Dan Meyer",
                     "November 8, 2012 10:22 pm AEST — By Long Zheng"):
        assert headline(dateline, HEADLINE) == HEADLINE, dateline
    for dated in ("AWS Week in Review - October 29, 2012", "August 24 – Neptune At Opposition",
                  "London 2012: Spectacular 800m",
                  "Kingfisher will not fly if it doesn't bring in capital by November 30"):
        assert headline(dated, HEADLINE) == dated  # a headline with a date in it is still the headline


def test_training_writes_every_model_and_they_clean(pages: list[dict], tmp_path: Path) -> None:
    from streams.tools.train_clean import train_all

    few = [p for d in ("l3s-gn1", "dragnet", "cleanportaleval") for p in [x for x in pages if x["dataset"] == d][:20]]
    corpus = tmp_path / "pages.jsonl"
    corpus.write_text("".join(json.dumps(p) + "\n" for p in few))
    written = list(train_all(corpus, tmp_path / "models", iterations=20, progress=False))
    assert sorted(p.name for p in written) == sorted(
        ["model.npz", "without-l3s-gn1.npz", "without-dragnet.npz", "without-cleanportaleval.npz"])
    model = ArticleModel.load(tmp_path / "models" / "model.npz")
    sources = sum(is_markup(p["text"]) for p in few)  # read as HTML by the clean stage: not trained on
    assert model.meta["features"] == list(FEATURES) and model.meta["pages"] == len(few) - sources
    assert clean_text(few[0]["text"], model=model).paragraphs  # a model trained on 60 pages still finds text
