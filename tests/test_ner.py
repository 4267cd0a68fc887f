"""The statistical NER's parts: CoNLL reading, the gazetteer component, and loading a pipeline the way
the worker does - by path and by installed package name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import spacy
from spacy.training import Example

from streams.settings import DATA_DIR
from streams.stages.tag import Tagger
from streams.stages.tag.gazetteer import Gazetteer
from streams.tools.ner import iob2, read_conll

LISTS = {"FIRST": ["Ada"], "LAST": ["Lovelace"], "LOC": ["Zorbania", "New Zorbia"], "ORG": [], "MISC": []}
TRAIN = [
    ("Ada Lovelace visited Zorbania on Monday .", [(0, 12, "PER"), (21, 29, "LOC")]),
    ("Officials in Zorbania said Ada Lovelace had left .", [(13, 21, "LOC"), (27, 39, "PER")]),
    ("The talks ended without a deal .", []),
]


def test_iob1_becomes_iob2_and_docstart_lines_split_sentences(tmp_path: Path) -> None:
    conll = tmp_path / "eng.sample"
    conll.write_text("-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
                     "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n")
    assert list(read_conll(conll)) == [(["EU", "rejects"], ["I-ORG", "O"]),
                                       (["Peter", "Blackburn"], ["I-PER", "I-PER"])]
    assert iob2(["I-PER", "I-PER", "O", "I-LOC", "I-ORG"]) == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG"]


def test_gazetteer_marks_where_listed_phrases_start_and_continue(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    gazetteer = Gazetteer(nlp)
    gazetteer.set_lists(LISTS)
    doc = gazetteer(nlp("Ada Lovelace flew from New Zorbia to ZORBANIA, not to zorbania."))
    tags = {t.i: t.tag_ for t in doc}
    assert tags[0] == "B-FIRST" and tags[1] == "B-LAST"
    assert tags[4] == "B-LOC" and tags[5] == "I-LOC"  # "New Zorbia"
    assert tags[7] == "B-LOC"  # the all-capitals headline form
    assert tags[11] == ""  # matching is case-sensitive otherwise
    gazetteer.to_disk(tmp_path / "gaz")
    again = Gazetteer(nlp).from_disk(tmp_path / "gaz")
    assert again.lists == LISTS
    assert [t.tag_ for t in again(nlp("Ada went to New Zorbia"))] == ["B-FIRST", "", "", "B-LOC", "I-LOC"]


def tiny_pipeline(path: Path) -> Path:
    """A gazetteer + NER pipeline trained on three sentences until it knows them, saved to ``path``."""
    nlp = spacy.blank("en")
    nlp.add_pipe("streams_gazetteer").set_lists(LISTS)
    nlp.add_pipe("ner")
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer, annotates=["streams_gazetteer"])
    assert [(e.text, e.label_) for e in nlp(TRAIN[0][0]).ents] == [("Ada Lovelace", "PER"), ("Zorbania", "LOC")]
    nlp.meta.update(name="tiny_ner", version="0.0.1")
    nlp.to_disk(path)
    return path


def tag(text: str, model: str, **env: str) -> subprocess.CompletedProcess:
    """``streams tag`` with ``STREAMS_SPACY_MODEL=model``: settings -> Tagger -> spacy.load, as in the worker."""
    return subprocess.run([sys.executable, "-m", "streams", "tag", "-", "--title", "Visit"], input=text,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "STREAMS_SPACY_MODEL": model, **env})


def entities(done: subprocess.CompletedProcess) -> set[tuple[str, str]]:
    assert done.returncode == 0, done.stderr
    return {(e["text"], e["label"]) for e in json.loads(done.stdout)["entities"]}


def test_a_pipeline_loads_by_path(tmp_path: Path) -> None:
    model = tiny_pipeline(tmp_path / "tiny")
    tagger = Tagger(str(model), DATA_DIR / "kb.yaml", DATA_DIR / "topics.yaml")
    assert tagger.nlp.pipe_names == ["streams_gazetteer", "ner", "streams_kb"]
    # the model's PER is the project's PERSON; the knowledge-base layer still runs after it
    found = entities(tag(TRAIN[0][0] + " The ECB held rates.", str(model)))
    assert {("Ada Lovelace", "PERSON"), ("Zorbania", "LOC"), ("ECB", "CENTRAL_BANK")} <= found


def test_a_pipeline_installed_as_a_package_loads_by_name(tmp_path: Path) -> None:
    """``spacy package``, ``pip install`` into a directory of its own, then load it by name."""
    model = tiny_pipeline(tmp_path / "tiny")
    dist = tmp_path / "dist"
    dist.mkdir()
    subprocess.run([sys.executable, "-m", "spacy", "package", str(model), str(dist), "--build", "none"],
                   check=True, capture_output=True)
    (package,) = dist.iterdir()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True, capture_output=True)
    found = entities(tag(TRAIN[1][0], "en_tiny_ner", PYTHONPATH=str(site)))
    assert {("Ada Lovelace", "PERSON"), ("Zorbania", "LOC")} <= found
    # without the package on the path the same setting fails, and says what to do
    missing = tag(TRAIN[1][0], "en_tiny_ner")
    assert missing.returncode != 0 and "en_tiny_ner" in missing.stderr and "pip install" in missing.stderr


def test_the_training_gazetteer_draws_on_census_names_places_and_the_knowledge_base() -> None:
    from streams.stages.tag.gazetteer import CATEGORIES
    from streams.tools.ner import default_lists

    lists = default_lists(DATA_DIR / "kb.yaml")
    assert set(lists) == set(CATEGORIES)
    assert {"Mary", "James"} <= set(lists["FIRST"]) and "Smith" in lists["LAST"]
    assert {"Buenos Aires", "Baden-Württemberg", "Germany"} <= set(lists["LOC"])
    assert "European Central Bank" in lists["ORG"] and "French" in lists["MISC"]
    # a snapshot ships with the model, where its component reads it back
    shipped = spacy.load(DATA_DIR / "ner").get_pipe("gazetteer")
    assert set(shipped.lists) == set(CATEGORIES) and "Smith" in shipped.lists["LAST"]


def test_the_shipped_model_reads_pretrained_vectors_by_lower_case(tmp_path: Path) -> None:
    """GloVe's rows are lower-cased words: "Germany" and "BERLIN" must find theirs. spaCy 3.8 does
    not save a vectors table's key attribute, so training writes it back (streams.tools.ner.keep_vector_attr)."""
    from streams.tools.ner import keep_vector_attr

    nlp = spacy.load(DATA_DIR / "ner")
    assert nlp.vocab.vectors.attr == spacy.attrs.LOWER and nlp.vocab.vectors.shape[1] == 50
    assert all(t.has_vector for t in nlp.make_doc("Germany BERLIN markets"))
    rows = nlp.vocab.vectors.shape[0]
    assert 50_000 <= rows <= 100_000  # the pruned table: frequent words plus the training words
    nlp.to_disk(tmp_path / "copy")
    assert spacy.load(tmp_path / "copy").vocab.vectors.attr != spacy.attrs.LOWER  # what spaCy loses
    keep_vector_attr(tmp_path / "copy", "LOWER")
    assert spacy.load(tmp_path / "copy").vocab.vectors.attr == spacy.attrs.LOWER
