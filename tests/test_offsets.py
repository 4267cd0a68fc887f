"""The orderings in which Faust's offset tracking loses records, replayed in-process and fast.

Faust's real consumer code (its fetch loop, acks, commit bookkeeping and perform_seek) runs against a
fake driver: one partition with a position that a fetch advances and ``seek_to_committed`` moves back,
a committed offset, and a stream buffer that flow control clears as Faust's stream buffers are
cleared. Each scenario asserts what the pipeline promises: every offset below the final committed
offset was processed, and the commit reaches the end of the log (nothing stalls).

Each scenario runs twice: with :class:`streams.kafka.consumer.OffsetSafety` (must pass) and with
Faust's consumer as released (``xfail(strict=True)``: the scenario must make it fail, so a scenario
that stops reproducing the bug fails the suite too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode.utils.queues import FlowControlQueue

from streams.errors import ConfigError
from streams.kafka.consumer import FAUST_VERIFIED, OffsetSafety, PartitionLedger, Stamped, check_faust_version

TOPIC = "articles.raw"
PART = TP(TOPIC, 0)


@dataclass
class Record:
    offset: int
    topic: str = TOPIC
    partition: int = 0


@dataclass
class Broker:
    """One partition's log (the offsets Kafka returns: gaps are compaction or transaction markers)."""

    log: list[int]
    committed: int | None = None
    position: int = 0
    fetch_size: int = 5
    fail_commits: int = 0
    commits: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start = self.position = self.committed or 0  # where the group left off (done before)

    def fetch(self) -> list[Record]:
        batch = [o for o in self.log if o >= self.position][: self.fetch_size]
        if batch:
            self.position = batch[-1] + 1
        return [Record(o) for o in batch]


class FakeDriver:
    """The driver side of a Faust consumer. ``hooks`` lets a scenario act at chosen moments."""

    broker: Broker
    seeks_uncommitted = False  # aiokafka's seek_to_committed leaves partitions committed at None/0

    def bind(self, broker: Broker, hooks: dict[str, Callable[[], Awaitable[None]]]) -> None:
        self.broker, self.hooks = broker, hooks

    async def _hook(self, name: str) -> None:
        if name in self.hooks:
            await self.hooks[name]()

    async def _getmany(self, active_partitions: Any, timeout: float) -> Mapping:
        await asyncio.sleep(0)
        if not self.flow_active:  # as Faust's thread returns nothing while the flow is stopped
            return {}
        batch = self.broker.fetch()
        records = {PART: batch} if batch else {}
        if isinstance(self, OffsetSafety):
            records = self.stamp(records)  # stamped where the driver returns it, as the thread does
        await self._hook("fetched")  # the batch crosses from the consumer thread to the event loop
        if not batch:
            await asyncio.sleep(0.005)
        return records

    async def seek_to_committed(self) -> Mapping[TP, int | None]:
        committed = self.broker.committed
        if committed is not None and committed > 0:
            self._move(committed)
        elif self.seeks_uncommitted:
            self._move(0, None)
        await self._hook("sought")
        return {PART: committed}

    def _move(self, offset: int, noted: int | str | None = "same") -> None:
        if isinstance(self, OffsetSafety):
            self.note_seek(PART, offset if noted == "same" else noted)
        self.broker.position = offset

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        if self.broker.fail_commits:
            self.broker.fail_commits -= 1
            return False
        self.broker.committed = offsets[PART]
        self.broker.commits.append(offsets[PART])
        return True

    async def _seek(self, partition: TP, offset: int) -> None:
        self._move(offset)

    async def _rewind(self, tp: TP, offset: int) -> None:
        self._move(offset)

    def _to_message(self, tp: TP, record: Record) -> ConsumerMessage:
        return ConsumerMessage(TOPIC, 0, record.offset, 0.0, 0, [], b"k", b"v", None, 1, 1, tp)

    def assignment(self) -> set[TP]:
        return {PART}

    def highwater(self, tp: TP) -> int:
        return self.broker.log[-1] + 1

    def _new_topicpartition(self, topic: str, partition: int) -> TP:
        return TP(topic, partition)

    async def create_topic(self, *args: Any, **kwargs: Any) -> None: ...
    async def subscribe(self, topics: Any) -> None: ...
    async def position(self, tp: TP) -> int | None: return self.broker.position
    async def seek_to_beginning(self, *partitions: TP) -> None: ...
    async def seek_wait(self, partitions: Any) -> None: ...
    def topic_partitions(self, topic: str) -> int | None: return 1
    def close(self) -> None: ...
    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]: return {PART: 0}
    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]: return {PART: self.highwater(PART)}
    def key_partition(self, *args: Any) -> int: return 0


