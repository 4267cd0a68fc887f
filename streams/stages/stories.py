"""Stories stage: every unique article joins the story it reports, online, in arrival order.

Dedup groups *copies* of one text; a story is the set of different articles about one event (three
sites writing their own pieces on one rate decision). The method is the one news-clustering
systems publish (Miranda et al. 2018, Priberam; E3-JSI's event monitor): each article becomes
TF-IDF vectors of its headline, its lead and its names; each live story keeps running sums of its
articles' vectors (its centroid); an article is compared with the live stories only, never re-
clustering, and joins the most similar one when

    similarity = w_title·cos(title) + w_body·cos(body) + w_names·cos(names),  times
    time factor = exp(-max(0, |t - story's [first, last] seen|) / time_scale)

reaches ``threshold``; otherwise it opens a story of its own. Stories that have been quiet for
``retire_after`` are retired rather than split.

Term weights are inverse document frequencies estimated from word ranks: in a Zipfian corpus a
word's document frequency falls with its frequency rank, so ``log(rank)`` orders words as IDF does
without a corpus of ours. The ranks are GloVe 6B's vocabulary order (Wikipedia + Gigaword newswire,
PDDL), shipped as ``streams/data/stories/vocab.txt.gz``; a word outside it counts as rarest.

Time is the article's ``published_at`` (event time), clamped to ``[ingested - max_age,
ingested + max_ahead]`` so that a date far in the future or long before the article reached us
neither opens nor revives a story at random; the stage's clock is the latest such time it has seen,
so a replay of the same feed gives the same stories as the live run.

State is one mapping, story id -> story (plain JSON): in the worker a changelog-backed Faust table,
so a restarted worker recovers it. A story holds its centroid (the ``max_terms`` heaviest terms of
each part, so memory per story is bounded), its sources with the time each first reported it, first
and last seen, its article count, and the ids (with ``raw_ref``) of its latest articles: a record
replayed after a crash finds itself there and gets the same story again. The story id is derived
from its first article's id, so the same feed gives the same ids on every run. The term index
(term -> stories) is derived from the mapping in memory and rebuilt when the mapping changed under it.

A story is *breaking* when ``breaking_sources`` distinct sources reported it within
``breaking_window``: copies of one text are dedup's duplicates and never reach this stage, so they
count once. It gets exactly one ``breaking`` alert; later growth (new sources) at most one
``updated`` alert per ``update_interval``.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Literal

from streams.contract.events import Alert, CleanArticle, Evidence, StoryArticle, StoryUpdate

BODY_WORDS = 300  # the lead: news puts the event first, and later paragraphs drift to background
MIN_RANK = 120  # the commonest words (the, said, would) carry no story
OOV_RANK = 400_000  # a word outside the vocabulary weighs as the rarest GloVe word
QUERY_BODY_TERMS = 30  # the lead's heaviest words an article is compared on (its tail costs, and weighs little)
MAX_POSTINGS = 400  # a term in more live stories than this tells none apart (a stop word of the moment)
RECENT = 32  # article ids kept per story for replays
PARTS = ("title", "body", "names")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_NAME = re.compile(r"\b(?:[A-Z][a-z]+|[A-Z]{2,})(?:\s+(?:[A-Z][a-z]+|[A-Z]{2,}))*")

Vector = dict[str, float]


@dataclass(frozen=True)
class StoryConfig:
    """The stage's knobs (``STREAMS_STORIES_*``); the defaults were chosen on held-out events."""

    threshold: float = 0.12
    min_lead: float = 0.2  # a join needs this cosine of the leads, or
    min_names: float = 0.2  # ... this cosine of the names: a shared headline word alone is not a story
    title_weight: float = 0.35
    body_weight: float = 0.45
    names_weight: float = 0.20
    time_scale_hours: float = 1000.0
    retire_after_hours: float = 30 * 24.0
    max_terms: int = 40
    max_live: int = 20_000
    max_sources: int = 64
    max_ahead_minutes: float = 60.0
    max_age_days: float = 30.0
    breaking_sources: int = 3
    breaking_window_minutes: float = 60.0
    update_interval_minutes: float = 60.0


@cache
def ranks() -> dict[str, int]:
    """Word -> frequency rank (1 = commonest), from the shipped vocabulary."""
    data = resources.files("streams.data").joinpath("stories/vocab.txt.gz").read_bytes()
    return {w: i for i, w in enumerate(gzip.decompress(data).decode().split(), 1)}


