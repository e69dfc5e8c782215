"""MemoryStore: the journal in a few dicts, for tests and throwaway runs.

It keeps the very rows the SQL stores write (encoded by :mod:`~orchestrion.store.codec`),
so payloads round-trip exactly as they would through SQLite: a test that passes on
memory does not depend on object identity or on values JSON cannot hold.  Every
method runs without awaiting, so asyncio tasks never interleave inside one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrion.store import approvals, codec
from orchestrion.store.base import check_event_batch, check_limit
from orchestrion.store.common import CommonStore, Verdict
from orchestrion.store.errors import (
    ApprovalExpired,
    DuplicateRecord,
    StoreUnavailable,
    UnknownApproval,
    UnknownRun,
)
from orchestrion.store.migrations import SCHEMA_VERSION
from orchestrion.store.records import ApprovalRecord, EventRecord, RunRecord, RunStatus, StepRecord

Row = tuple[Any, ...]
_T = codec.ISO_TIME


class MemoryStore(CommonStore):
    """An in-process journal with the exact semantics of the durable stores.

    Data lives as long as the instance: closing and reopening it keeps the runs.
    """

    def __init__(self) -> None:
        self._open = False
        self._runs: dict[str, Row] = {}
        self._steps: dict[str, dict[tuple[str, int], Row]] = {}
        self._events: dict[str, list[Row]] = {}
        self._approvals: dict[str, Row] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(runs={len(self._runs)})"

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def schema_version(self) -> int:
        self._check_open()
        return SCHEMA_VERSION

    def _check_open(self) -> None:
        if not self._open:
            raise StoreUnavailable(
                "the memory store is not open", hint="use `async with store:` or await open()"
            )

    def _run_row(self, run_id: str) -> Row:
        self._check_open()
        try:
            return self._runs[run_id]
        except KeyError:
            raise UnknownRun(run_id) from None

    # ------------------------------------------------------------------ runs

    async def create_run(self, run: RunRecord) -> None:
        self._check_open()
        row = codec.run_row(run, _T)
        if run.run_id in self._runs:
            raise DuplicateRecord("run", run.run_id)
        self._runs[run.run_id] = row
        self._steps[run.run_id] = {}
        self._events[run.run_id] = []

    async def _save_run_update(
        self,
        run_id: str,
        status: RunStatus,
        fields: dict[str, Any],
        now: datetime,
        only_if: tuple[str, ...] | None,
    ) -> RunRecord:
        # No await from the check to the write: no other task can interleave.
        current = codec.run_from_row(self._run_row(run_id), _T)
        if only_if is not None and current.status not in only_if:
            return current
        updated = dataclasses.replace(current, status=status, updated_at=now, **fields)
        self._runs[run_id] = codec.run_row(updated, _T)
        return codec.run_from_row(self._runs[run_id], _T)

    async def get_run(self, run_id: str) -> RunRecord:
        return codec.run_from_row(self._run_row(run_id), _T)

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        self._check_open()
        check_limit(limit)
        rows = [r for r in self._runs.values() if status is None or r[3] == status]
        # Newest first; among equal timestamps the later-created run first, as in SQL.
        rows = sorted(reversed(rows), key=lambda r: r[11], reverse=True)
        return [codec.run_from_row(r, _T) for r in rows[:limit]]

    async def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        self._check_open()
        return {i: self._runs[i][3] for i in run_ids if i in self._runs}

    # ----------------------------------------------------------------- steps

    async def record_step(self, step: StepRecord, events: Sequence[EventRecord] = ()) -> None:
        self._run_row(step.run_id)
        log = self._events[step.run_id]
        check_event_batch(step.run_id, events, len(log))
        row = codec.step_row(step, _T)  # encode everything before writing anything
        rows = [codec.event_row(e, _T) for e in events]
        self._steps[step.run_id][step.key, step.attempt] = row
        log.extend(rows)

    async def steps(self, run_id: str) -> list[StepRecord]:
        self._run_row(run_id)
        return [codec.step_from_row(r, _T) for r in self._steps[run_id].values()]

    async def completed_steps(self, run_id: str) -> dict[str, StepRecord]:
        self._run_row(run_id)
        done = [r for r in self._steps[run_id].values() if r[3] == "succeeded"]
        done.sort(key=lambda r: r[2])  # by attempt: the latest attempt wins below
        return {r[1]: codec.step_from_row(r, _T) for r in done}

    # ---------------------------------------------------------------- events

    async def append_events(self, run_id: str, events: Sequence[EventRecord]) -> int:
        self._run_row(run_id)
        log = self._events[run_id]
        check_event_batch(run_id, events, len(log))
        rows = [codec.event_row(e, _T) for e in events]  # encode all before writing any
        log.extend(rows)
        return len(log)

    async def events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        self._run_row(run_id)
        check_limit(limit)
        rows = self._events[run_id][max(after_seq, 0) :]
        if limit is not None:
            rows = rows[:limit]
        return [codec.event_from_row(r, _T) for r in rows]

    async def last_event_seq(self, run_id: str) -> int:
        self._run_row(run_id)
        return len(self._events[run_id])

    # ------------------------------------------------------------- approvals

    async def create_approval(self, approval: ApprovalRecord) -> None:
        self._run_row(approval.run_id)
        approvals.check_new(approval)
        row = codec.approval_row(approval, _T)
        if approval.request_id in self._approvals:
            raise DuplicateRecord("approval request", approval.request_id)
        self._approvals[approval.request_id] = row

    async def get_approval(self, request_id: str) -> ApprovalRecord:
        self._check_open()
        try:
            return codec.approval_from_row(self._approvals[request_id], _T)
        except KeyError:
            raise UnknownApproval(request_id) from None

    async def pending_approvals(self, run_id: str) -> list[ApprovalRecord]:
        self._run_row(run_id)
        rows = [r for r in self._approvals.values() if r[1] == run_id and r[5] == "pending"]
        return [codec.approval_from_row(r, _T) for r in sorted(rows, key=lambda r: r[6])]

    async def _judge_approval(
        self, request_id: str, verdict: Verdict
    ) -> tuple[ApprovalRecord, ApprovalExpired | None]:
        decided, error = verdict(await self.get_approval(request_id))
        self._approvals[request_id] = codec.approval_row(decided, _T)
        return codec.approval_from_row(self._approvals[request_id], _T), error