class StockConsumer(FakeDriver, FaustConsumer):
    pass


class SafeConsumer(OffsetSafety, FakeDriver, FaustConsumer):
    seeks_uncommitted = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_offset_safety()
        super().__init__(*args, **kwargs)


class NoProducer:
    async def flush(self) -> None: ...


class Harness:
    """An app, a consumer of the given class, a stream buffer that flow control clears, an agent
    that acks what it takes, and Faust's rebalance steps in the order the app and recovery run them."""

    def __init__(self, consumer_class: type, broker: Broker) -> None:
        self.app = faust.App(f"offsets-{id(self)}", broker="kafka://localhost:1", stream_wait_empty=False)
        self.app.producer = NoProducer()
        self.app.topics.acks_enabled_for = lambda topic: True
        self.broker = broker
        self.hooks: dict[str, Callable[[], Awaitable[None]]] = {}
        self.buffer: FlowControlQueue = FlowControlQueue(1000, flow_control=self.app.flow_control,
                                                         clear_on_resume=True)
        self.delivered: list[int] = []
        self.processed: set[int] = set()
        self.agent_go = asyncio.Event()
        self.buffered = asyncio.Event()  # set when `buffered_at` records were delivered
        self.buffered_at = 0
        self.consumer = consumer_class(self.app.transport, callback=self.on_message,
                                       on_partitions_revoked=None, on_partitions_assigned=None)
        self.consumer.bind(broker, self.hooks)
        self.consumer.resume_partitions({PART})

    async def on_message(self, message: ConsumerMessage) -> None:  # as Faust's conductor delivers
        await self.app.flow_control.acquire()
        message.incref()
        self.delivered.append(message.offset)
        await self.buffer.put(message)
        if len(self.delivered) == self.buffered_at:
            self.buffered.set()
        await asyncio.sleep(0)

    async def agent(self) -> None:
        while True:
            await self.agent_go.wait()
            message = await self.buffer.get()
            self.processed.add(message.offset)
            message.ack(self.consumer)
            await asyncio.sleep(0)

    # Faust's steps (app/base.py _on_partitions_revoked; tables/recovery.py at recovery's end)
    def revoke(self) -> None:
        self.consumer.stop_flow()
        self.app.flow_control.suspend()
        self.consumer.pause_partitions({PART})
        self.app.flow_control.clear()

    async def recovery_end(self) -> None:
        self.consumer.resume_partitions({PART})
        await self.consumer.perform_seek()
        self.app.flow_control.resume()
        self.consumer.resume_flow()

    async def run(self, scenario: Callable[[Harness], Awaitable[None]], limit: float = 2.0) -> None:
        class Fetcher:
            _stopped = asyncio.Event()

        tasks = [asyncio.ensure_future(self.consumer._drain_messages(Fetcher())), asyncio.ensure_future(self.agent())]
        try:
            await asyncio.wait_for(scenario(self), timeout=limit)
            self.agent_go.set()
            end = self.broker.log[-1] + 1
            deadline = asyncio.get_running_loop().time() + limit
            while asyncio.get_running_loop().time() < deadline:  # bounded: a stalled commit is a failure
                await self.consumer.commit()
                if self.broker.committed == end and not self.buffer.qsize():
                    break
                await asyncio.sleep(0.01)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def check(self) -> None:
        committed = self.broker.committed or 0
        skipped = [o for o in self.broker.log if self.broker.start <= o < committed and o not in self.processed]
        assert not skipped, f"committed {committed} past offsets never processed: {skipped}"
        assert committed == self.broker.log[-1] + 1, (
            f"the commit stopped at {committed} of {self.broker.log[-1] + 1} (processed {sorted(self.processed)})")