def _vector(counts: Counter[str]) -> Vector:
    """Sublinear TF times IDF, unit length."""
    table = ranks()
    v = {w: (1 + math.log(n)) * math.log(table.get(w, OOV_RANK)) for w, n in counts.items()
         if table.get(w, OOV_RANK) > MIN_RANK}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {w: x / norm for w, x in v.items()}


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'").removesuffix("'s") for w in _WORD.findall(text)]


def names(title: str, body: str) -> list[str]:
    """Capitalised phrases of the headline and lead (a sentence's first word only when it recurs),
    lower-cased: the people, places and organisations the story is about, without the NER."""
    found = []
    for m in _NAME.finditer(title + "\n" + body):
        phrase = m.group(0)
        if len(phrase) > 2 and ranks().get(phrase.lower(), OOV_RANK) > MIN_RANK:
            found.append(phrase.lower())
    return found


def represent(title: str, body: str) -> dict[str, Vector]:
    """An article's three unit vectors: headline words, lead words, names."""
    lead = " ".join(body.split()[:BODY_WORDS])
    return {"title": _vector(Counter(words(title))), "body": _vector(Counter(words(lead))),
            "names": _vector(Counter(names(title, lead)))}


def _norm(v: Vector) -> float:
    return math.sqrt(sum(x * x for x in v.values()))


def _top(v: Vector, n: int) -> Vector:
    if len(v) <= n:
        return v
    return dict(sorted(v.items(), key=lambda item: -item[1])[:n])


def breaks(times: list[float], sources: int, window_s: float) -> bool:
    """The breaking rule: ``sources`` of these first-report times (one per source) within ``window_s``."""
    times = sorted(times)
    return any(times[i + sources - 1] - times[i] <= window_s for i in range(len(times) - sources + 1))


def story_id(first_article_id: str) -> str:
    """Deterministic: the same feed gives the same ids on every run."""
    return "s-" + hashlib.blake2b(first_article_id.encode(), digest_size=8).hexdigest()


@dataclass
class Assignment:
    """What the stage decided for one article."""

    story_id: str
    opened: bool
    similarity: float
    alert: Literal["breaking", "updated"] | None = None
    story: dict = field(default_factory=dict)  # the story after this article, for the update topic
    replay: bool = False


