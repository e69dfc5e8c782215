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
from orchestrion.store.base import (
    UNSET,
    Store,
    _Unset,
    check_event_batch,
    check_limit,
    run_update,
)
from orchestrion.store.errors import (
    DuplicateRecord,
    EventSequenceError,
    UnknownApproval,
    UnknownRun,
)
from orchestrion.store.migrations import migrate_postgres
from orchestrion.store.pg_pool import ConnectionPool
from orchestrion.store.records import (
    JSON,
    ApprovalRecord,
    EventRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    utcnow,
)

_T = codec.NATIVE_TIME
Row = tuple[Any, ...]
Conn = psycopg.AsyncConnection[Any]
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_RUN_COLS = ", ".join(codec.RUN_COLUMNS)
_STEP_COLS = ", ".join(codec.STEP_COLUMNS)
_EVENT_COLS = ", ".join(codec.EVENT_COLUMNS)
_APPROVAL_COLS = ", ".join(codec.APPROVAL_COLUMNS)


def _marks(columns: Sequence[str]) -> str:
    return ", ".join("%s" for _ in columns)


_INSERT_RUN = f"INSERT INTO runs ({_RUN_COLS}) VALUES ({_marks(codec.RUN_COLUMNS)})"
_SELECT_RUN = f"SELECT {_RUN_COLS} FROM runs WHERE run_id = %s"
_UPSERT_STEP = (
    f"INSERT INTO steps ({_STEP_COLS}) VALUES ({_marks(codec.STEP_COLUMNS)}) "
    "ON CONFLICT (run_id, step_key, attempt) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in codec.STEP_COLUMNS[3:])
)
# One statement, one round trip: the batch lands only if it continues the log exactly.
# Two appenders that both see the same last seq collide on the primary key instead.
_APPEND_EVENTS = f"""INSERT INTO events ({_EVENT_COLS})
    SELECT %(run_id)s, e.seq, e.kind, e.at, e.data FROM unnest(
        %(seqs)s::bigint[], %(kinds)s::text[], %(ats)s::timestamptz[], %(datas)s::json[]
    ) AS e (seq, kind, at, data)
    WHERE (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = %(run_id)s) = %(after)s"""
_INSERT_APPROVAL = (
    f"INSERT INTO approvals ({_APPROVAL_COLS}) VALUES ({_marks(codec.APPROVAL_COLUMNS)})"
)
_SELECT_APPROVAL = f"SELECT {_APPROVAL_COLS} FROM approvals WHERE request_id = %s"
_DECIDE_APPROVAL = (
    "UPDATE approvals SET status = %s, decided_at = %s, decided_by = %s, edited_action = %s, "
    "reason = %s WHERE request_id = %s AND status = 'pending'"
)