async def until(condition: Callable[[], bool], what: str, limit: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"waited {limit}s for {what}")
        await asyncio.sleep(0.001)


async def rebalance_while_buffered(h: Harness, buffered: int) -> None:
    """The seek lands while records sit in the stream buffer (the agent has not taken them)."""
    h.app.flow_control.resume()  # a worker that has been running: flow control is open
    h.buffered_at = buffered
    await h.buffered.wait()
    h.revoke()
    await h.recovery_end()


async def stale_batch_after_seek(h: Harness) -> None:
    """A batch fetched before the seek reaches the event loop after it (and after the flow resumed)."""
    h.app.flow_control.resume()
    hold, fetched = asyncio.Event(), asyncio.Event()

    async def on_fetched() -> None:
        if len(h.delivered) >= 5 and not hold.is_set():  # the second batch: hold it in flight
            fetched.set()
            await hold.wait()

    h.hooks["fetched"] = on_fetched
    await until(fetched.is_set, "a second fetch in flight")
    h.revoke()
    await h.recovery_end()
    hold.set()


async def fetch_between_seek_and_clear(h: Harness) -> None:
    """A worker that owned nothing before this rebalance (so Faust neither stopped its flow nor
    suspended flow control) fetches and buffers records after the seek, before recovery's clear."""
    h.app.flow_control.resume()
    h.consumer.resume_flow()
    h.broker.fetch_size = 100
    await h.consumer.perform_seek()
    await asyncio.sleep(0.05)  # the fetcher runs: records reach the buffer
    h.app.flow_control.resume()  # recovery's end: clears the buffers
    h.consumer.resume_flow()


SCENARIOS: dict[str, tuple[Callable[[], Broker], Callable[[Harness], Awaitable[None]]]] = {
    "seek with several records buffered": (lambda: Broker(list(range(30)), committed=5),
                                           lambda h: rebalance_while_buffered(h, 4)),
    "seek with one record buffered": (lambda: Broker(list(range(30)), committed=5),
                                      lambda h: rebalance_while_buffered(h, 1)),
    "batch fetched before the seek, delivered after": (lambda: Broker(list(range(30)), committed=5),
                                                       stale_batch_after_seek),
    "fetch after the seek, before the buffers' clear": (lambda: Broker(list(range(30)), committed=5),
                                                        fetch_between_seek_and_clear),
    "never-committed partition": (lambda: Broker(list(range(30)), committed=None),
                                  lambda h: rebalance_while_buffered(h, 4)),
}

STOCK = pytest.param(StockConsumer, id="faust-0.15.3",
                     marks=pytest.mark.xfail(strict=True, reason="faust's own offset tracking loses or stalls"))
SAFE = pytest.param(SafeConsumer, id="streams")


@pytest.mark.parametrize("consumer_class", [SAFE, STOCK])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_offset_committed_past_an_unprocessed_record(consumer_class: type, scenario: str) -> None:
    make_broker, play = SCENARIOS[scenario]

    async def main() -> None:
        h = Harness(consumer_class, make_broker())
        await h.run(play)
        h.check()

    asyncio.run(main())


@pytest.mark.parametrize("consumer_class", [SAFE, pytest.param(StockConsumer, id="faust-0.15.3")])
def test_gaps_kafka_left_still_commit(consumer_class: type) -> None:
    """Compaction and transaction markers leave offsets Kafka never returns: they are committed past."""
    async def main() -> None:
        h = Harness(consumer_class, Broker([0, 1, 2, 5, 6, 9, 10, 14], committed=None, fetch_size=3))

        async def play(h: Harness) -> None:
            h.app.flow_control.resume()
            await h.recovery_end()

        await h.run(play)
        h.check()

    asyncio.run(main())


STOCK_316 = pytest.param(StockConsumer, id="faust-0.15.3", marks=pytest.mark.xfail(
    strict=True, reason="faust-streaming #316: a failed commit advances the bookkeeping"))


