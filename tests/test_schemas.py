"""schemas/ holds the JSON Schemas the models generate, and they validate real events."""

from __future__ import annotations

import json

from streams.contract.schemas import SCHEMA_DIR, check_schemas
from streams.contract.topics import BY_NAME


def test_schemas_are_in_sync_with_the_models() -> None:
    assert check_schemas() == [], "run `streams schemas` and commit schemas/"


def test_every_topic_has_a_schema_file() -> None:
    index = json.loads((SCHEMA_DIR / "topics.json").read_text())
    assert set(index) == set(BY_NAME)
    for topic, name in index.items():
        schema = json.loads((SCHEMA_DIR / name).read_text())
        assert schema["type"] == "object" and schema["properties"]
        if topic.startswith(("articles.", "alerts")):  # what consumers follow an article or alert by
            assert "id" in schema["properties"], topic