class PostgresStore(Store):
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
        if await self._one("SELECT 1 FROM runs WHERE run_id = %s", (run_id,)) is None:
            raise UnknownRun(run_id)

    async def schema_version(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(version), 0) FROM orchestrion_schema", ())
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ runs

    async def create_run(self, run: RunRecord) -> None:
        row = codec.run_row(run, _T)
        try:
            await self._exec(_INSERT_RUN, row)
        except pg_errors.UniqueViolation:
            raise DuplicateRecord("run", run.run_id) from None

    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        output: JSON | _Unset = UNSET,
        error: dict[str, JSON] | _Unset | None = UNSET,
        usage: dict[str, JSON] | _Unset = UNSET,
        now: datetime | None = None,
    ) -> RunRecord:
        fields = run_update(status, output, error, usage)
        sets: dict[str, Any] = {"status": status, "updated_at": now or utcnow()}
        for name, value in fields.items():
            sets[name] = codec.dump_json(value, f"run {run_id!r} {name}")
        assignments = ", ".join(f"{column} = %s" for column in sets)  # fixed column names
        sql = f"UPDATE runs SET {assignments} WHERE run_id = %s RETURNING {_RUN_COLS}"
        row = await self._one(sql, (*sets.values(), run_id))
        if row is None:
            raise UnknownRun(run_id)
        return codec.run_from_row(row, _T)

    async def get_run(self, run_id: str) -> RunRecord:
        row = await self._one(_SELECT_RUN, (run_id,))
        if row is None:
            raise UnknownRun(run_id)
        return codec.run_from_row(row, _T)

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        check_limit(limit)
        where = "WHERE status = %s " if status else ""
        args = (status, limit) if status else (limit,)
        sql = f"SELECT {_RUN_COLS} FROM runs {where}ORDER BY created_at DESC, row_id DESC LIMIT %s"
        return [codec.run_from_row(r, _T) for r in await self._all(sql, args)]

    # ----------------------------------------------------------------- steps

    async def record_step(self, step: StepRecord) -> None:
        row = codec.step_row(step, _T)
        try:
            await self._exec(_UPSERT_STEP, row)
        except pg_errors.ForeignKeyViolation:
            raise UnknownRun(step.run_id) from None

    async def steps(self, run_id: str) -> list[StepRecord]:
        sql = f"SELECT {_STEP_COLS} FROM steps WHERE run_id = %s ORDER BY row_id"
        rows = await self._all(sql, (run_id,))
        if not rows:
            await self._require_run(run_id)
        return [codec.step_from_row(r, _T) for r in rows]

    async def completed_steps(self, run_id: str) -> dict[str, StepRecord]:
        sql = (
            f"SELECT {_STEP_COLS} FROM steps WHERE run_id = %s AND status = 'succeeded' "
            "ORDER BY attempt"  # the latest attempt of a key wins below
        )
        rows = await self._all(sql, (run_id,))
        if not rows:
            await self._require_run(run_id)
        return {r[1]: codec.step_from_row(r, _T) for r in rows}

    # ---------------------------------------------------------------- events

    async def append_events(self, run_id: str, events: Sequence[EventRecord]) -> int:
        if not events:
            return await self.last_event_seq(run_id)
        after = events[0].seq - 1
        try:
            check_event_batch(run_id, events, after)  # consecutive and of this run
        except EventSequenceError:
            await self._require_run(run_id)  # an unknown run is the better explanation
            raise
        rows = [codec.event_row(e, _T) for e in events]
        args = {
            "run_id": run_id,
            "after": after,
            "seqs": [r[1] for r in rows],
            "kinds": [r[2] for r in rows],
            "ats": [r[3] for r in rows],
            "datas": [r[4] for r in rows],
        }
        try:
            async with self._conn() as conn:
                cur = await conn.execute(_APPEND_EVENTS, args)
                appended = cur.rowcount
        except pg_errors.ForeignKeyViolation:
            raise UnknownRun(run_id) from None
        except pg_errors.UniqueViolation:
            appended = 0  # a concurrent writer committed these seqs first
        if appended != len(rows):
            last = await self.last_event_seq(run_id)  # UnknownRun if that is the reason
            raise EventSequenceError(run_id, expected=last + 1, got=events[0].seq)
        return after + len(rows)

    async def events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        check_limit(limit)
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE run_id = %s AND seq > %s ORDER BY seq"
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
            await self._exec(_INSERT_APPROVAL, row)
        except pg_errors.ForeignKeyViolation:
            raise UnknownRun(approval.run_id) from None
        except pg_errors.UniqueViolation:
            raise DuplicateRecord("approval request", approval.request_id) from None

    async def get_approval(self, request_id: str) -> ApprovalRecord:
        row = await self._one(_SELECT_APPROVAL, (request_id,))
        if row is None:
            raise UnknownApproval(request_id)
        return codec.approval_from_row(row, _T)

    async def pending_approvals(self, run_id: str) -> list[ApprovalRecord]:
        sql = (
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE run_id = %s AND status = 'pending' "
            "ORDER BY created_at, row_id"
        )
        rows = await self._all(sql, (run_id,))
        if not rows:
            await self._require_run(run_id)
        return [codec.approval_from_row(r, _T) for r in rows]

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
        async with self._conn() as conn, conn.transaction():
            # FOR UPDATE: a concurrent decider waits here, then sees the request decided.
            cur = await conn.execute(_SELECT_APPROVAL + " FOR UPDATE", (request_id,))
            found = await cur.fetchone()
            if found is None:
                raise UnknownApproval(request_id)
            decided, error = approvals.decide(
                codec.approval_from_row(found, _T),
                decision=decision,
                by=by,
                action_hash=action_hash,
                edited_action=edited_action,
                reason=reason,
                now=now or utcnow(),
            )
            row = codec.approval_row(decided, _T)
            await conn.execute(
                _DECIDE_APPROVAL, (row[5], row[8], row[9], row[10], row[11], request_id)
            )
        if error is not None:
            raise error  # after the commit: the expiry is journaled
        return codec.approval_from_row(row, _T)


async def _last_seq(conn: Conn, run_id: str) -> int:
    cur = await conn.execute("SELECT MAX(seq) FROM events WHERE run_id = %s", (run_id,))
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
