"""One typed settings object for the whole project, read from ``STREAMS_*`` environment variables.

Every command, worker and test reads configuration from here, so a deployment is described by its
environment alone (``STREAMS_BROKER=kafka://broker:9092 streams worker``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.stages.stories import StoryConfig

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
#: the largest STREAMS_MAX_BODY_BYTES allowed: the tagger is sized for it (streams.stages.tag)
MAX_BODY_BYTES_LIMIT = 2_000_000


class Settings(BaseSettings):
    """Pipeline configuration. Each field is ``STREAMS_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="STREAMS_", extra="ignore")

    broker: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port[,host:port]). Unset: use the local broker "
        "started by `streams kafka start`.",
    )
    home: Path = Field(
        default=Path.home() / ".cache" / "streams",
        description="Where the local broker keeps its jars, data and pid file.",
    )
    kafka_port: int = Field(default=0, description="Port of the local broker; 0: the one it had, or a free one "
                            "when it starts for the first time.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How every Kafka client (workers, producers, consumers, admin) connects.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, description="Read from the environment; never logged.")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for SSL/SASL_SSL (default: system CAs).")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = None
    app_id: str = Field(default="streams", description="Faust app id (consumer group, table prefix).")
    topic_prefix: str = Field(default="", description="Prefix for every topic name (tests isolate runs).")
    partitions: int = Field(default=4, ge=1, description="Partitions of each stage topic.")
    replication_factor: int = Field(default=1, ge=1)
    processing_guarantee: str = Field(default="at_least_once", description="Faust's processing guarantee.")
    max_body_bytes: int = Field(default=1_000_000, ge=1, le=MAX_BODY_BYTES_LIMIT,
                                description="Larger raw bodies are dead-lettered.")

    dedup_threshold: float = Field(default=0.5, gt=0, le=1, description="Jaccard of word 5-shingles.")
    dedup_containment: float = Field(default=0.9, gt=0, le=1,
                                     description="Share of the smaller text inside the larger that makes a copy.")
    dedup_num_perm: int = Field(default=128, ge=16)
    dedup_retention_days: float = Field(default=7.0, gt=0)
    dedup_expire_interval: float = Field(default=600.0, gt=0, description="Seconds between expiry sweeps.")

    stories_threshold: float = Field(default=StoryConfig.threshold, gt=0, le=1,
                                     description="Similarity (0-1, after the time factor) that joins a story.")
    stories_time_scale_hours: float = Field(default=StoryConfig.time_scale_hours, gt=0, description=(
        "Similarity falls by a factor e for each this many hours between an article and its story's span."))
    stories_retire_after_hours: float = Field(default=StoryConfig.retire_after_hours, gt=0,
                                              description="A story quiet this long (event time) is retired.")
    stories_max_live: int = Field(default=StoryConfig.max_live, ge=100,
                                  description="Live stories kept at most; beyond, the quietest are retired.")
    stories_max_ahead_minutes: float = Field(default=StoryConfig.max_ahead_minutes, ge=0, description=(
        "A published time later than ingestion by more than this counts as ingestion + this."))
    stories_max_age_days: float = Field(default=StoryConfig.max_age_days, gt=0, description=(
        "A published time earlier than ingestion by more than this counts as ingestion - this."))
    stories_breaking_sources: int = Field(default=StoryConfig.breaking_sources, ge=2,
                                          description="Breaking: distinct sources within the window.")
    stories_breaking_window_minutes: float = Field(default=StoryConfig.breaking_window_minutes, gt=0)
    stories_update_interval_minutes: float = Field(default=StoryConfig.update_interval_minutes, ge=0, description=(
        "At most one `updated` alert per story per this many minutes (event time), when it gained sources."))

    spacy_model: str | None = Field(
        default=str(DATA_DIR / "ner"),
        description="Statistical NER: a spaCy package name or pipeline path; default: the project's own model "
        "(streams train-ner); `none`: the knowledge-base and pattern layers alone.")
    knowledge_base: Path = Field(default=DATA_DIR / "kb.yaml")
    taxonomy: Path = Field(default=DATA_DIR / "topics.yaml")
    rules: Path = Field(default=DATA_DIR / "rules.yaml")

    lag_interval: float = Field(default=5.0, gt=0, description="Seconds between consumer-lag measurements.")
    worker_id: str | None = Field(
        default=None, description="The worker's static group membership id (Kafka group.instance.id), stable across "
        "its restarts and unique in the group; default: <hostname>-<STREAMS_WEB_PORT>.")
    session_timeout: float = Field(
        default=10.0, ge=6, le=300, description="Seconds without heartbeats after which the group gives a worker's "
        "partitions to the others (Kafka's session.timeout.ms): how long a dead or stalled worker's share waits.")
    burst_factor: float = Field(default=4.0, gt=1, description="Burst: recent rate over baseline.")
    burst_min_count: int = Field(default=10, ge=1, description="Burst: mentions needed in the recent window.")
    burst_recent_minutes: int = Field(default=60, ge=1)
    burst_baseline_hours: int = Field(default=72, ge=1)
    web_host: str = Field(default="127.0.0.1", description="Bind address of the worker web server.")
    web_port: int = Field(default=6066, description="Worker web server (/metrics, /articles).")
    ingest_token: SecretStr | None = Field(
        default=None, description="Bearer token that POST /articles requires (Authorization: Bearer ...).")
    ingest_tokens_file: Path | None = Field(
        default=None, description="A file of accepted tokens, one per line, re-read when it changes (rotation).")
    ingest_open: bool = Field(
        default=False, description="Let a worker serve POST /articles without a token on a non-loopback address.")
    web_allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names the web server answers for besides loopback (JSON list).")
    fetch_private: bool = Field(
        default=False, description="Let `streams poll` fetch_page from loopback, private and link-local addresses.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Signs webhook deliveries (header Streams-Signature: t=...,v1=HMAC-SHA256).")
    webhook_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description='Extra headers on webhook deliveries, as JSON: {"Authorization": "..."}.')
    data_dir: Path = Field(default=Path("var/worker"), description="Faust table state directory.")

    @field_validator("spacy_model")
    @classmethod
    def _no_model(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in {"", "none"} else value

    @field_validator("processing_guarantee")
    @classmethod
    def _at_least_once(cls, value: str) -> str:
        if value == "exactly_once":
            raise ValueError("exactly_once is refused: with faust-streaming 0.15 on Kafka 4 its transactions are "
                             "never committed, so nothing reaches read_committed consumers (docs/reliability.md). "
                             "Use at_least_once: every event carries raw_ref, so repeats can be dropped")
        if value != "at_least_once":
            raise ValueError("the only supported guarantee is at_least_once")
        return value

    def topic(self, name: str) -> str:
        """The full Kafka topic name for a logical topic such as ``articles.raw``."""
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