@pytest.mark.parametrize("consumer_class", [SAFE, STOCK_316])
def test_failed_commit_does_not_advance_the_bookkeeping(consumer_class: type) -> None:
    async def main() -> None:
        h = Harness(consumer_class, Broker(list(range(10)), committed=None, fail_commits=1))

        async def play(h: Harness) -> None:
            h.app.flow_control.resume()
            await h.recovery_end()
            h.agent_go.set()
            await until(lambda: len(h.processed) == 10, "all ten processed")
            assert not await h.consumer.commit()  # refused by the broker
            assert h.consumer._committed_offset[PART] is None, "a refused commit was remembered as done"

        await h.run(play)
        h.check()

    asyncio.run(main())


def test_ledger_commits_below_the_lowest_record_in_flight() -> None:
    ledger = PartitionLedger(epoch=1, position=5)
    assert ledger.committable() == 5
    for offset in (5, 6, 8):  # 7 was compacted away
        ledger.deliver(offset)
    assert ledger.committable() == 5
    ledger.ack(6)
    ledger.ack(8)
    assert ledger.committable() == 5, "6 and 8 are done, but 5 is still in flight"
    ledger.ack(5)
    assert ledger.committable() == 9 and ledger.in_flight == 0
    assert not ledger.ack(3), "a record from before the seek is not this ledger's"


def test_a_batch_stamped_before_a_seek_is_stale() -> None:
    safety = OffsetSafety()
    safety._init_offset_safety()
    batch = safety.stamp({PART: [Record(7)]})
    assert isinstance(batch, Stamped) and batch.epochs[PART] == 0
    safety.note_seek(PART, 5)
    assert batch.epochs[PART] != safety._epochs[PART]
    assert safety.ledger(PART).position == 5


def test_another_faust_version_is_refused() -> None:
    check_faust_version(FAUST_VERIFIED)
    with pytest.raises(ConfigError, match=r"faust-streaming==0\.15\.3"):
        check_faust_version("0.16.0")


# -- handing a record to the streams ------------------------------------------------------------------

def test_a_delivery_that_does_not_wait_is_handed_over_at_once() -> None:
    """The common case runs inline: no race against the flow's suspension, no task per record."""
    async def main() -> None:
        h = Harness(SafeConsumer, Broker([0], committed=None))
        handed: list[int] = []

        async def deliver() -> None:
            handed.append(1)

        async def no_race(*_: object, **__: object) -> None:
            raise AssertionError("a delivery that did not wait was raced against the flow")

        h.consumer.wait_first = no_race
        await h.consumer._hand_over(deliver())
        assert handed == [1]

    asyncio.run(main())


def test_a_delivery_that_waits_finishes_or_gives_way_when_the_flow_stops() -> None:
    """A delivery that blocks (a full stream buffer) still finishes when it can, with its exceptions;
    and when the flow stops for a rebalance it is abandoned, as Faust's ``wait_first`` race does."""
    async def main() -> None:
        h = Harness(SafeConsumer, Broker([0], committed=None))
        space = asyncio.Event()
        steps: list[str] = []

        async def deliver(fail: bool = False) -> None:
            steps.append("waiting")
            try:
                await space.wait()
            except asyncio.CancelledError:
                steps.append("abandoned")
                raise
            if fail:
                raise ValueError("the buffer refused it")
            steps.append("delivered")

        handing = asyncio.ensure_future(h.consumer._hand_over(deliver()))
        await until(lambda: steps == ["waiting"], "the delivery to wait")
        space.set()
        await asyncio.wait_for(handing, timeout=2)
        assert steps == ["waiting", "delivered"]

        with pytest.raises(ValueError, match="refused"):
            await asyncio.wait_for(h.consumer._hand_over(deliver(fail=True)), timeout=2)

        space.clear()
        steps.clear()
        handing = asyncio.ensure_future(h.consumer._hand_over(deliver()))
        await until(lambda: steps == ["waiting"], "the delivery to wait")
        h.consumer.stop_flow()
        await asyncio.wait_for(handing, timeout=2)  # the fetch loop is not held by a blocked delivery
        await until(lambda: steps == ["waiting", "abandoned"], "the blocked delivery to be abandoned")

    asyncio.run(main())
