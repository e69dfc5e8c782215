"""SQLiteStore: the embedded default journal, one file, zero set-up.

The file lives in the user's data directory unless a path (or ``":memory:"``) is
given.  It runs in WAL mode with ``synchronous=NORMAL``: a committed write survives
a crash of the process; ``create_run`` and ``decide_approval`` commit with a full
sync, so they survive a power cut too (pass ``synchronous="FULL"`` to get that for
every write).  All statements run on one worker thread
(:class:`~orchestrion.store.sqlite_worker.SQLiteWorker`) that group-commits
concurrent writes; records are encoded and decoded on the caller's side so the
thread only does I/O.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

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
from orchestrion.store.migrations import migrate_sqlite, sqlite_schema_version
from orchestrion.store.records import ApprovalRecord, EventRecord, RunRecord, RunStatus, StepRecord
from orchestrion.store.sql import Statements, decision_args
from orchestrion.store.sqlite_worker import SQLiteWorker

_T = codec.ISO_TIME
_SQL = Statements("?", row_order="rowid")
Row = tuple[Any, ...]


def default_path() -> Path:
    """``journal.db`` in the user's data directory (created on first open)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("orchestrion")) / "journal.db"


class SQLiteStore(CommonStore):
    """The journal in one SQLite file; see the module docstring for durability."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 10.0,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = str(default_path() if path is None else path)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._worker: SQLiteWorker | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @property
    def worker(self) -> SQLiteWorker:
        """The worker thread; StoreUnavailable if the store is not open."""
        if self._worker is None:
            raise StoreUnavailable(
                f"SQLite journal {self.path} is not open",
                hint="use `async with store:` or await store.open() first",
            )
        return self._worker

    async def open(self) -> None:
        async with self._lock:
            if self._worker is not None:
                return
            worker = SQLiteWorker(self._connect, name=self.path, synchronous=self._synchronous)
            await worker.start()
            try:
                await worker.run(partial(migrate_sqlite, where=self.path))
            except BaseException:
                await worker.stop()
                raise
            self._worker = worker

    async def close(self) -> None:
        async with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                await worker.stop()

    def _connect(self) -> sqlite3.Connection:
        """Runs on the worker thread: open the file and set the journal's pragmas."""
        memory = self.path == ":memory:"
        try:
            if not memory:
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path if memory else Path(self.path).expanduser(),
                isolation_level=None,  # autocommit: the worker issues BEGIN/COMMIT itself
                timeout=self._busy_timeout,
                cached_statements=256,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"cannot open the SQLite journal {self.path}: {exc}",
                hint="check that the directory exists and is writable, or pass another path",
            ) from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreUnavailable(
                f"{self.path} is not a usable SQLite journal: {exc}",
                hint="point the store at a new path; the file was left as it is",
            ) from exc
        return conn

    async def schema_version(self) -> int:
        return await self.worker.run(sqlite_schema_version)

    async def _read(self, fn: Any, *args: Any) -> Any:
        return await self.worker.run(partial(fn, *args))

    async def _write(self, fn: Any, *args: Any, durable: bool = False) -> Any:
        return await self.worker.run(partial(fn, *args), write=True, durable=durable)

    # ------------------------------------------------------------------ runs

    async def create_run(self, run: RunRecord) -> None:
        await self._write(_insert_run, codec.run_row(run, _T), durable=True)

    async def _save_run_update(
        self,
        run_id: str,
        status: RunStatus,
        fields: dict[str, Any],
        now: datetime,
        only_if: tuple[str, ...] | None,
    ) -> RunRecord:
        changes = codec.run_changes(run_id, status, fields, now, _T)
        return codec.run_from_row(await self._write(_update_run, run_id, changes, only_if), _T)

    async def get_run(self, run_id: str) -> RunRecord:
        return codec.run_from_row(await self._read(_select_run, run_id), _T)

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        check_limit(limit)
        rows = await self._read(_list_runs, status, limit)
        return [codec.run_from_row(r, _T) for r in rows]

    async def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        return dict(await self._read(_run_statuses, ids))

    # ----------------------------------------------------------------- steps

    async def record_step(self, step: StepRecord, events: Sequence[EventRecord] = ()) -> None:
        row = codec.step_row(step, _T)
        if not events:
            await self._write(_upsert_step, row)
            return
        rows = [codec.event_row(e, _T) for e in events]
        # One job: one transaction (or one savepoint of a group commit), all or nothing.
        await self._write(_upsert_step_and_append, row, list(events), rows)

    async def steps(self, run_id: str) -> list[StepRecord]:
        rows = await self._read(_select_steps, run_id, False)
        return [codec.step_from_row(r, _T) for r in rows]

    async def completed_steps(self, run_id: str) -> dict[str, StepRecord]:
        rows = await self._read(_select_steps, run_id, True)
        return {r[1]: codec.step_from_row(r, _T) for r in rows}

    # ---------------------------------------------------------------- events

    async def append_events(self, run_id: str, events: Sequence[EventRecord]) -> int:
        rows = [codec.event_row(e, _T) for e in events]
        return int(await self._write(_append_events, run_id, list(events), rows))

    async def events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        check_limit(limit)
        rows = await self._read(_select_events, run_id, after_seq, limit)
        return [codec.event_from_row(r, _T) for r in rows]

    async def last_event_seq(self, run_id: str) -> int:
        return int(await self._read(_last_seq_of_known_run, run_id))

    # ------------------------------------------------------------- approvals

    async def create_approval(self, approval: ApprovalRecord) -> None:
        approvals.check_new(approval)
        await self._write(_insert_approval, codec.approval_row(approval, _T))

    async def get_approval(self, request_id: str) -> ApprovalRecord:
        return codec.approval_from_row(await self._read(_select_approval, request_id), _T)

    async def pending_approvals(self, run_id: str) -> list[ApprovalRecord]:
        rows = await self._read(_select_pending, run_id)
        return [codec.approval_from_row(r, _T) for r in rows]

    async def _judge_approval(
        self, request_id: str, verdict: Verdict
    ) -> tuple[ApprovalRecord, ApprovalExpired | None]:
        return await self._write(_decide, request_id, verdict, durable=True)


