"""StoreJournal: the runtime's journal of one run, on any :class:`~orchestrion.store.Store`.

* Completed steps are written before their output is handed on, so a run that
  dies after a step never pays for that step again: ``replay`` returns it.
* A non-idempotent step is marked ``started`` before its side effect, so a
  resumed run knows it may have happened and asks a human instead of repeating it.
* Events are buffered as they are emitted and written in order, so a run's
  event log in the store has no gaps: with each completed step, in the same commit
  (``Store.record_step(step, events)``), and the rest when the journal closes.
* Cancellation is cooperative: a flag, set in-process or read from the store,
  that the choke point checks before every call.  One :class:`CancelPoller` per
  Runner reads the statuses of all its live runs in one query, at most every
  0.25 s, instead of every run reading its own record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from orchestrion.contracts.contract import dump_payload
from orchestrion.cost.usage import Usage
from orchestrion.errors import StoreError
from orchestrion.runtime import events as ev
from orchestrion.runtime.records import StepRecord
from orchestrion.store import EventRecord, Store
from orchestrion.store import StepRecord as StoredStep


def input_digest(fingerprint: str) -> str:
    """A short digest of a step's canonical input, stored to check replays against."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:32]


def _stamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class CancelPoller:
    """Watches the journals of many live runs for a cancel made elsewhere (another
    process, the CLI): when a journal is asked and the last read is older than
    ``interval``, one ``store.run_statuses`` read covers every watched run."""

    def __init__(self, store: Store, interval: float = 0.25) -> None:
        self.store = store
        self.interval = interval
        self.reads = 0  # store reads issued: one per poll, whatever the number of runs
        self._journals: dict[str, StoreJournal] = {}
        self._polled = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def watch(self, journal: StoreJournal) -> None:
        self._journals[journal.run_id] = journal

    def unwatch(self, journal: StoreJournal) -> None:
        if self._journals.get(journal.run_id) is journal:
            del self._journals[journal.run_id]

    async def drain(self) -> None:
        """With no journal left to watch, wait for a read in flight (one short query).

        Not cancelled: cancelling a query in flight makes psycopg close its connection.
        """
        task = self._task
        if not self._journals and task is not None and not task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    def kick(self) -> None:
        """Start a poll unless one ran within ``interval`` or is in flight (cheap, sync)."""
        now = time.monotonic()
        if now - self._polled <= self.interval:
            return
        if self._task is not None and not self._task.done():
            return
        self._polled = now
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        ids: Sequence[str] = [k for k, j in self._journals.items() if not j._cancelled]
        if not ids:
            return
        self.reads += 1
        try:
            statuses = await self.store.run_statuses(ids)
        except StoreError:
            return  # best effort: the next check polls again
        for run_id, status in statuses.items():
            journal = self._journals.get(run_id)
            if status == "cancelled" and journal is not None:
                journal.cancel()


