"""Faust's Kafka consumer with offset tracking that cannot commit past a record it never delivered.

faust-streaming 0.15.3 (and its master) can skip inputs when a worker starts with a backlog or takes
over partitions that have one (docs/upstream-offset-tracking.md has the orderings and the upstream
issues). This module keeps Faust's consumer and replaces the part that decides what is safe to
commit, through Faust's own extension point: the transport's ``Consumer`` class
(:class:`Transport`, which :class:`streams.app.StreamsApp` uses).

The invariant, per partition of an acking topic: **an offset is committed only if its record was
acked, or Kafka never returned it between two records read consecutively from one position.**
What holds it:

* *Seek epochs.* Every seek of a partition (recovery's seek to the committed offsets, or any other)
  bumps that partition's epoch on the consumer thread, and every fetched batch is stamped with the
  epochs of its partitions on the same thread the moment aiokafka returns it. A record whose
  partition was sought after it was fetched is dropped: it never moves a ledger, and Kafka will
  return it again from the new position.
* *A ledger per partition* (:class:`PartitionLedger`): the position sought to, the records
  delivered since in order, and which of those were acked (taken from Faust's acked lists, which
  its Python and Cython ack paths both write). The commit offset is the lowest delivered record not
  acked yet, or, with none in flight, the offset after the last one delivered. Faust's read
  offsets and gap tree are not consulted for acking topics.
* *No delivery between a seek and the buffers' clear.* Recovery seeks, then resumes flow control,
  which clears every stream buffer. Seeking stops the consumer's flow, and nothing is handed to
  a stream until Faust resumes it after that clear.
* *Every partition is sought.* Partitions never committed (or committed at 0), which aiokafka's
  ``seek_to_committed`` leaves where they are, go back to the group's reset policy.
* *A record that cannot be delivered stops its partition's epoch*: the partition is rewound to it
  instead of its later records being taken for a gap Kafka left.

Duplicates after a seek are allowed (``raw_ref`` idempotency absorbs them); a loss is not. A failed
commit no longer advances the committed-offset bookkeeping (faust-streaming #316).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Mapping
from functools import partial
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock

from streams.errors import ConfigError

#: The faust-streaming release this consumer was verified against (tests/test_offsets.py and the
#: broker tests). Its private methods are what this module overrides, so another version is refused.
FAUST_VERIFIED = "0.15.3"

# Test hook, never set in production: seconds to sleep right after a seek, which widens the window
# in which Faust's stock consumer loses records (the reliability tests' loops use it).
SEEK_DELAY_ENV = "STREAMS_TEST_SEEK_DELAY"

log = logging.getLogger(__name__)


def check_faust_version(version: str = faust.__version__) -> None:
    if version != FAUST_VERIFIED:
        raise ConfigError(
            f"faust-streaming {version} is installed, but streams' consumer fix was verified against "
            f"{FAUST_VERIFIED} only (streams/kafka/consumer.py). Install faust-streaming=={FAUST_VERIFIED}, "
            "or re-verify the fix (pytest tests/test_offsets.py and the reliability tests) and raise FAUST_VERIFIED.")


def seek_delay() -> float:
    return float(os.environ.get(SEEK_DELAY_ENV) or 0)


async def seek_and_remember(consumer: Any) -> Mapping[TP, int | None]:
    """Faust's ``perform_seek``: seek to the committed offsets and remember them as read and
    committed (after the test hook's delay, which widens the window the stock consumer loses in)."""
    committed = await consumer.seek_to_committed()
    if delay := seek_delay():
        await asyncio.sleep(delay)
    consumer._read_offset.update({tp: off if off is not None and off >= 0 else None for tp, off in committed.items()})
    consumer._committed_offset.update({tp: off or None for tp, off in committed.items() if off is not None})
    return committed


class PartitionLedger:
    """What one partition's consumer delivered since the partition was last sought, and so what is
    safe to commit. Offsets are delivered in increasing order within one epoch."""

    __slots__ = ("_pending", "_waiting", "epoch", "position", "stopped")

    def __init__(self, epoch: int, position: int | None) -> None:
        self.epoch = epoch
        #: the offset after the last record delivered (at first: where the partition was sought to;
        #: None when that is not known, as after a reset to the log's start)
        self.position = position
        #: a record of this epoch could not be delivered: nothing more is until the next seek
        self.stopped = False
        self._pending: deque[int] = deque()  # delivered, in order, head not acked (when any)
        self._waiting: set[int] = set()  # delivered and not acked

    def deliver(self, offset: int) -> None:
        self._pending.append(offset)
        self._waiting.add(offset)
        self.position = offset + 1

    def ack(self, offset: int) -> bool:
        """Mark a delivered record done; False for a record this ledger did not deliver (one from
        before the last seek: it will be delivered again, or was)."""
        if offset not in self._waiting:
            return False
        self._waiting.remove(offset)
        pending, waiting = self._pending, self._waiting
        while pending and pending[0] not in waiting:
            pending.popleft()
        return True

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def committable(self) -> int | None:
        """The offset safe to commit: every record below it was acked or skipped by Kafka."""
        return self._pending[0] if self._pending else self.position


class Resumed:
    """The rest of a coroutine that was started by hand and suspended on ``waiting_on``: awaiting this
    carries it on to its end exactly as ``await coroutine`` would have (what ``yield from`` does, from
    its first suspension on)."""

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self.coroutine, self.waiting_on = coroutine, waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # a cancellation, or an exception thrown in: passed on to it
                step = partial(coroutine.throw, exc)
            else:
                step = partial(coroutine.send, sent)
            try:
                waiting_on = step()
            except StopIteration as stop:
                return stop.value


class Stamped(dict):
    """A fetched batch (``{tp: [records]}``) with the seek epoch of each partition at fetch time."""

    __slots__ = ("epochs",)

    def __init__(self, records: Mapping, epochs: Mapping[TP, int]) -> None:
        super().__init__(records)
        self.epochs = epochs


class OffsetSafety:
    """The consumer side of the fix, for any Faust consumer whose driver (1) calls
    :meth:`note_seek` on the thread that moves a partition's position, at the moment it moves it, and
    (2) returns fetched batches as :class:`Stamped` built on that same thread. Mixed into Faust's
    aiokafka consumer below, and into a fake driver in tests/test_offsets.py."""

    _epochs: dict[TP, int]
    _seeks: dict[TP, tuple[int, int | None]]
    _ledgers: dict[TP, PartitionLedger]

    def _init_offset_safety(self) -> None:
        self._epochs = {}
        self._seeks = {}
        self._ledgers = {}

    # -- the driver's side: called on the thread that moves positions ------------------------------

    def note_seek(self, tp: TP, offset: int | None) -> None:
        """A partition's position moves to ``offset`` (None: to the reset policy's end of the log)."""
        epoch = self._epochs.get(tp, 0) + 1
        self._seeks[tp] = (epoch, offset)  # one assignment, read as one by the event loop
        self._epochs[tp] = epoch

    def stamp(self, records: Mapping) -> Stamped:
        epochs = self._epochs
        return Stamped(records, {tp: epochs.get(tp, 0) for tp in records})

    # -- the ledger ---------------------------------------------------------------------------------

    def ledger(self, tp: TP) -> PartitionLedger:
        """This partition's ledger for its current epoch (a new one after each seek)."""
        current = self._ledgers.get(tp)
        epoch, position = self._seeks.get(tp, (0, None))
        if current is None or current.epoch != epoch:
            current = self._ledgers[tp] = PartitionLedger(epoch, position)
        return current

    async def perform_seek(self) -> None:
        """Seek every assigned partition to its committed offset, and stop the flow: recovery clears
        the stream buffers after this, and resumes the flow only after that clear."""
        self.stop_flow()
        for tp in await seek_and_remember(self):
            self.ledger(tp)

    # -- delivery -----------------------------------------------------------------------------------

    async def _fetch(self, timeout: float) -> AsyncIterator[tuple[TP, Any, int | None]]:
        """Faust's ``getmany`` with each record's fetch epoch (None: a partition without acks)."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:  # as Faust does: a batch fetched while the flow is stopped goes; seek back
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        epochs = getattr(records, "epochs", {})
        acks_enabled_for = self.app.topics.acks_enabled_for
        for tp, record in self.scheduler.iterate(records):
            epoch = epochs.get(tp, 0) if acks_enabled_for(tp.topic) else None
            if epoch is not None and epoch != self._epochs.get(tp, 0):
                continue  # sought after it was fetched: it comes again from the new position
            deliverable = self.flow_active and self.app.consumer_generation_id == generation_id and (
                active_partitions is None or tp in active_partitions or tp in self._buffered_partitions)
            if not deliverable:
                if epoch is not None:
                    await self._stop_partition(tp, record.offset)
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, self._to_message(tp, record), epoch

    async def _hand_over(self, delivery: Coroutine[Any, Any, Any]) -> None:
        """Faust's ``wait_first(callback(message), suspend_flow.wait())``, without its cost when the
        callback does not wait, which is nearly always.

        The race is there for a callback that blocks (a full stream buffer, stopped flow control):
        when the flow is suspended for a rebalance, the record is abandoned rather than holding the
        fetch loop (the ledger keeps it uncommitted, and the seek after the rebalance starts a new
        epoch). ``wait_first`` makes four tasks per record for it, waits on them and cancels three:
        about 50 µs of a record's 150 over one hop (``streams bench-hop``, docs/benchmark.md). Here the
        callback runs at once; only if it suspends does the rest of it race the flow's suspension,
        as before."""
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return
        await self.wait_first(Resumed(delivery, waiting_on), self.suspend_flow.wait())

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        async for tp, message, _ in self._fetch(timeout):
            yield tp, message

    async def _stop_partition(self, tp: TP, offset: int) -> None:
        """A record of this epoch is not delivered: deliver nothing more of the epoch, and go back to
        the record (a rebalance's seek does that when the flow is stopped)."""
        ledger = self.ledger(tp)
        if ledger.stopped:
            return
        ledger.stopped = True
        if self.flow_active and tp in self.assignment():
            self.log.info("rewinding %r to offset %r: a record could not be delivered", tp, offset)
            await self._rewind(tp, offset)

    async def _rewind(self, tp: TP, offset: int) -> None:  # pragma: no cover - driver-specific
        raise NotImplementedError

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - the fetcher's loop
        """Faust's fetch loop, with the ledger in place of read offsets and gaps for acking topics."""
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message, epoch in self._fetch(timeout=1.0):
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    if epoch is None:  # changelogs and other non-acking topics: Faust's own rule
                        r_offset = read_offset[tp]
                        if r_offset is not None and offset < r_offset:
                            continue
                    else:
                        ledger = self.ledger(tp)
                        if ledger.epoch != epoch or ledger.stopped:  # sought since, or stopped
                            continue
                        with ack_lock:
                            ledger.deliver(offset)  # pending before it reaches a stream: never committed past
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self._hand_over(callback(message))
                    read_offset[tp] = offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    # -- acks and commits ---------------------------------------------------------------------------

    def _filter_tps_with_pending_acks(self, topics: Iterable | None = None) -> Iterable[TP]:
        # A revoked partition's ledger stays (a few hundred bytes): dropping it while the assignment
        # is only changing would forget records in flight. Its next seek starts a new one.
        assignment = self.assignment()
        return [tp for tp in self._ledgers
                if tp in assignment and (topics is None or tp in topics or tp.topic in topics)]

    def _new_offset(self, tp: TP) -> int | None:
        """The ledger's commit offset, after taking in the acks Faust recorded since the last commit.

        Acks arrive in Faust's own lists (``_acked``), written by ``Consumer.ack`` or inlined by
        Faust's Cython stream iterator; they are moved into the ledger here, under the same lock."""
        ledger = self._ledgers.get(tp)
        if ledger is None:
            return None
        with ack_lock:
            acked = self._acked[tp]
            if acked:
                for offset in acked:
                    ledger.ack(offset)
                self._acked_index[tp].difference_update(acked)
                acked.clear()
        return ledger.committable()

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Faust's, except that the committed offsets it remembers move only when Kafka took them."""
        assignment = self.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if not committable:
            return False
        if self.in_transaction:
            did_commit = await self.transactions.commit(committable, start_new_transaction=start_new_transaction)
        else:
            await self.app.producer.flush()
            did_commit = await self._commit(committable)
        if did_commit:
            self.app.tables.on_commit(committable)
            self._committed_offset.update(committable)
            self.app.monitor.on_tp_commit(committable)
        return did_commit


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """aiokafka's side: seeks and fetch stamps happen here, on the consumer's own event loop, so
    their order is the order aiokafka saw them in."""

    async def _fetch_records(self, consumer: Any, active_partitions: Any, timeout: float | None = None,
                             max_records: int | None = None) -> Stamped:
        records = await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        return self.consumer.stamp(records)  # no await between aiokafka's return and the stamp

    async def seek_to_committed(self) -> Mapping[TP, int | None]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int | None]:
        """aiokafka's ``seek_to_committed``, except that partitions never committed (or at 0) are
        sought too: to 0, or to the reset policy's end of the log."""
        consumer = self._ensure_consumer()
        reset = self.app.conf.consumer_auto_offset_reset
        committed: dict[TP, int | None] = {}
        for tp in consumer.assignment():
            offset = await consumer.committed(tp)
            committed[tp] = offset
            if offset is not None and offset >= 0:
                self.consumer.note_seek(tp, offset)
                consumer.seek(tp, offset)
            elif reset in ("earliest", "latest"):
                self.consumer.note_seek(tp, None)
                await (consumer.seek_to_beginning(tp) if reset == "earliest" else consumer.seek_to_end(tp))
        return committed

    def seek(self, partition: TP, offset: int) -> None:
        self.consumer.note_seek(partition, offset)
        super().seek(partition, offset)

    async def rewind(self, tp: TP, offset: int) -> None:
        async def on_thread() -> None:
            consumer = self._ensure_consumer()
            if tp in consumer.assignment():
                self.consumer.note_seek(tp, offset)
                consumer.seek(tp, offset)
        await self.call_thread(on_thread)


class Consumer(OffsetSafety, faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with :class:`OffsetSafety`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_offset_safety()
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _rewind(self, tp: TP, offset: int) -> None:
        await self._thread.rewind(tp, offset)


class StockConsumer(faust_aiokafka.Consumer):
    """Faust's consumer as released, with the same test hook: only for showing what the fix fixes."""

    async def perform_seek(self) -> None:
        await seek_and_remember(self)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


class StockTransport(faust_aiokafka.Transport):
    Consumer = StockConsumer


def transport_class() -> type[faust_aiokafka.Transport]:
    """The worker's transport; ``STREAMS_TEST_STOCK_CONSUMER=1`` (tests only) gives Faust's own, to
    show the loss the fix removes."""
    check_faust_version()
    return StockTransport if os.environ.get("STREAMS_TEST_STOCK_CONSUMER") == "1" else Transport
