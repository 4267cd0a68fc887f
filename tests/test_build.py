"""The stages are built from settings in one place (streams/build.py): the worker, the CLI,
``streams eval`` and the benchmark's floor run what the settings say, not defaults of their own."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

from streams.build import Stages
from streams.settings import Settings
from streams.tools import bench

CUSTOM = {"burst_factor": 7.5, "burst_min_count": 3, "burst_recent_minutes": 30, "burst_baseline_hours": 48,
          "dedup_threshold": 0.6, "dedup_containment": 0.8, "spacy_model": "none"}


def test_the_stages_follow_the_settings() -> None:
    stages = Stages(Settings(**CUSTOM))
    config = stages.bursts().config
    assert (config.factor, config.min_count, config.recent_minutes, config.baseline_hours) == (7.5, 3, 30, 48)
    dedup = stages.dedup()
    assert (dedup.threshold, dedup.containment) == (0.6, 0.8)


def test_the_benchmark_floor_builds_what_the_worker_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor once ran a burst detector with its own defaults while the worker read STREAMS_BURST_*."""
    built = []
    bursts = Stages.bursts

    def spy(self: Stages, counts: dict | None = None):
        detector = bursts(self, counts)
        built.append(detector.config)
        return detector

    monkeypatch.setattr(Stages, "bursts", spy)
    settings = Settings(**CUSTOM)
    assert pickle.loads(pickle.dumps(settings)) == settings  # what the floor's processes receive
    bench.floor([], 1, settings)
    assert built and built[0] == Stages(settings).bursts().config


def test_the_worker_builds_its_stages_from_its_settings() -> None:
    """The worker's stages, as its process sees ``STREAMS_BURST_*`` (imported with no broker running)."""
    check = ("from streams.app import app; c = app.stages.bursts().config; "
             "assert (c.factor, c.min_count) == (7.5, 3), c")
    env = {**os.environ, "STREAMS_BROKER": "127.0.0.1:9", "STREAMS_BURST_FACTOR": "7.5", "STREAMS_BURST_MIN_COUNT": "3",
           "STREAMS_SPACY_MODEL": "none"}
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
