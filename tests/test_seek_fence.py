"""The fence between faust's fetches and its seeks (streams/seek_fence.py), in-process.

The race it closes shows on the real broker in tests/test_recovery.py (a worker starting with a
backlog after a broker restart); here it is replayed step by step on a consumer with faust's
``perform_seek``/``getmany``/``_read_offset`` surface, as faust's drain loop drives it."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from streams.seek_fence import install

COMMITTED = 28


class Consumer:
    """faust's consumer surface the fence wraps: a fetch yields a batch read from the position."""

    def __init__(self) -> None:
        self._read_offset: dict[str, int | None] = defaultdict(lambda: None)

    async def perform_seek(self) -> None:
        self._read_offset.update({"raw-0": COMMITTED})

    async def getmany(self, timeout: float):
        for offset in range(COMMITTED, COMMITTED + 6):
            yield "raw-0", offset


install(Consumer)


async def drain(consumer: Consumer, seek_after: int | None = None) -> list[int]:
    """faust's drain loop: deliver what is not behind the read offset, then advance it."""
    delivered = []
    async for tp, offset in consumer.getmany(timeout=1.0):
        read = consumer._read_offset[tp]
        if read is None or offset >= read:
            delivered.append(offset)
            consumer._read_offset[tp] = offset
        if seek_after is not None and len(delivered) == seek_after:
            await consumer.perform_seek()  # recovery completes while this batch is being drained
    return delivered


def test_a_batch_fetched_before_a_seek_stops_and_the_records_come_again() -> None:
    consumer = Consumer()
    stale = asyncio.run(drain(consumer, seek_after=3))
    assert stale == [28, 29, 30], "the stale batch went on after the seek"
    assert consumer._read_offset["raw-0"] == COMMITTED, "the read offset stayed past the committed one"
    again = asyncio.run(drain(consumer))
    assert again == list(range(COMMITTED, COMMITTED + 6)), "records after the committed offset were dropped"


def test_without_a_seek_a_batch_is_drained_whole() -> None:
    consumer = Consumer()
    assert asyncio.run(drain(consumer)) == list(range(COMMITTED, COMMITTED + 6))
    assert asyncio.run(drain(consumer)) == [COMMITTED + 5]  # only the last one is not behind the read offset
