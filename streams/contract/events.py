"""The events on every topic, as pydantic models: the one definition of the wire contract.

``schemas/`` holds their JSON Schemas (``streams schemas --write``); a test keeps the two in sync.
Every derived event carries the raw message's ``id`` so an article can be followed through all
stages, and ``ingested_at`` (the Kafka timestamp of the raw message) so every stage can measure
end-to-end latency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

ContentType = Literal["text/plain", "text/html"]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset (RFC 3339), e.g. 2026-09-05T06:00:00Z")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace")
    return value


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]
#: a headline, not a page: the door refuses longer titles (the tagger reads title + body)
MAX_TITLE_CHARS = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event: JSON on the wire, strict about unknown fields only where it matters."""

    model_config = ConfigDict(extra="ignore")

    def dumps(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


class RawArticle(Event):
    """What producers send to ``articles.raw``: one JSON object per message."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    id: Annotated[NonBlank, AfterValidator(_no_control_characters)] = Field(
        max_length=512, description="Producer-unique id of this message (no control characters).")
    url: HttpUrl
    source: NonBlank = Field(max_length=512, description="The publishing site, e.g. its domain.")
    title: str | None = Field(default=None, max_length=MAX_TITLE_CHARS)
    body: NonBlank = Field(description="Article text: plain text or a whole HTML page.")
    content_type: ContentType = "text/plain"
    published_at: AwareDatetime


class Removed(Event):
    """Counts of what the clean stage removed, by kind."""

    model_config = ConfigDict(extra="allow")


class CleanArticle(Event):
    """``articles.clean`` and ``articles.unique``: the article itself, nothing more, nothing less."""

    id: str
    url: str
    source: str
    title: str
    body: str = Field(description="Body paragraphs separated by blank lines.")
    content_type: ContentType
    published_at: datetime
    ingested_at: datetime = Field(description="Kafka timestamp of the raw message.")
    raw_ref: str = Field(default="", description="partition:offset of the input on articles.raw. One input "
                         "message, so after a replay (at-least-once) consumers drop repeats by it.")
    content_hash: str = Field(description="sha256 of the normalised title and body.")
    word_count: int
    removed: dict[str, int] = Field(default_factory=dict, description="Blocks removed, by kind.")
    supersedes: str | None = Field(
        default=None, description="On articles.unique and later: this is a fuller version of a story first seen "
        "as a shorter text (an excerpt, a first take), whose id this is. Alerts treat it as that story.")

    story_id: str | None = Field(
        default=None, description="On articles.unique and later, and on articles.duplicates: the story (the event "
        "reported, across sources) the stories stage put this article in; a copy carries its original's.")

    @property
    def story(self) -> str:
        """What alerts are suppressed by and topics keyed by: the story the stories stage found, else
        the copy group (its own id, or the first sighting's it supersedes)."""
        return self.story_id or self.supersedes or self.id


class DuplicateArticle(CleanArticle):
    """``articles.duplicates``: a later copy of a story already seen."""

    duplicate_of: str = Field(description="Id of the first sighting of this story.")
    duplicate_kind: Literal["exact", "near", "excerpt"] = Field(
        description="exact: the same text; near: a look-alike (Jaccard of word 5-shingles at the threshold); "
        "excerpt: contained in the first sighting (its lead paragraphs, a trimmed copy).")
    similarity: float = Field(ge=0, le=1, description="Estimated Jaccard of word 5-shingles.")


class Entity(Event):
    text: str
    label: str
    id: str | None = Field(default=None, description="Canonical knowledge-base id when known.")
    name: str | None = Field(default=None, description="Canonical name.")
    count: int = 1
    start: int = Field(description="Character offset of the first mention in title + body.")


class Topic(Event):
    id: str
    score: float
    phrases: list[str] = Field(default_factory=list)


class TaggedArticle(CleanArticle):
    """``articles.tagged``: the clean article plus canonical entities and topics."""

    entities: list[Entity] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)


class Evidence(Event):
    entities: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)


class Alert(Event):
    """``alerts``: one per rule and story; the id is deterministic so consumers can drop repeats."""

    id: str
    kind: Literal["rule", "burst", "breaking", "updated"] = Field(default="rule", description=(
        "rule: a rule matched an article; burst: an entity's mentions surged; breaking: a story reached "
        "STREAMS_STORIES_BREAKING_SOURCES sources within the window (once per story); updated: it gained "
        "sources since."))
    rule_id: str
    severity: Literal["info", "low", "medium", "high", "critical"]
    title: str
    url: str | None = None
    source: str | None = None
    article_ids: list[str] = Field(default_factory=list, description="First sighting first.")
    story_id: str | None = None
    sources: list[str] = Field(default_factory=list, description="breaking/updated: the story's sources, first first.")
    evidence: Evidence = Field(default_factory=Evidence)
    published_at: datetime | None = None
    ingested_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class StoryArticle(Event):
    id: str
    url: str
    source: str


class StoryUpdate(Event):
    """``stories`` (compacted, keyed by story id): a story as it stands after its latest article."""

    id: str
    title: str = Field(description="The headline of its first article.")
    articles: int = Field(description="Unique articles in it (copies are not counted).")
    sources: list[str] = Field(description="Distinct sources, in the order they reported it.")
    names: list[str] = Field(default_factory=list, description="Its most prominent names, lower-cased.")
    first_seen: datetime
    last_seen: datetime
    first_article: StoryArticle
    breaking_at: datetime | None = None


class DeadLetter(Event):
    """``articles.deadletter``: a message a stage could not use, with why and the original bytes."""

    id: str | None = Field(default=None, description="The message id, when one could be read.")
    stage: str
    reason: str = Field(description="Machine-readable reason, e.g. not_json, bad_url, too_large.")
    detail: str = ""
    original: str = Field(description="The original message value (base64 when not UTF-8).")
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    raw_ref: str | None = Field(default=None, description="partition:offset of the input on articles.raw.")
    received_at: datetime = Field(default_factory=utcnow)


class Mention(Event):
    """An entity's mentions within one minute of one batch of tagged articles."""

    entity: str = Field(description="Canonical knowledge-base id.")
    name: str | None = None
    count: int = Field(ge=1)
    article: str = Field(description="Id of the latest article with these mentions.")
    at: datetime = Field(description="Its ingestion time.")


class MentionBatch(Event):
    """``entity.mentions`` (internal): the mentions of one tag batch that one partition owns."""

    mentions: list[Mention]
