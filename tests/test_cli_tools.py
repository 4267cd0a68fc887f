"""The one-article tools (`streams tag`, `streams alert`, `streams rules check`) and `streams eval-ner`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import spacy

from streams.settings import DATA_DIR
from tests.conftest import SHARED, require

RUSSIA = (DATA_DIR / "sample_feed.jsonl").read_text().splitlines()[0]


def streams(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_tag_prints_canonical_entities_and_topics() -> None:
    done = streams("tag", "-", stdin=RUSSIA)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    ids = {e["id"] for e in event["entities"]}
    assert {"country/RU", "asset/btc", "person/anton-siluanov", "org/cbr"} <= ids
    assert "sanctions" in {t["id"] for t in event["topics"]}


def test_alert_prints_the_alerts_one_article_fires() -> None:
    done = streams("alert", "-", stdin=RUSSIA)
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"russia-sanctions-payments", "crypto-regulation"} <= {a["rule_id"] for a in alerts}
    quiet = streams("alert", "-", "--title", "Local fete", stdin="The village fete raised money for the hall.")
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_rules_check(tmp_path: Path) -> None:
    assert streams("rules", "check", str(DATA_DIR / "rules.yaml")).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: r1\n    when: {entity: country/XX-nope}\n")
    done = streams("rules", "check", str(bad))
    assert done.returncode == 1 and "country/XX-nope" in done.stderr


def test_eval_ner_scores_the_shipped_model_and_the_rule_layer_on_conll_testb() -> None:
    testb = SHARED / "corpus" / "conll2003" / "eng.testb"
    require(testb.exists(), "the CoNLL-2003 files in ../shared")
    shipped = json.loads(streams("eval-ner", "--conll", str(testb), "--json").stdout)
    assert shipped["model"] == str(DATA_DIR / "ner")  # the project's own model is the default
    assert set(shipped["labels"]) == {"PER", "ORG", "LOC", "MISC"} and shipped["overall"]["support"] == 5648
    assert shipped["overall"]["f1"] >= 0.835 and shipped["words_per_second"] > 0  # docs/tagging.md: 0.846 measured
    assert shipped["spacy_version"] == spacy.__version__
    rules = json.loads(streams("eval-ner", "--conll", str(testb), "--json", env={"STREAMS_SPACY_MODEL": "none"}).stdout)
    # without the model the knowledge-base layer is precise on what it knows, and finds far less
    assert rules["overall"]["precision"] > 0.8 and rules["overall"]["recall"] < shipped["overall"]["recall"] / 2


def test_a_bad_model_setting_is_a_configuration_error_not_a_traceback(tmp_path: Path) -> None:
    """Library code raises ConfigError (never SystemExit); the CLI prints what to do and exits 2."""
    done = streams("tag", "-", stdin=RUSSIA, env={"STREAMS_SPACY_MODEL": str(tmp_path / "no-model")})
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])
    assert "STREAMS_SPACY_MODEL" in done.stderr and "Traceback" not in done.stderr