class Stories:
    """Assigns articles to stories over a state mapping (a Faust table in the worker, a dict elsewhere)."""

    def __init__(self, state: MutableMapping[str, dict], config: StoryConfig | None = None) -> None:
        self.state = state
        self.config = config or StoryConfig()
        self.weights = (self.config.title_weight, self.config.body_weight, self.config.names_weight)
        # "part:term" -> {story id: part weight x term weight / part norm}   (derived from state)
        self.index: dict[str, dict[str, float]] = {}
        self.indexed: dict[str, tuple[str, ...]] = {}  # story id -> its indexed keys
        self.articles: dict[str, str] = {}  # recent article id -> story id   (derived from state)
        self.clock = 0.0  # the latest event time seen (unix s)                 (derived from state)
        self._next_retire = 0.0

    # --- derived indexes -------------------------------------------------------------------------
    def _index_story(self, sid: str, story: dict) -> None:
        self._unindex(sid)
        keys = []
        for part, weight in zip(PARTS, self.weights, strict=True):
            norm = story["norms"].get(part) or 1.0
            for term, x in story[part].items():
                key = f"{part}:{term}"
                self.index.setdefault(key, {})[sid] = weight * x / norm
                keys.append(key)
        self.indexed[sid] = tuple(keys)
        for aid, _ref in story["recent"]:
            self.articles[aid] = sid
        self.clock = max(self.clock, story["last_seen"])

    def _unindex(self, sid: str) -> None:
        for key in self.indexed.pop(sid, ()):
            holders = self.index.get(key)
            if holders is not None:
                holders.pop(sid, None)
                if not holders:
                    del self.index[key]

    def _sync(self) -> None:
        """Rebuild the indexes when the mapping changed under them (recovery, a rebalance)."""
        first = next(iter(self.indexed), None)  # one probe, not a pass over every story per article
        if len(self.indexed) != len(self.state) or (first is not None and first not in self.state):
            self.index, self.indexed, self.articles, self.clock = {}, {}, {}, 0.0
            for sid, story in list(self.state.items()):
                self._index_story(sid, story)

    # --- time ------------------------------------------------------------------------------------
    def event_time(self, published: datetime, ingested: datetime) -> float:
        """``published`` clamped to what is plausible for when the article reached us."""
        c = self.config
        at = published.timestamp()
        received = ingested.timestamp()
        return min(max(at, received - c.max_age_days * 86400), received + c.max_ahead_minutes * 60)

    def _time_factor(self, t: float, story: dict) -> float:
        gap = max(0.0, story["first_seen"] - t, t - story["last_seen"])
        return math.exp(-gap / (self.config.time_scale_hours * 3600))

    # --- the decision ----------------------------------------------------------------------------
    def assign(self, article: CleanArticle) -> Assignment:
        """Give ``article`` its story, update that story, and say whether an alert is due."""
        self._sync()
        known = self.articles.get(article.id)
        if known is not None and known in self.state:
            story = self.state[known]
            if any(aid == article.id and (ref == article.raw_ref or not article.raw_ref)
                   for aid, ref in story["recent"]):
                # the same input again (a replay after a crash): the same story, and the same alert if
                # it raised one, since the crash may have come before the alert was sent
                alert = story["alert_by"][1] if story.get("alert_by", [None])[0] == article.id else None
                return Assignment(known, False, 1.0, alert, story, replay=True)
        c = self.config
        t = self.event_time(article.published_at, article.ingested_at)
        self.clock = max(self.clock, t)
        if self.clock >= self._next_retire or len(self.state) >= c.max_live:  # not a sweep per article
            self.retire(self.clock)
            self._next_retire = self.clock + c.retire_after_hours * 36
        vectors = represent(article.title, article.body)
        best_sid, best = None, 0.0
        min_lead, min_names = c.min_lead * c.body_weight, c.min_names * c.names_weight
        query = {**vectors, "body": _top(vectors["body"], QUERY_BODY_TERMS)}  # the lead by its heaviest words
        for sid, sim in self._similarities(query).items():
            if sim < c.threshold:  # the time factor is at most 1
                continue
            story = self.state[sid]
            if self._part(query, story, "body") < min_lead and self._part(query, story, "names") < min_names:
                continue
            sim *= self._time_factor(t, story)
            if sim > best or (sim == best and best_sid is not None and sid < best_sid):
                best_sid, best = sid, sim
        fuller_of = self.articles.get(article.supersedes) if article.supersedes else None
        if fuller_of is not None and fuller_of in self.state:  # a fuller text of an article it holds
            best_sid, best = fuller_of, 1.0
        if best_sid is not None and best >= c.threshold:
            story, opened = dict(self.state[best_sid]), False
        else:
            best_sid, opened = story_id(article.id), True
            story = {"id": best_sid, "headline": article.title, "first_seen": t, "last_seen": t, "articles": 0,
                     "first_article": {"id": article.id, "url": article.url, "source": article.source},
                     "sources": {}, "recent": [], "breaking_at": None, "alerted_at": None, "alerted_sources": 0,
                     **{part: {} for part in PARTS}, "norms": {}}
        self._add(story, article, vectors, t)
        alert = self._alert_due(story, t)
        if alert is not None:
            story["alert_by"] = [article.id, alert]
        self.state[best_sid] = story
        self._index_story(best_sid, story)
        return Assignment(best_sid, opened, round(best, 4), alert, story)

    def place(self, article: CleanArticle) -> tuple[CleanArticle, Assignment]:
        """:meth:`assign`, and the article as it goes on: with its ``story_id``."""
        placed = self.assign(article)
        return article.model_copy(update={"story_id": placed.story_id}), placed

    def _similarities(self, query: dict[str, Vector]) -> dict[str, float]:
        """The weighted cosine with every story sharing a term, accumulated over the index's postings
        (terms not shared add nothing to a cosine, so no story is compared term by term). The query's
        lead is its heaviest words only: the tail weighs little and would touch every story."""
        scores: dict[str, float] = {}
        get = scores.get
        for part in PARTS:
            for term, x in query[part].items():
                postings = self.index.get(f"{part}:{term}")
                if postings and len(postings) <= MAX_POSTINGS:
                    for sid, y in postings.items():
                        scores[sid] = get(sid, 0.0) + x * y
        return scores

    def _part(self, query: dict[str, Vector], story: dict, part: str) -> float:
        """One part's weighted cosine with a story, as :meth:`_similarities` counts it."""
        centroid, norm = story[part], story["norms"].get(part) or 1.0
        weight = self.weights[PARTS.index(part)]
        return weight * sum(x * centroid.get(term, 0.0) for term, x in query[part].items()) / norm

    def _add(self, story: dict, article: CleanArticle, vectors: dict[str, Vector], t: float) -> None:
        c = self.config
        for part in PARTS:
            summed = dict(story[part])
            for term, x in vectors[part].items():
                summed[term] = summed.get(term, 0.0) + x
            story[part] = {w: round(x, 5) for w, x in _top(summed, c.max_terms).items()}
        story["norms"] = {part: _norm(story[part]) for part in PARTS}
        story["articles"] += 1
        story["first_seen"], story["last_seen"] = min(story["first_seen"], t), max(story["last_seen"], t)
        sources = dict(story["sources"])
        if article.source not in sources and len(sources) < c.max_sources:
            sources[article.source] = t
        elif article.source in sources:
            sources[article.source] = min(sources[article.source], t)
        story["sources"] = sources
        others = [r for r in story["recent"] if r[0] != article.id]
        story["recent"] = [[article.id, article.raw_ref], *others][:RECENT]

    def _alert_due(self, story: dict, t: float) -> Literal["breaking", "updated"] | None:
        c = self.config
        if story["breaking_at"] is None:
            if breaks(list(story["sources"].values()), c.breaking_sources, c.breaking_window_minutes * 60):
                story["breaking_at"] = story["alerted_at"] = t
                story["alerted_sources"] = len(story["sources"])
                return "breaking"
            return None
        grew = len(story["sources"]) > story["alerted_sources"]
        if grew and t - story["alerted_at"] >= c.update_interval_minutes * 60:
            story["alerted_at"], story["alerted_sources"] = t, len(story["sources"])
            return "updated"
        return None

    def retire(self, now: float) -> int:
        """Drop stories quiet for longer than the retirement window, and the quietest beyond
        ``max_live`` (down to 95 % of it, so the sweep is not per article); returns how many."""
        cutoff = now - self.config.retire_after_hours * 3600
        stories = list(self.state.items())
        old = [sid for sid, story in stories if story["last_seen"] < cutoff]
        if len(stories) - len(old) > self.config.max_live:
            gone = set(old)
            live = sorted((story["last_seen"], sid) for sid, story in stories if sid not in gone)
            old += [sid for _, sid in live[: len(live) - int(0.95 * self.config.max_live)]]
        for sid in old:
            for aid, _ref in self.state[sid]["recent"]:
                if self.articles.get(aid) == sid:
                    del self.articles[aid]
            del self.state[sid]
            self._unindex(sid)
        return len(old)

    def state_bytes_per_story(self) -> float:
        """Mean JSON bytes of a story, as the changelog carries it (sampled over up to 200 stories)."""
        sample = list(itertools.islice(self.state.values(), 200))
        return sum(len(json.dumps(story)) for story in sample) / len(sample) if sample else 0.0

    def story_of(self, article_id: str) -> str | None:
        """The story a recent article joined (a duplicate's original, for one)."""
        self._sync()
        return self.articles.get(article_id)


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def story_update(story: dict, top: int = 5) -> StoryUpdate:
    """The public view of a story: what the compacted ``stories`` topic carries."""
    return StoryUpdate(
        id=story["id"], title=story["headline"], articles=story["articles"],
        sources=sorted(story["sources"], key=lambda s: (story["sources"][s], s)),
        names=[w for w, _ in sorted(story["names"].items(), key=lambda item: -item[1])[:top]],
        first_seen=_at(story["first_seen"]), last_seen=_at(story["last_seen"]),
        first_article=StoryArticle(**story["first_article"]),
        breaking_at=None if story["breaking_at"] is None else _at(story["breaking_at"]))


def story_alert(kind: Literal["breaking", "updated"], story: dict, article: CleanArticle,
                created_at: datetime) -> Alert:
    """The ``breaking`` (once per story) or ``updated`` alert. Its id is derived from the story and,
    for an update, the number of sources it reports, so a replay gives the same id and a consumer
    drops the repeat."""
    update = story_update(story)
    tag = "breaking" if kind == "breaking" else f"updated:{len(update.sources)}"
    return Alert(
        id=hashlib.sha256(f"{tag}\x00{story['id']}".encode()).hexdigest()[:24], kind=kind, rule_id=f"story-{kind}",
        severity="high" if kind == "breaking" else "medium", title=update.title, url=update.first_article.url,
        source=update.first_article.source, article_ids=list(dict.fromkeys([update.first_article.id, article.id])),
        story_id=story["id"], sources=update.sources, evidence=Evidence(entities=update.names),
        published_at=article.published_at, ingested_at=article.ingested_at, created_at=created_at)
