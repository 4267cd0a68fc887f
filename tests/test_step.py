"""An agent's step (streams/step.py), in-process: what the worker does around every stage call."""

from __future__ import annotations

import json

from streams import step
from streams.contract.events import CleanArticle
from streams.metrics import Metrics

ARTICLE = json.dumps({"id": "a-1", "raw_ref": "3:141", "title": "Not quite an article"}).encode()


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_stage_that_raises_gives_a_stage_error_dead_letter_with_the_original_bytes() -> None:
    metrics = Metrics()
    letter = step.run(metrics, "dedup", ARTICLE, b"a-1", CleanArticle.model_validate_json)  # fields missing
    assert letter.reason == "stage_error" and letter.stage == "dedup"
    assert letter.original.encode() == ARTICLE and letter.id == "a-1" and letter.raw_ref == "3:141"
    assert "ValidationError" in letter.detail  # what went wrong, for whoever reads the dead letter
    assert counted(metrics, "streams_articles_in_total", stage="dedup") == 1
    assert counted(metrics, "streams_stage_seconds_count", stage="dedup") == 0  # a failure is not a timing


def test_a_poison_message_that_is_not_json_still_gets_its_dead_letter() -> None:
    letter = step.run(Metrics(), "tag", b"\xff\xfe not json", None, json.loads)
    assert letter.reason == "stage_error" and letter.raw_ref is None and letter.original_encoding == "base64"


def test_a_stage_that_works_is_counted_and_timed() -> None:
    metrics = Metrics()
    assert step.run(metrics, "alert", ARTICLE, None, lambda data: len(data)) == len(ARTICLE)
    assert counted(metrics, "streams_articles_in_total", stage="alert") == 1
    assert counted(metrics, "streams_stage_seconds_count", stage="alert") == 1


def test_a_batch_dead_letters_only_the_inputs_that_break_it() -> None:
    """One input that cannot be parsed and one that makes the batch's work raise: those two get
    their dead letters, the others their results, in order; every input is counted once."""
    metrics = Metrics()

    def work(batch: list[dict]) -> list[str]:
        if any(item.get("boom") for item in batch):
            raise ValueError("the batch call failed")
        return [item["id"].upper() for item in batch]

    items = [(b'{"id": "a"}', b"a"), (b"not json", b"b"), (b'{"id": "c", "boom": 1}', b"c"), (b'{"id": "d"}', b"d")]
    out = step.run_many(metrics, "tag", items, json.loads, work)
    assert out[0] == "A" and out[3] == "D"
    assert [(o.reason, o.id) for o in (out[1], out[2])] == [("stage_error", "b"), ("stage_error", "c")]
    assert "ValueError" in out[2].detail
    assert counted(metrics, "streams_articles_in_total", stage="tag") == 4
    assert counted(metrics, "streams_stage_seconds_count", stage="tag") == 2
