"""StoreJournal: the runtime's journal of one run, on any :class:`~orchestrion.store.Store`.

* Completed steps are written before their output is handed on, so a run that
  dies after a step never pays for that step again: ``replay`` returns it.
* A non-idempotent step is marked ``started`` before its side effect, so a
  resumed run knows it may have happened and asks a human instead of repeating it.
* Events are buffered as they are emitted and flushed in order, so a run's
  event log in the store has no gaps.
* Cancellation is cooperative: a flag, set in-process or read from the store,
  that the choke point checks before every call.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from orchestrion.contracts.contract import dump_payload
from orchestrion.cost.usage import Usage
from orchestrion.runtime import events as ev
from orchestrion.runtime.records import StepRecord
from orchestrion.store import EventRecord, Store
from orchestrion.store import StepRecord as StoredStep


def input_digest(fingerprint: str) -> str:
    """A short digest of a step's canonical input, stored to check replays against."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:32]


def _stamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class StoreJournal:
    """The journal of run ``run_id``. Build it with :meth:`open`."""

    CANCEL_POLL_S = 0.25

    def __init__(self, store: Store, run_id: str, *, completed: dict[str, StoredStep],
                 begun: dict[str, StoredStep]) -> None:
        self.store = store
        self.run_id = run_id
        self._completed = completed
        self._begun = begun
        self._buffer: list[ev.Event] = []
        self._written: set[int] = set()
        self._lock = asyncio.Lock()
        self._cancelled = False
        self._polled = time.monotonic()
        self._poll: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, store: Store, run_id: str) -> StoreJournal:
        """Load what the store knows of the run: completed steps and ones begun but unfinished."""
        completed = await store.completed_steps(run_id)
        begun: dict[str, StoredStep] = {}
        for step in await store.steps(run_id):
            unfinished = step.key not in completed and step.status == "started"
            if unfinished and (step.key not in begun or step.attempt > begun[step.key].attempt):
                begun[step.key] = step
        return cls(store, run_id, completed=completed, begun=begun)

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
        await self.store.record_step(step)
        self._completed[key] = step
        await self.flush()

    def cancelled(self) -> bool:
        if not self._cancelled and time.monotonic() - self._polled > self.CANCEL_POLL_S:
            self._polled = time.monotonic()
            if self._poll is None or self._poll.done():
                self._poll = asyncio.get_running_loop().create_task(self._read_cancel())
        return self._cancelled

    # ------------------------------------------------------------------ events and cancel

    def listen(self, event: ev.Event) -> None:
        """Event listener: buffer for the next flush (emit is synchronous)."""
        self._buffer.append(event)

    def cancel(self) -> None:
        """Mark the run cancelled in this process (no new call starts)."""
        self._cancelled = True

    async def _read_cancel(self) -> None:
        run = await self.store.get_run(self.run_id)
        if run.status == "cancelled":
            self._cancelled = True

    async def flush(self) -> None:
        """Write buffered events in order; concurrent flushes never interleave."""
        async with self._lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            records = [EventRecord(run_id=self.run_id, seq=e.seq, kind=e.kind, at=_stamp(e.at),
                                   data=_event_data(e)) for e in batch]
            await self.store.append_events(self.run_id, records)

    async def record_failures(self, steps: list[StepRecord]) -> None:
        """Journal failed and cancelled steps (for show/explain); successes are already in."""
        for rec in steps:
            if rec.status in ("failed", "cancelled") and id(rec) not in self._written:
                self._written.add(id(rec))
                attempt = self._begun[rec.key].attempt if rec.key in self._begun else 1
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
        if self._poll is not None and not self._poll.done():
            self._poll.cancel()
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
