"""PostgresStore: the journal on a Postgres server, for many workers and long-lived runs.

Needs the ``postgres`` extra (psycopg 3).  Tables live in their own schema
(``orchestrion`` unless told otherwise), so a journal can share a database with an
application.  Every write but one is a single statement in autocommit: when a
call returns, the server has committed it (durable under the server's default
``synchronous_commit=on``), in one round trip.  Deciding an approval reads, judges
and writes the request in one transaction, holding its row lock.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from orchestrion.store.errors import StoreUnavailable

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.types.string import TextLoader
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise StoreUnavailable(
        "the Postgres store needs psycopg 3, which is not installed",
        hint="pip install 'orchestrion[postgres]'",
    ) from exc

from orchestrion.errors import StoreError
from orchestrion.store import approvals, codec
from orchestrion.store.base import check_event_batch, check_limit
from orchestrion.store.common import CommonStore, Verdict
from orchestrion.store.errors import (
    ApprovalExpired,
    DuplicateRecord,
    EventSequenceError,
    UnknownApproval,
    UnknownRun,
)
from orchestrion.store.migrations import migrate_postgres
from orchestrion.store.pg_pool import ConnectionPool
from orchestrion.store.records import ApprovalRecord, EventRecord, RunRecord, RunStatus, StepRecord
from orchestrion.store.sql import Statements, decision_args

_T = codec.NATIVE_TIME
_SQL = Statements("%s", row_order="row_id")
_UPSERT_STEP = _SQL.upsert_step  # also sent by bench/bench_journal.py
Row = tuple[Any, ...]
Conn = psycopg.AsyncConnection[Any]
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# One statement, one round trip: the batch lands only if it continues the log exactly.
# Two appenders that both see the same last seq collide on the primary key instead.
_APPEND_EVENTS = f"""INSERT INTO events ({", ".join(codec.EVENT_COLUMNS)})
    SELECT %(run_id)s, e.seq, e.kind, e.at, e.data FROM unnest(
        %(seqs)s::bigint[], %(kinds)s::text[], %(ats)s::timestamptz[], %(datas)s::json[]
    ) AS e (seq, kind, at, data)
    WHERE (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = %(run_id)s) = %(after)s"""

_STEP_TYPES = (  # codec.STEP_COLUMNS' column types: INSERT ... SELECT does not infer them
    "text", "text", "integer", "text", "text", "json", "json", "json", "double precision",
    "timestamptz", "timestamptz", "json", "json", "text",
)  # fmt: skip

# A step and the events emitted up to it, in one statement (one round trip, one commit):
# the step is written only if every event was, and the events only if they continue
# the log exactly (else no row at all: rowcount 0).  A concurrent appender that took
# one of the seqs fails the whole statement on the primary key.
_STEP_AND_EVENTS = f"""WITH appended AS ({_APPEND_EVENTS}
    RETURNING 1)
    INSERT INTO steps ({", ".join(codec.STEP_COLUMNS)})
    SELECT {", ".join(f"%(s{i})s::{t}" for i, t in enumerate(_STEP_TYPES))}
    WHERE (SELECT COUNT(*) FROM appended) = %(count)s
    ON CONFLICT (run_id, step_key, attempt) DO UPDATE SET """ + ", ".join(
    f"{c} = excluded.{c}" for c in codec.STEP_COLUMNS[3:]
)
_RUN_STATUSES = "SELECT run_id, status FROM runs WHERE run_id = ANY(%s)"


class PostgresStore(CommonStore):
    """The journal in schema ``schema`` of the database at ``dsn`` (a libpq URL or DSN)."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "orchestrion",
        max_connections: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StoreUnavailable(
                f"Postgres schema name {schema!r} is not a plain identifier",
                hint="use lower-case letters, digits and underscores, not starting with a digit",
            )
        self.dsn = dsn
        self.schema = schema
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._pool: ConnectionPool | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        # Never echo the DSN: it may hold a password.
        return f"PostgresStore(schema={self.schema!r})"

    async def open(self) -> None:
        async with self._lock:
            if self._pool is not None:
                return
            pool = ConnectionPool(self._connect, self._max_connections)
            try:
                async with _translated(), pool.connection() as conn:
                    await migrate_postgres(conn, schema=self.schema, where=f"schema {self.schema}")
            except BaseException:
                await pool.close()
                raise
            self._pool = pool

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.close()

    async def _connect(self) -> Conn:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to the Postgres journal: {exc}".strip(),
                hint="check the DSN and that the server is running and reachable",
            ) from exc
        conn.adapters.register_loader("json", TextLoader)  # the codec decodes JSON itself
        try:
            await conn.execute(f'SET search_path TO "{self.schema}"')  # type: ignore[arg-type]
            await conn.execute("SET TIME ZONE 'UTC'")
        except BaseException:
            await conn.close()
            raise
        return conn

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        """Borrow a connection, with driver errors turned into store errors."""
        if self._pool is None:
            raise StoreUnavailable(
                f"Postgres journal (schema {self.schema}) is not open",
                hint="use `async with store:` or await store.open() first",
            )
        async with _translated(), self._pool.connection() as conn:
            yield conn

    async def _one(self, sql: str, args: Sequence[Any]) -> Row | None:
        async with self._conn() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return await cur.fetchone()

    async def _exec(self, sql: str, args: Sequence[Any]) -> None:
        async with self._conn() as conn:
            await conn.execute(sql, args)  # type: ignore[arg-type]

    async def _all(self, sql: str, args: Sequence[Any]) -> list[Row]:
        async with self._conn() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return await cur.fetchall()

    async def _require_run(self, run_id: str) -> None:
        if await self._one(_SQL.run_exists, (run_id,)) is None:
            raise UnknownRun(run_id)

    async def schema_version(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(version), 0) FROM orchestrion_schema", ())
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ runs

    async def create_run(self, run: RunRecord) -> None:
        row = codec.run_row(run, _T)
        try:
            await self._exec(_SQL.insert_run, row)
        except pg_errors.UniqueViolation:
            raise DuplicateRecord("run", run.run_id) from None

    async def _save_run_update(
        self,
        run_id: str,
        status: RunStatus,
        fields: dict[str, Any],
        now: datetime,
        only_if: tuple[str, ...] | None,
    ) -> RunRecord:
        changes = codec.run_changes(run_id, status, fields, now, _T)
        expected = None if only_if is None else len(only_if)
        sql = f"{_SQL.update_run(changes, expected)} RETURNING {_SQL.run_columns}"
        row = await self._one(sql, (*changes.values(), run_id, *(only_if or ())))
        if row is None and only_if is not None:
            # The compare-and-set did not apply (the row lock made it wait for, then
            # re-check against, any concurrent writer): return the run as it is now.
            row = await self._one(_SQL.select_run, (run_id,))
        if row is None:
            raise UnknownRun(run_id)
        return codec.run_from_row(row, _T)

    async def get_run(self, run_id: str) -> RunRecord:
        row = await self._one(_SQL.select_run, (run_id,))
        if row is None:
            raise UnknownRun(run_id)
        return codec.run_from_row(row, _T)

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        check_limit(limit)
        args = (status, limit) if status else (limit,)
        rows = await self._all(_SQL.list_runs(by_status=bool(status)), args)
        return [codec.run_from_row(r, _T) for r in rows]

    async def run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        return {r[0]: r[1] for r in await self._all(_RUN_STATUSES, (ids,))}

    # ----------------------------------------------------------------- steps

    async def record_step(self, step: StepRecord, events: Sequence[EventRecord] = ()) -> None:
        row = codec.step_row(step, _T)
        if not events:
            try:
                await self._exec(_SQL.upsert_step, row)
            except pg_errors.ForeignKeyViolation:
                raise UnknownRun(step.run_id) from None
            return
        run_id = step.run_id
        args: dict[str, Any] = {f"s{i}": value for i, value in enumerate(row)}
        try:
            args.update(self._event_args(run_id, events), count=len(events))
        except EventSequenceError:
            await self._require_run(run_id)  # an unknown run is the better explanation
            raise
        try:
            async with self._conn() as conn:
                cur = await conn.execute(_STEP_AND_EVENTS, args)
                written = cur.rowcount
        except pg_errors.ForeignKeyViolation:
            raise UnknownRun(run_id) from None
        except pg_errors.UniqueViolation:
            written = 0  # a concurrent writer committed these seqs first
        if written != 1:
            last = await self.last_event_seq(run_id)  # UnknownRun if that is the reason
            raise EventSequenceError(run_id, expected=last + 1, got=events[0].seq)

    def _event_args(self, run_id: str, events: Sequence[EventRecord]) -> dict[str, Any]:
        """Check that ``events`` are consecutive and of ``run_id``; the append's parameters."""
        after = events[0].seq - 1
        check_event_batch(run_id, events, after)
        rows = [codec.event_row(e, _T) for e in events]
        return {
            "run_id": run_id,
            "after": after,
            "seqs": [r[1] for r in rows],
            "kinds": [r[2] for r in rows],
            "ats": [r[3] for r in rows],
            "datas": [r[4] for r in rows],
        }

    async def steps(self, run_id: str) -> list[StepRecord]:
        rows = await self._all(_SQL.select_steps, (run_id,))
        if not rows:
            await self._require_run(run_id)
        return [codec.step_from_row(r, _T) for r in rows]

    async def completed_steps(self, run_id: str) -> dict[str, StepRecord]:
        rows = await self._all(_SQL.select_succeeded_steps, (run_id,))
        if not rows:
            await self._require_run(run_id)
        return {r[1]: codec.step_from_row(r, _T) for r in rows}

    # ---------------------------------------------------------------- events

    async def append_events(self, run_id: str, events: Sequence[EventRecord]) -> int:
        if not events:
            return await self.last_event_seq(run_id)
        try:
            args = self._event_args(run_id, events)  # consecutive and of this run
        except EventSequenceError:
            await self._require_run(run_id)  # an unknown run is the better explanation
            raise
        after, count = args["after"], len(events)
        try:
            async with self._conn() as conn:
                cur = await conn.execute(_APPEND_EVENTS, args)
                appended = cur.rowcount
        except pg_errors.ForeignKeyViolation:
            raise UnknownRun(run_id) from None
        except pg_errors.UniqueViolation:
            appended = 0  # a concurrent writer committed these seqs first
        if appended != count:
            last = await self.last_event_seq(run_id)  # UnknownRun if that is the reason
            raise EventSequenceError(run_id, expected=last + 1, got=events[0].seq)
        return int(after) + count

    async def events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        check_limit(limit)
        sql = _SQL.select_events
        args: tuple[Any, ...] = (run_id, after_seq)
        if limit is not None:
            sql, args = sql + " LIMIT %s", (*args, limit)
        rows = await self._all(sql, args)
        if not rows:
            await self._require_run(run_id)
        return [codec.event_from_row(r, _T) for r in rows]

    async def last_event_seq(self, run_id: str) -> int:
        async with self._conn() as conn:
            last = await _last_seq(conn, run_id)
        if last == 0:
            await self._require_run(run_id)
        return last

    # ------------------------------------------------------------- approvals

    async def create_approval(self, approval: ApprovalRecord) -> None:
        approvals.check_new(approval)
        row = codec.approval_row(approval, _T)
        try:
            await self._exec(_SQL.insert_approval, row)
        except pg_errors.ForeignKeyViolation:
            raise UnknownRun(approval.run_id) from None
        except pg_errors.UniqueViolation:
            raise DuplicateRecord("approval request", approval.request_id) from None

    async def get_approval(self, request_id: str) -> ApprovalRecord:
        row = await self._one(_SQL.select_approval, (request_id,))
        if row is None:
            raise UnknownApproval(request_id)
        return codec.approval_from_row(row, _T)

    async def pending_approvals(self, run_id: str) -> list[ApprovalRecord]:
        rows = await self._all(_SQL.select_pending, (run_id,))
        if not rows:
            await self._require_run(run_id)
        return [codec.approval_from_row(r, _T) for r in rows]

    async def _judge_approval(
        self, request_id: str, verdict: Verdict
    ) -> tuple[ApprovalRecord, ApprovalExpired | None]:
        async with self._conn() as conn, conn.transaction():
            # FOR UPDATE: a concurrent decider waits here, then sees the request decided.
            cur = await conn.execute(_SQL.select_approval + " FOR UPDATE", (request_id,))
            found = await cur.fetchone()
            if found is None:
                raise UnknownApproval(request_id)
            decided, error = verdict(codec.approval_from_row(found, _T))
            row = codec.approval_row(decided, _T)
            await conn.execute(_SQL.decide_approval, decision_args(row, request_id))
        return codec.approval_from_row(row, _T), error  # committed: the expiry is journaled


async def _last_seq(conn: Conn, run_id: str) -> int:
    cur = await conn.execute(_SQL.last_seq, (run_id,))
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Turn driver failures that the store does not map itself into StoreErrors."""
    try:
        yield
    except (pg_errors.UniqueViolation, pg_errors.ForeignKeyViolation):
        raise  # mapped to typed errors by the caller, which knows the record
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(
            f"the Postgres journal is unreachable: {exc}",
            hint="check that the server is up; the failed call was not journaled",
        ) from exc
    except psycopg.Error as exc:
        raise StoreError(
            f"the Postgres journal refused a statement: {exc}",
            hint="this is likely a bug or a manual schema change; the call was not journaled",
        ) from exc
