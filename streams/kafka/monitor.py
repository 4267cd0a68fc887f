"""Faust's Monitor without the statistics it keeps for every record.

Faust calls its sensors for every consumed record, stream event and table access; its Monitor
keeps counters, deques of latencies and per-topic tallies there, which only Faust's own stats pages
read. Those pages are off in this project, whose metrics are its own (:mod:`streams.metrics`). In a
one-hop benchmark (``streams bench-hop``, docs/benchmark.md) those statistics cost 5-8 µs per record.
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor


class QuietMonitor(Monitor):
    """Faust's Monitor minus its per-record statistics; rebalances, commits and offsets it still
    records. Set as the app's ``Monitor`` (:class:`streams.app.StreamsApp`)."""

    def on_message_in(self, *args: Any) -> None: ...
    def on_stream_event_in(self, *args: Any) -> None: ...
    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None: ...
    def on_message_out(self, *args: Any) -> None: ...
    def on_table_get(self, *args: Any) -> None: ...
    def on_table_set(self, *args: Any) -> None: ...
    def on_table_del(self, *args: Any) -> None: ...
