"""The raw wire format: what is accepted, and the reason for everything that is not."""

from __future__ import annotations

import json

import pytest

from streams.contract.events import RawArticle
from streams.contract.validate import Rejection, dead_letter, parse_raw

GOOD = {"id": "a-1", "url": "https://news.example/a-1", "source": "news.example", "title": "T",
        "body": "Some text.", "content_type": "text/plain", "published_at": "2026-09-05T06:00:00Z"}


def test_good_message_parses() -> None:
    raw = parse_raw(json.dumps(GOOD).encode(), 1000)
    assert isinstance(raw, RawArticle)
    assert raw.id == "a-1" and raw.published_at.tzinfo is not None and raw.content_type == "text/plain"


def test_content_type_defaults_to_plain_and_title_is_optional() -> None:
    raw = parse_raw(json.dumps({k: v for k, v in GOOD.items() if k not in ("content_type", "title")}), 1000)
    assert isinstance(raw, RawArticle) and raw.content_type == "text/plain" and raw.title is None


@pytest.mark.parametrize(("data", "reason"), [
    (b'{"id": "x", "title": "Truncated', "not_json"),
    (json.dumps([GOOD]).encode(), "not_object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "body"}).encode(), "missing_body"),
    (json.dumps({**GOOD, "body": "  \n "}).encode(), "empty_body"),
    (json.dumps({**GOOD, "body": 12345}).encode(), "wrong_type"),
    (json.dumps({**GOOD, "url": "not a url"}).encode(), "bad_url"),
    (json.dumps({**GOOD, "published_at": "yesterday"}).encode(), "bad_timestamp"),
    (json.dumps({**GOOD, "published_at": "2026-09-05T06:00:00"}).encode(), "bad_timestamp"),
    (json.dumps({**GOOD, "body": "x" * 2000}).encode(), "too_large"),
    (b"\xff\xfe{}", "not_utf8"),
    (json.dumps({**GOOD, "id": ""}).encode(), "invalid_field"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "source"}).encode(), "missing_field"),
    (json.dumps({**GOOD, "content_type": "application/pdf"}).encode(), "invalid_field"),
])
def test_bad_messages_are_rejected_with_their_reason(data: bytes, reason: str) -> None:
    result = parse_raw(data, 1000)
    assert isinstance(result, Rejection)
    assert result.reason == reason, result.detail


def test_dead_letter_keeps_original_bytes() -> None:
    text = dead_letter(b'{"broken', "clean", "not_json", "why")
    assert text.original == '{"broken' and text.original_encoding == "utf-8"
    binary = dead_letter(b"\xff\x00", "clean", "not_utf8", "why")
    assert binary.original_encoding == "base64"
    import base64

    assert base64.b64decode(binary.original) == b"\xff\x00"
