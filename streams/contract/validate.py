"""Parse and validate one raw message from ``articles.raw``.

Producers, the HTTP endpoint and the clean stage all call :func:`parse_raw`, so a message is judged
by the same rules at the door and in the pipeline. A bad message is never an exception to the
caller: it is a :class:`Rejection` with a machine-readable reason that ends up on the dead-letter
topic together with the original bytes.
"""

from __future__ import annotations

import base64
import json
import traceback
from dataclasses import dataclass

from pydantic import ValidationError

from streams.contract.events import DeadLetter, RawArticle

#: Which field's failure maps to which reason, for the fields with a reason of their own.
FIELD_REASONS = {"url": "bad_url", "published_at": "bad_timestamp", "title": "bad_title"}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot enter the pipeline."""

    reason: str
    detail: str
    id: str | None = None


def decode_original(data: bytes) -> tuple[str, str]:
    """The original bytes as text when they are UTF-8, else base64: ``(text, encoding)``."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _reason_for(errors: list[dict], obj: dict) -> tuple[str, str]:
    """Pick one reason for a pydantic failure, most specific first."""
    first = errors[0]
    for err in errors:
        field = str(err["loc"][0]) if err["loc"] else ""
        if field == "body":
            if err["type"] == "missing":
                return "missing_body", "the message has no 'body'"
            if not isinstance(obj.get("body"), str):
                return "wrong_type", f"'body' must be a string, got {type(obj.get('body')).__name__}"
            return "empty_body", "'body' is empty or whitespace"
    for err in errors:
        field = str(err["loc"][0]) if err["loc"] else ""
        if field == "id" and "control characters" in err["msg"]:
            return "bad_id", f"id: {err['msg']}"
        if field in FIELD_REASONS and err["type"] != "missing":
            return FIELD_REASONS[field], f"{field}: {err['msg']}"
    field = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing":
        return "missing_field", f"the message has no '{field}'"
    if first["type"].endswith("_type") or first["type"] == "model_type":
        return "wrong_type", f"{field}: {first['msg']}"
    return "invalid_field", f"{field}: {first['msg']}"


def parse_raw(data: bytes | str, max_body_bytes: int) -> RawArticle | Rejection:
    """Turn one message value into a :class:`RawArticle`, or say why it cannot be one."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection("not_utf8", f"the message is not UTF-8: {exc}")
    else:
        text = data
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, an integer past 4,300 digits, nesting too deep
        return Rejection("not_json", f"the message is not JSON we accept: {exc}"[:300])
    if not isinstance(obj, dict):
        return Rejection("not_object", f"the message is a JSON {type(obj).__name__}, not an object")
    msg_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    body = obj.get("body")
    if isinstance(body, str) and len(body.encode("utf-8", "surrogatepass")) > max_body_bytes:
        return Rejection("too_large", f"body is larger than {max_body_bytes} bytes", msg_id)
    try:
        article = RawArticle.model_validate(obj)
        article.dumps()  # a lone surrogate (a string cut mid-emoji) cannot be written as UTF-8
    except ValidationError as exc:
        reason, detail = _reason_for(exc.errors(), obj)
        return Rejection(reason, detail[:500], msg_id)
    except (UnicodeError, ValueError) as exc:
        return Rejection("bad_unicode", f"a string is not valid Unicode (a lone surrogate?): {exc}"[:300], msg_id)
    return article


def dead_letter(data: bytes, stage: str, reason: str, detail: str, msg_id: str | None = None,
                **where: object) -> DeadLetter:
    """The dead-letter event for ``data``: the reason, the stage and the original bytes."""
    original, encoding = decode_original(data)
    return DeadLetter(id=msg_id, stage=stage, reason=reason, detail=detail, original=original,
                      original_encoding=encoding, **where)


def traceback_summary(exc: BaseException, limit: int = 3) -> str:
    """The exception and its innermost frames, short enough for a dead-letter event."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-limit)
    return "".join(frames)[-2000:]
