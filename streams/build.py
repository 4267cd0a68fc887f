"""The stages, built from settings in one place: the worker, the CLI, ``streams eval`` and the
benchmark's floor all get theirs here, so none of them can drift from what the worker runs (the
floor's burst detector once ignored the ``STREAMS_BURST_*`` settings the worker read).

State comes in from the caller: the worker passes its Faust tables (changelog-backed), the tools
plain dicts.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import cached_property

from streams.settings import Settings
from streams.stages.alert import Rule, RuleEngine, load_rules
from streams.stages.burst import BurstConfig, BurstDetector
from streams.stages.dedup import Deduplicator
from streams.stages.stories import Stories, StoryConfig
from streams.stages.tag import Tagger


@dataclass
class Stages:
    """The configured stage objects of one deployment; the expensive ones (the tagger and its NER,
    the rules) are loaded once, on first use."""

    settings: Settings

    @cached_property
    def tagger(self) -> Tagger:
        return Tagger.from_settings(self.settings)

    @cached_property
    def rules(self) -> list[Rule]:
        return load_rules(self.settings.rules, set(self.tagger.kb.entities))

    def dedup(self, signatures: MutableMapping[str, str] | None = None) -> Deduplicator:
        return Deduplicator.from_settings(self.settings, {} if signatures is None else signatures)

    def stories(self, state: MutableMapping[str, dict] | None = None) -> Stories:
        s = self.settings
        config = StoryConfig(
            threshold=s.stories_threshold, time_scale_hours=s.stories_time_scale_hours,
            retire_after_hours=s.stories_retire_after_hours, max_live=s.stories_max_live,
            max_ahead_minutes=s.stories_max_ahead_minutes, max_age_days=s.stories_max_age_days,
            breaking_sources=s.stories_breaking_sources, breaking_window_minutes=s.stories_breaking_window_minutes,
            update_interval_minutes=s.stories_update_interval_minutes)
        return Stories({} if state is None else state, config)

    def alerts(self, fired: MutableMapping[str, dict] | None = None) -> RuleEngine:
        return RuleEngine(self.rules, fired)

    def bursts(self, counts: MutableMapping[str, int] | None = None) -> BurstDetector:
        s = self.settings
        config = BurstConfig(recent_minutes=s.burst_recent_minutes, baseline_hours=s.burst_baseline_hours,
                             factor=s.burst_factor, min_count=s.burst_min_count)
        return BurstDetector({} if counts is None else counts, config)
