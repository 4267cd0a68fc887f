"""A fence between faust's fetches and its seeks to the committed offsets: no input is skipped.

faust-streaming 0.15.3 seeks a worker's stream partitions back to their committed offsets when a
recovery completes (``Consumer.perform_seek``), but a batch its fetcher obtained before that seek
is still drained afterwards. Its messages move the consumer's read offset past the committed one,
so the same records fetched again after the seek are dropped as already read ("DROPPED MESSAGE
ROFF" in faust's dev log), while the stream skips some of the first delivery because flow control
was not active yet. The skipped offsets then sit between acked ones, faust's commit steps over
them, and the inputs are lost. It showed when a worker started with a backlog waiting (after a
broker restart, 4 of 6 runs of ``tests/test_recovery.py -k broker_keeps``: 1 to 4 inputs lost).

The fence counts seeks; a fetch that began before a seek stops yielding at the first message
after it, and the read offsets go back to those the seek set, so every record from the committed
offset on is delivered again (a repeat at most, which ``raw_ref`` makes harmless).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from faust.transport.consumer import Consumer

_SEEKS = "_streams_seeks"
_SEEKED = "_streams_seeked_offsets"


def install(consumer_class: type = Consumer) -> None:
    """Wrap ``perform_seek`` and ``getmany`` of faust's consumer (once)."""
    if getattr(consumer_class, "_streams_fenced", False):
        return
    perform_seek, getmany = consumer_class.perform_seek, consumer_class.getmany

    async def fenced_seek(self: Any) -> None:
        setattr(self, _SEEKS, getattr(self, _SEEKS, 0) + 1)  # a fetch under way is stale from now
        await perform_seek(self)
        setattr(self, _SEEKED, dict(self._read_offset))
        setattr(self, _SEEKS, getattr(self, _SEEKS, 0) + 1)  # and one that began during the seek too

    async def fenced_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        seeks = getattr(self, _SEEKS, 0)
        async for tp, message in getmany(self, timeout):
            if getattr(self, _SEEKS, 0) != seeks:
                self._read_offset.update(getattr(self, _SEEKED, {}))
                return
            yield tp, message

    consumer_class.perform_seek = fenced_seek
    consumer_class.getmany = fenced_getmany
    consumer_class._streams_fenced = True