# ------------------------------------------------------------ on the worker thread
# Each function below runs on the worker thread with the store's connection last.


def _constraint(exc: sqlite3.IntegrityError) -> str:
    return getattr(exc, "sqlite_errorname", "") or str(exc)


@contextmanager
def _of_known_run(run_id: str) -> Iterator[None]:
    """Turn a foreign key failure of the statements inside into UnknownRun."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "FOREIGNKEY" in _constraint(exc) or "FOREIGN KEY" in str(exc):
            raise UnknownRun(run_id) from None
        raise


def _require_run(conn: sqlite3.Connection, run_id: str) -> None:
    if conn.execute(_SQL.run_exists, (run_id,)).fetchone() is None:
        raise UnknownRun(run_id)


def _insert_run(row: Row, conn: sqlite3.Connection) -> None:
    try:
        conn.execute(_SQL.insert_run, row)
    except sqlite3.IntegrityError as exc:
        if "PRIMARYKEY" in _constraint(exc) or "UNIQUE" in _constraint(exc):
            raise DuplicateRecord("run", row[0]) from None
        raise


def _update_run(
    run_id: str, sets: dict[str, Any], only_if: tuple[str, ...] | None, conn: sqlite3.Connection
) -> Row:
    # One statement checks and writes; the read after it is in the same transaction.
    sql = _SQL.update_run(sets, None if only_if is None else len(only_if))
    cur = conn.execute(sql, (*sets.values(), run_id, *(only_if or ())))
    if cur.rowcount == 0 and only_if is None:
        raise UnknownRun(run_id)
    return _select_run(run_id, conn)  # UnknownRun if a compare-and-set found no run


def _select_run(run_id: str, conn: sqlite3.Connection) -> Row:
    row = conn.execute(_SQL.select_run, (run_id,)).fetchone()
    if row is None:
        raise UnknownRun(run_id)
    return tuple(row)


def _list_runs(status: str | None, limit: int, conn: sqlite3.Connection) -> list[Row]:
    args = (status, limit) if status else (limit,)
    return conn.execute(_SQL.list_runs(by_status=bool(status)), args).fetchall()


def _upsert_step(row: Row, conn: sqlite3.Connection) -> None:
    with _of_known_run(row[0]):
        conn.execute(_SQL.upsert_step, row)


def _upsert_step_and_append(
    row: Row, events: list[EventRecord], rows: list[Row], conn: sqlite3.Connection
) -> None:
    # Check the batch before writing the step, so a refused batch writes nothing; the
    # worker rolls back the job (its transaction or savepoint) on any error anyway.
    _append_events(row[0], events, rows, conn)
    _upsert_step(row, conn)


_STATUS_CHUNK = 500  # well under SQLite's limit on bound parameters


def _run_statuses(ids: list[str], conn: sqlite3.Connection) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for start in range(0, len(ids), _STATUS_CHUNK):
        chunk = ids[start : start + _STATUS_CHUNK]
        found += conn.execute(_SQL.run_statuses(len(chunk)), chunk).fetchall()
    return found


def _select_steps(run_id: str, succeeded_only: bool, conn: sqlite3.Connection) -> list[Row]:
    sql = _SQL.select_succeeded_steps if succeeded_only else _SQL.select_steps
    rows = conn.execute(sql, (run_id,)).fetchall()
    if not rows:
        _require_run(conn, run_id)
    return rows


def _last_seq(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute(_SQL.last_seq, (run_id,)).fetchone()
    return int(row[0] or 0)


def _last_seq_of_known_run(run_id: str, conn: sqlite3.Connection) -> int:
    last = _last_seq(conn, run_id)
    if last == 0:
        _require_run(conn, run_id)
    return last


def _append_events(
    run_id: str, events: list[EventRecord], rows: list[Row], conn: sqlite3.Connection
) -> int:
    last = _last_seq(conn, run_id)
    try:
        check_event_batch(run_id, events, last)
    except Exception:
        _require_run(conn, run_id)  # an unknown run is the better explanation
        raise
    with _of_known_run(run_id):
        conn.executemany(_SQL.insert_event, rows)
    return last + len(rows)


def _select_events(
    run_id: str, after_seq: int, limit: int | None, conn: sqlite3.Connection
) -> list[Row]:
    sql = _SQL.select_events + " LIMIT ?"
    rows = conn.execute(sql, (run_id, after_seq, -1 if limit is None else limit)).fetchall()
    if not rows:
        _require_run(conn, run_id)
    return rows


def _insert_approval(row: Row, conn: sqlite3.Connection) -> None:
    try:
        with _of_known_run(row[1]):
            conn.execute(_SQL.insert_approval, row)
    except sqlite3.IntegrityError:
        raise DuplicateRecord("approval request", row[0]) from None


def _select_approval(request_id: str, conn: sqlite3.Connection) -> Row:
    row = conn.execute(_SQL.select_approval, (request_id,)).fetchone()
    if row is None:
        raise UnknownApproval(request_id)
    return tuple(row)


def _select_pending(run_id: str, conn: sqlite3.Connection) -> list[Row]:
    rows = conn.execute(_SQL.select_pending, (run_id,)).fetchall()
    if not rows:
        _require_run(conn, run_id)
    return rows


def _decide(
    request_id: str, verdict: Verdict, conn: sqlite3.Connection
) -> tuple[ApprovalRecord, ApprovalExpired | None]:
    # Read, judge and write inside one write transaction: single use holds even
    # against another process deciding the same request at the same moment.
    current = codec.approval_from_row(_select_approval(request_id, conn), _T)
    decided, error = verdict(current)
    row = codec.approval_row(decided, _T)
    cur = conn.execute(_SQL.decide_approval, decision_args(row, request_id))
    if cur.rowcount != 1:  # cannot happen under the write lock; refuse rather than guess
        raise StoreUnavailable(f"approval request {request_id!r} changed while being decided")
    return codec.approval_from_row(row, _T), error
