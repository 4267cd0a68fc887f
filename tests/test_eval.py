"""`streams eval` on the full public feed, with the quality targets of the clean and dedup issues."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.tools.evaluate import evaluate
from tests.conftest import Feed, make_feed


@pytest.fixture(scope="module")
def report(full_feed: Feed) -> dict:
    return evaluate(full_feed.path, full_feed.gold_path, progress=False)


def test_cleaning_quality(report: dict) -> None:
    clean = report["clean"]
    assert clean["f1"] >= 0.97
    for source, s in clean["by_source"].items():
        assert s["f1"] >= 0.95, source
    assert clean["by_source"]["plainfeed.example"]["f1"] >= 0.995  # the site that sends clean text


def test_dead_letters_are_exact(report: dict) -> None:
    d = report["deadletter"]
    assert d["expected"] > 0
    assert (d["precision"], d["recall"], d["correct_reason"]) == (1.0, 1.0, 1.0)


def test_dedup_quality(report: dict) -> None:
    d = report["dedup"]
    assert d["precision"] >= 0.995 and d["recall"] >= 0.99 and d["same_story"] >= 0.99
    assert set(d["recall_by_kind"]) >= {"exact", "look-alike"}


@pytest.fixture(scope="module")
def excerpts_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same feed with aggregators' excerpts: 15 % of stories also posted as their first paragraphs."""
    feed = make_feed(tmp_path_factory.mktemp("excerpt-feed"), excerpt_rate=0.15)
    return evaluate(feed.path, feed.gold_path, progress=False, tag=False)


def test_dedup_finds_excerpts_and_fuller_versions(excerpts_report: dict) -> None:
    d = excerpts_report["dedup"]
    assert d["precision"] >= 0.995 and d["recall"] >= 0.99 and d["same_story"] >= 0.99, d
    assert d["recall_by_kind"]["excerpt"]["expected"] > 100 and d["recall_by_kind"]["excerpt"]["recall"] >= 0.93
    assert excerpts_report["deadletter"]["precision"] == 1.0  # no excerpt taken for a page with no article


def test_report_has_throughput_and_tag_sections(report: dict) -> None:
    assert set(report["throughput"]) == {"clean text", "clean html", "dedup", "tag"}
    assert all(v > 0 for v in report["throughput"].values())
    assert report["tag"]["articles"] > 0 and report["tag"]["entities_per_article"] > 1
    assert report["tag"]["batch_gain"] > 0  # a ratio measured in the run; its size is make eval's to show


def test_cli_json_output(tmp_path: Path) -> None:
    feed = make_feed(tmp_path, limit=40)
    out = subprocess.run([sys.executable, "-m", "streams", "eval", "--feed", str(feed.path), "--gold",
                          str(feed.gold_path), "--json"], capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    assert {"clean", "deadletter", "dedup", "tag", "throughput"} <= set(report)
    assert report["messages"] == len(feed.lines)


def test_alerts_match_the_gold_text_and_fire_once_per_story(report: dict) -> None:
    a = report["alert"]
    assert a["expected"] > 20 and a["fired"] > 20
    assert a["extra"] == 0, "an alert fired from text that is not the article (boilerplate) or a missed copy"
    assert a["missed"] == 0
    assert a["max_per_story"] == 1
    # once per story: what did not fire was suppressed because its story had already alerted
    assert a["fired"] + a["merged_into_a_story_that_alerted"] == a["expected"]


def test_stories_do_not_merge_unrelated_news(report: dict) -> None:
    """A year of BBC news published within a day: time cannot keep stories apart, text must. A story
    that mixes BBC categories is a false merge (same-category merges may be right: follow-ups)."""
    s = report["stories"]
    assert s["category_purity"] >= 0.97, s
    assert s["stories"] >= 0.4 * s["unique_articles"], s
