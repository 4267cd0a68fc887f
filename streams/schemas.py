"""JSON Schemas of every topic's events, generated from the pydantic models in :mod:`streams.events`.

``streams schemas`` writes them to ``schemas/``; ``streams schemas --check`` (and a test) fails when
a model changed and the files were not regenerated, so the published contract never drifts.
"""

from __future__ import annotations

import json
from pathlib import Path

from streams.events import TOPIC_EVENTS
from streams.settings import PACKAGE_DIR

SCHEMA_DIR = PACKAGE_DIR.parent / "schemas"


def rendered() -> dict[str, str]:
    """File name -> JSON text, for each event model and for the topic index."""
    files: dict[str, str] = {}
    index: dict[str, str] = {}
    for topic, model in TOPIC_EVENTS.items():
        name = f"{model.__name__}.schema.json"
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"streams/{name}", **model.model_json_schema()}
        files[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        index[topic] = name
    files["topics.json"] = json.dumps(index, indent=2) + "\n"
    return files


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written


def check_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    return [name for name, text in rendered().items()
            if not (directory / name).exists() or (directory / name).read_text() != text]
