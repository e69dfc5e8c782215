"""The journal schema, versioned, with one migration per version for each SQL dialect.

A table ``orchestrion_schema`` lists the versions applied.  Opening a store applies
the missing ones in order, in one transaction, under a lock, so concurrent openers
and re-runs are harmless.  A journal whose version is newer than
:data:`SCHEMA_VERSION` is refused with :class:`SchemaTooNew` before anything is
written.  To change the schema: append a :class:`Migration`, never edit a shipped
one, and bump :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrion.store.errors import SchemaTooNew
from orchestrion.store.records import utcnow

if TYPE_CHECKING:
    from psycopg import AsyncConnection


@dataclass(frozen=True, slots=True)
class Migration:
    """The statements that take a journal from ``version - 1`` to ``version``."""

    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


_V1_SQLITE = (
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY NOT NULL, workflow TEXT NOT NULL,
        definition_hash TEXT NOT NULL, status TEXT NOT NULL, input TEXT NOT NULL,
        output TEXT NOT NULL, error TEXT NOT NULL, trace_id TEXT NOT NULL,
        usage TEXT NOT NULL, parent_run_id TEXT, metadata TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX runs_by_created ON runs (created_at)",
    "CREATE INDEX runs_by_status ON runs (status, created_at)",
    "CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
    """CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_key TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,
        agent TEXT NOT NULL, input TEXT NOT NULL, output TEXT NOT NULL,
        usage TEXT NOT NULL, cost_usd REAL NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, provenance TEXT NOT NULL, error TEXT NOT NULL,
        idempotency_key TEXT, UNIQUE (run_id, step_key, attempt))""",
    """CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)) WITHOUT ROWID""",
    """CREATE TABLE approvals (
        request_id TEXT PRIMARY KEY NOT NULL,
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_key TEXT NOT NULL, action TEXT NOT NULL, action_hash TEXT NOT NULL,
        status TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT,
        decided_at TEXT, decided_by TEXT, edited_action TEXT NOT NULL, reason TEXT)""",
    "CREATE INDEX approvals_by_run ON approvals (run_id, status)",
)

# Postgres keeps JSON in `json` columns: validated on write, yet read back as the
# exact text written (jsonb would reorder keys and turn 1e20 into an integer).
# `row_id` gives runs, steps and approvals a stable insertion order (SQLite's rowid).
_V1_POSTGRES = (
    """CREATE TABLE runs (
        row_id bigint GENERATED ALWAYS AS IDENTITY, run_id text PRIMARY KEY,
        workflow text NOT NULL, definition_hash text NOT NULL, status text NOT NULL,
        input json NOT NULL, output json NOT NULL, error json NOT NULL,
        trace_id text NOT NULL, usage json NOT NULL, parent_run_id text,
        metadata json NOT NULL, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL)""",
    "CREATE INDEX runs_by_created ON runs (created_at, row_id)",
    "CREATE INDEX runs_by_status ON runs (status, created_at)",
    "CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
    """CREATE TABLE steps (
        row_id bigint GENERATED ALWAYS AS IDENTITY,
        run_id text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_key text NOT NULL, attempt integer NOT NULL, status text NOT NULL,
        agent text NOT NULL, input json NOT NULL, output json NOT NULL,
        usage json NOT NULL, cost_usd double precision NOT NULL,
        started_at timestamptz NOT NULL, finished_at timestamptz,
        provenance json NOT NULL, error json NOT NULL, idempotency_key text,
        PRIMARY KEY (run_id, step_key, attempt))""",
    """CREATE TABLE events (
        run_id text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq bigint NOT NULL, kind text NOT NULL, at timestamptz NOT NULL,
        data json NOT NULL, PRIMARY KEY (run_id, seq))""",
    """CREATE TABLE approvals (
        row_id bigint GENERATED ALWAYS AS IDENTITY, request_id text PRIMARY KEY,
        run_id text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_key text NOT NULL, action json NOT NULL, action_hash text NOT NULL,
        status text NOT NULL, created_at timestamptz NOT NULL, expires_at timestamptz,
        decided_at timestamptz, decided_by text, edited_action json NOT NULL, reason text)""",
    "CREATE INDEX approvals_by_run ON approvals (run_id, status)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "journal: runs, steps, events, approvals", _V1_SQLITE, _V1_POSTGRES),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
"""The newest journal schema this release reads and writes."""

_SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS orchestrion_schema (
    version integer PRIMARY KEY, description text NOT NULL, applied_at text NOT NULL)"""


def pending(current: int, *, where: str) -> list[Migration]:
    """The migrations a journal at version ``current`` still needs, in order."""
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(current, SCHEMA_VERSION, where=where)
    return [m for m in MIGRATIONS if m.version > current]


# ----------------------------------------------------------------------------- sqlite


def sqlite_schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in a SQLite journal (0 for a fresh file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'orchestrion_schema'"
    ).fetchone()
    if not exists:
        return 0
    return int(
        conn.execute("SELECT COALESCE(MAX(version), 0) FROM orchestrion_schema").fetchone()[0]
    )


def migrate_sqlite(conn: sqlite3.Connection, *, where: str) -> int:
    """Bring a SQLite journal (autocommit connection) to :data:`SCHEMA_VERSION`."""
    if not pending(sqlite_schema_version(conn), where=where):
        return SCHEMA_VERSION  # the common case: no write lock taken at all
    conn.execute("BEGIN IMMEDIATE")  # the write lock: one migrator at a time
    try:
        conn.execute(_SCHEMA_TABLE)
        for migration in pending(sqlite_schema_version(conn), where=where):
            for statement in migration.sqlite:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO orchestrion_schema VALUES (?, ?, ?)",
                (migration.version, migration.description, utcnow().isoformat()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


# --------------------------------------------------------------------------- postgres


async def migrate_postgres(conn: AsyncConnection[Any], *, schema: str, where: str) -> int:
    """Bring the Postgres journal in ``schema`` to :data:`SCHEMA_VERSION`.

    ``schema`` must be a plain identifier (the store validates it); the connection's
    search_path must point at it.
    """
    async with conn.transaction():
        # Serializes concurrent openers of the same schema, released at commit.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"orchestrion:{schema}",))
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:  # IF NOT EXISTS would still need CREATE rights
            await conn.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
        await conn.execute(_SCHEMA_TABLE)
        cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM orchestrion_schema")
        row = await cur.fetchone()
        for migration in pending(int(row[0]) if row else 0, where=where):
            for statement in migration.postgres:
                await conn.execute(statement)  # type: ignore[arg-type]  # trusted constants
            await conn.execute(
                "INSERT INTO orchestrion_schema VALUES (%s, %s, %s)",
                (migration.version, migration.description, utcnow().isoformat()),
            )
    return SCHEMA_VERSION
