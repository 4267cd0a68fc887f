"""JSON Schemas of every topic's events, generated from the pydantic models in :mod:`streams.contract.events`.

``streams schemas`` writes them to ``schemas/``; ``streams schemas --check`` (and a test) fails when
a model changed and the files were not regenerated, so the published contract never drifts.
"""

from __future__ import annotations

import json
from pathlib import Path

from streams.contract.events import Alert, RawArticle
from streams.contract.topics import TOPICS
from streams.settings import PACKAGE_DIR
from streams.sources.ingest import MAX_ARTICLES_PER_REQUEST, MAX_REQUEST_BYTES

SCHEMA_DIR = PACKAGE_DIR.parent / "schemas"


def rendered() -> dict[str, str]:
    """File name -> JSON text, for each event model and for the topic index."""
    files: dict[str, str] = {}
    index: dict[str, str] = {}
    for topic, model in ((t.name, t.event) for t in TOPICS):
        name = f"{model.__name__}.schema.json"
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"streams/{name}", **model.model_json_schema()}
        files[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        index[topic] = name
    files["topics.json"] = json.dumps(index, indent=2) + "\n"
    files["openapi.json"] = json.dumps(openapi(), indent=2, sort_keys=True) + "\n"
    return files


def openapi() -> dict:
    """The OpenAPI description of the worker's HTTP endpoints."""
    article = RawArticle.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = article.pop("$defs", {})
    alert = Alert.model_json_schema(ref_template="#/components/schemas/{model}")
    defs |= alert.pop("$defs", {})
    error = {"type": "object", "properties": {
        "error": {"type": "string"}, "detail": {"type": "string"},
        "rejected": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "id": {"type": ["string", "null"]}, "reason": {"type": "string"},
            "detail": {"type": "string"}}}}}}
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "streams worker", "version": "1", "description":
                 "Publish articles to articles.raw over HTTP, and read the worker's metrics."},
        "paths": {
            "/articles": {"post": {
                "summary": "Validate and publish one article or an array of articles (all or nothing).",
                "security": [{"bearerAuth": []}, {}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/RawArticle"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/RawArticle"}, "minItems": 1,
                     "maxItems": MAX_ARTICLES_PER_REQUEST}]}}}},
                "responses": {
                    "202": {"description": "Published; Kafka confirmed every article.", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "accepted": {"type": "integer"}, "ids": {"type": "array", "items": {"type": "string"}}}}}}},
                    "400": {"description": "Not JSON, or an article is invalid; nothing was published.", **err},
                    "401": {"description": "Ingest tokens are set and the request has no bearer token or a wrong "
                            "one; nothing was read or published.", **err},
                    "413": {"description": f"Larger than {MAX_REQUEST_BYTES} bytes, or too many articles.", **err},
                    "415": {"description": "Not application/json.", **err}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics.", "responses": {"200": {
                "description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "webhooks": {"alert": {"post": {
            "summary": "What `streams forward webhook URL` POSTs for each alert: rule matches, entity bursts, "
            "and breaking or updated stories (kind), signed in the Streams-Signature header.",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Alert"}}}},
            "responses": {"2XX": {"description": "Delivered; the forwarder commits the alert."},
                          "4XX": {"description": "Refused for good (408 and 429 are retried): the alert goes to "
                                  "alerts.deadletter."},
                          "5XX": {"description": "Retried with backoff, then dead-lettered."}}}}},
        "components": {
            "schemas": {"RawArticle": article, "Alert": alert, "Error": error, **defs},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "Required when the worker has STREAMS_INGEST_TOKEN or STREAMS_INGEST_TOKENS_FILE set "
                "(always, when it listens beyond loopback unless STREAMS_INGEST_OPEN=true)."}},
        },
    }


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