class StoreJournal:
    """The journal of run ``run_id``. Build it with :meth:`open`.

    ``poller`` is the CancelPoller shared by the runs of one Runner; without one the
    journal gets a poller of its own.
    """

    CANCEL_POLL_S = 0.25

    def __init__(self, store: Store, run_id: str, *, completed: dict[str, StoredStep],
                 begun: dict[str, StoredStep], poller: CancelPoller | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self._completed = completed
        self._begun = begun
        self._buffer: list[ev.Event] = []
        self._written: set[int] = set()
        self._lock = asyncio.Lock()
        self._cancelled = False
        self._poller = poller or CancelPoller(store, self.CANCEL_POLL_S)
        self._poller.watch(self)

    @classmethod
    async def open(cls, store: Store, run_id: str, *,
                   poller: CancelPoller | None = None) -> StoreJournal:
        """Load what the store knows of the run: completed steps and ones begun but unfinished."""
        completed = await store.completed_steps(run_id)
        begun: dict[str, StoredStep] = {}
        for step in await store.steps(run_id):
            unfinished = step.key not in completed and step.status == "started"
            if unfinished and (step.key not in begun or step.attempt > begun[step.key].attempt):
                begun[step.key] = step
        return cls(store, run_id, completed=completed, begun=begun, poller=poller)

    # ------------------------------------------------------------------ the Journal protocol

    async def replay(self, key: str, input_fingerprint: str) -> StepRecord | None:
        done = self._completed.get(key)
        digest = input_digest(input_fingerprint)
        if done is not None and done.provenance.get("input_digest") == digest:
            return StepRecord(key=key, agent=done.agent, status="succeeded",
                              attempts=int(done.provenance.get("attempts", 1)),
                              input=done.input, output=done.output,
                              provenance=dict(done.provenance))
        begun = self._begun.get(key)
        if begun is not None:
            return StepRecord(key=key, agent=begun.agent, status="started", attempts=0,
                              input=begun.input)
        return None

    async def started(self, key: str, agent: str, payload: Any, input_fingerprint: str) -> None:
        attempt = self._begun[key].attempt + 1 if key in self._begun else 1
        step = StoredStep(run_id=self.run_id, key=key, attempt=attempt, agent=agent,
                          input=dump_payload(payload), status="started",
                          provenance={"input_digest": input_digest(input_fingerprint)})
        await self.store.record_step(step)
        self._begun[key] = step

    async def record(self, record: StepRecord, input_fingerprint: str) -> None:
        key = record.key
        begun = self._begun.pop(key, None)
        attempt = begun.attempt if begun is not None else 1
        provenance = dict(record.provenance)
        provenance["input_digest"] = input_digest(input_fingerprint)
        provenance["attempts"] = record.attempts
        step = StoredStep(
            run_id=self.run_id, key=record.key, attempt=attempt, agent=record.agent,
            input=dump_payload(record.input), status="succeeded",
            output=dump_payload(record.output), usage=record.usage.to_dict(),
            cost_usd=record.usage.usd, started_at=_stamp(record.started_at),
            finished_at=_stamp(record.started_at + record.duration_s), provenance=provenance,
        )
        # The step and every event emitted up to it, in one commit.  Under the lock, so
        # parallel branches recording at once write their batches in seq order.
        async with self._lock:
            batch = self._take_buffer()
            try:
                await self.store.record_step(step, self._event_records(batch))
            except StoreError:
                self._buffer[:0] = batch  # nothing was written: they go with the next write
                raise
        self._completed[key] = step

    def cancelled(self) -> bool:
        if not self._cancelled:
            self._poller.kick()
        return self._cancelled

    # ------------------------------------------------------------------ events and cancel

    def listen(self, event: ev.Event) -> None:
        """Event listener: buffer for the next flush (emit is synchronous)."""
        self._buffer.append(event)

    def cancel(self) -> None:
        """Mark the run cancelled in this process (no new call starts)."""
        self._cancelled = True

    def _take_buffer(self) -> list[ev.Event]:
        batch, self._buffer = self._buffer, []
        return batch

    def _event_records(self, batch: list[ev.Event]) -> list[EventRecord]:
        return [EventRecord(run_id=self.run_id, seq=e.seq, kind=e.kind, at=_stamp(e.at),
                            data=_event_data(e)) for e in batch]

    async def flush(self) -> None:
        """Write buffered events in order; concurrent flushes never interleave."""
        async with self._lock:
            if not self._buffer:
                return
            batch = self._take_buffer()
            await self.store.append_events(self.run_id, self._event_records(batch))

    async def record_failures(self, steps: list[StepRecord]) -> None:
        """Journal failed and cancelled steps (for show/explain); successes are already in."""
        for rec in steps:
            if rec.status in ("failed", "cancelled") and id(rec) not in self._written:
                self._written.add(id(rec))
                # A begun non-idempotent step keeps its "started" row: the failure goes in
                # the next attempt, so a resume still asks before repeating the effect.
                attempt = self._begun[rec.key].attempt + 1 if rec.key in self._begun else 1
                await self.store.record_step(StoredStep(
                    run_id=self.run_id, key=rec.key, attempt=attempt, agent=rec.agent,
                    input=dump_payload(rec.input), status="failed",
                    usage=rec.usage.to_dict(), cost_usd=rec.usage.usd,
                    started_at=_stamp(rec.started_at or time.time()),
                    finished_at=_stamp((rec.started_at or time.time()) + rec.duration_s),
                    provenance=dict(rec.provenance),
                    error={"type": rec.error_type or rec.status, "message": rec.error or ""},
                ))

    async def close(self) -> None:
        self._poller.unwatch(self)
        await self._poller.drain()
        await self.flush()


def _event_data(event: ev.Event) -> dict[str, Any]:
    data = ev.event_to_dict(event)
    for k in ("kind", "seq", "at"):
        data.pop(k, None)
    return {k: (v if not isinstance(v, Usage) else v.to_dict()) for k, v in data.items()}


def journaled_step(st: StoredStep) -> StepRecord:
    """A journaled step as the runtime's StepRecord (for show, explain and rendering)."""
    started = st.started_at.timestamp()
    finished = st.finished_at.timestamp() if st.finished_at else started
    err = st.error or {}
    return StepRecord(key=st.key, agent=st.agent, status=st.status,
                      attempts=int(st.provenance.get("attempts", st.attempt)),
                      input=st.input, output=st.output, usage=Usage.from_dict(st.usage or {}),
                      started_at=started, duration_s=finished - started,
                      error=err.get("message"), error_type=err.get("type"),
                      provenance=dict(st.provenance or {}))
