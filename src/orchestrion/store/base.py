"""The Store protocol: the journal every durable run is written to.

The runtime calls a store from its choke point and nowhere else.  Three stores
implement this one protocol and pass one conformance suite
(``tests/store/conformance.py``): :class:`~orchestrion.store.memory.MemoryStore`
for tests, :class:`~orchestrion.store.sqlite.SQLiteStore` (the embedded default) and
:class:`~orchestrion.store.postgres.PostgresStore`.

The contract, for every store:

* a write has happened when its call returns: ``create_run`` and
  ``decide_approval`` are durable, so a run is never acknowledged before it is
  journaled and a human decision is never lost;
* a refused write changes nothing and raises a typed
  :class:`~orchestrion.errors.StoreError` (see :mod:`orchestrion.store.errors`);
* a run's event log numbers its events 1, 2, 3, ... with no gap and no duplicate;
* reads of an unknown run raise :class:`~orchestrion.store.errors.UnknownRun`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from orchestrion.store.errors import EventSequenceError, InvalidRecord
from orchestrion.store.records import (
    JSON,
    RUN_STATUSES,
    ApprovalRecord,
    EventRecord,
    RunRecord,
    RunStatus,
    StepRecord,
)


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET
"""Marks an ``update_run`` field that is left as it is."""


@runtime_checkable
class Store(Protocol):
    """An async journal of runs, steps, events and approval requests.

    Use it as ``async with store: ...`` or call :meth:`open` and :meth:`close`;
    opening applies pending schema migrations and is idempotent.
    """

    async def open(self) -> None:
        """Connect and migrate; raises SchemaTooNew for a journal of a newer release."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release connections; idempotent."""
        ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """The schema version of the journal this store is open on."""
        ...

    # ------------------------------------------------------------------ runs

    async def create_run(self, run: RunRecord) -> None:
        """Journal a new run durably before returning; DuplicateRecord if the id is taken."""
        ...

    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        output: JSON | _Unset = UNSET,
        error: dict[str, JSON] | _Unset | None = UNSET,
        usage: dict[str, JSON] | _Unset = UNSET,
        now: datetime | None = None,
        only_if: Collection[RunStatus] | None = None,
    ) -> RunRecord:
        """Set a run's status (and the given fields) and return the run as stored.

        With ``only_if``, a compare-and-set: the update applies only if the run's
        current status is one of ``only_if``, atomically with the check; otherwise
        nothing is written.  Either way the run as stored after the call is
        returned, so the caller sees by its status whether the update applied.
        UnknownRun if there is no such run.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; UnknownRun if there is none."""
        ...

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest first, optionally only those with ``status``."""
        ...

    async def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        """The status of each of ``run_ids`` that exists, in one read; unknown ids are left out.

        For a Runner watching its live runs for a cancel made elsewhere.
        """
        ...

    # ----------------------------------------------------------------- steps

    async def record_step(self, step: StepRecord, events: Sequence[EventRecord] = ()) -> None:
        """Insert or replace the step attempt ``(run_id, key, attempt)``.

        With ``events``, also append them to the step's run in the same commit: they
        must continue the run's log exactly, as for :meth:`append_events`.  All or
        nothing: a refused batch (EventSequenceError, InvalidRecord) writes neither
        the events nor the step.
        """
        ...

    async def steps(self, run_id: str) -> list[StepRecord]:
        """Every step attempt of a run, in the order they were first recorded."""
        ...

    async def completed_steps(self, run_id: str) -> dict[str, StepRecord]:
        """For replay: the latest succeeded attempt of each step key of a run."""
        ...

    # ---------------------------------------------------------------- events

    async def append_events(self, run_id: str, events: Sequence[EventRecord]) -> int:
        """Append events that continue the run's log exactly; returns the last seq.

        All or nothing: a batch that would leave a gap or a duplicate raises
        EventSequenceError and writes no event.
        """
        ...

    async def events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """A run's events with ``seq > after_seq``, in order."""
        ...

    async def last_event_seq(self, run_id: str) -> int:
        """The seq of a run's last event, 0 if it has none."""
        ...

    # ------------------------------------------------------------- approvals

    async def create_approval(self, approval: ApprovalRecord) -> None:
        """Journal a pending approval request whose ``action_hash`` binds its action."""
        ...

    async def get_approval(self, request_id: str) -> ApprovalRecord:
        """The approval request with this id; UnknownApproval if there is none."""
        ...

    async def pending_approvals(self, run_id: str) -> list[ApprovalRecord]:
        """A run's requests still waiting for a decision, oldest first."""
        ...

    async def decide_approval(
        self,
        request_id: str,
        *,
        decision: str,
        by: str,
        action_hash: str,
        edited_action: JSON = None,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> ApprovalRecord:
        """Record a human's verdict, once, durably; returns the decided request.

        ``decision`` is ``approved``, ``rejected`` or ``edited`` (with
        ``edited_action``); ``action_hash`` is the hash of the action the human saw.
        Raises ApprovalNotPending if already decided, ApprovalHashMismatch if the
        hash is stale, and ApprovalExpired (after journaling the expiry) when
        ``now`` is past the request's deadline.
        """
        ...


# ------------------------------------------------------------ helpers for stores


def check_event_batch(run_id: str, events: Sequence[EventRecord], last_seq: int) -> None:
    """Raise unless ``events`` belong to ``run_id`` and number on from ``last_seq`` exactly."""
    for offset, event in enumerate(events, start=1):
        if event.run_id != run_id:
            raise InvalidRecord(
                f"event {event.seq} belongs to run {event.run_id!r}, not {run_id!r}",
                hint="append each run's events with that run's id",
            )
        if event.seq != last_seq + offset:
            raise EventSequenceError(run_id, expected=last_seq + offset, got=event.seq)


def check_limit(limit: int | None) -> None:
    """Refuse a limit below one, which would silently return nothing."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def check_only_if(only_if: Collection[str] | None) -> tuple[str, ...] | None:
    """Check the statuses of an ``update_run`` compare-and-set; a sorted tuple, or None."""
    if only_if is None:
        return None
    if isinstance(only_if, str):
        raise InvalidRecord(
            f"only_if must be a collection of run statuses, not the string {only_if!r}",
            hint='pass a tuple, e.g. only_if=("running",)',
        )
    statuses = tuple(sorted(set(only_if)))
    unknown = [s for s in statuses if s not in RUN_STATUSES]
    if unknown:
        raise InvalidRecord(
            f"only_if statuses {unknown} are not among {sorted(RUN_STATUSES)}",
            hint="pass run statuses",
        )
    return statuses


def run_update(status: str, output: Any, error: Any, usage: Any) -> dict[str, Any]:
    """Check an ``update_run`` status and return the fields given, by record field name."""
    if status not in RUN_STATUSES:
        raise InvalidRecord(
            f"run status {status!r} is not one of {sorted(RUN_STATUSES)}",
            hint="pass one of the run statuses",
        )
    given = {"output": output, "error": error, "usage": usage}
    return {name: value for name, value in given.items() if value is not UNSET}
