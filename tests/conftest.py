"""Store fixtures: conformance and durability tests run on memory, SQLite and Postgres.

Postgres runs when ORCHESTRION_TEST_PG_DSN is set (``./dev test`` sets it from
``.ci/postgres.sh start``); each test gets a schema of its own, dropped afterwards.
With ORCHESTRION_REQUIRE_PG=1 (CI) a missing Postgres fails instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrion.store import MemoryStore, SQLiteStore, Store

PG_DSN_ENV = "ORCHESTRION_TEST_PG_DSN"
PG_SKIP_REASON = (
    f'{PG_DSN_ENV} is not set: run `eval "$(bash .ci/postgres.sh start)"` to test on Postgres'
)


@dataclass
class Backend:
    """A store kind under test: ``make()`` builds a new, unopened store on the same data."""

    name: str
    make: Callable[[], Store]
    durable: bool  # True if a new store from make() sees what an earlier one wrote


def pg_dsn() -> str:
    """The test Postgres DSN, or skip the test with the reason it cannot run."""
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        if os.environ.get("ORCHESTRION_REQUIRE_PG") == "1":
            pytest.fail(f"{PG_DSN_ENV} is not set but ORCHESTRION_REQUIRE_PG=1 (CI)")
        pytest.skip(PG_SKIP_REASON)
    return dsn


async def drop_pg_schema(dsn: str, schema: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[str, str]]:
    """A fresh Postgres schema name (and the DSN), dropped after the test."""
    dsn = pg_dsn()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    yield dsn, schema
    await drop_pg_schema(dsn, schema)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", MemoryStore, durable=False)
    elif request.param == "sqlite":
        path = tmp_path / "journal.db"
        yield Backend("sqlite", lambda: SQLiteStore(path), durable=True)
    else:
        from orchestrion.store.postgres import PostgresStore

        dsn = pg_dsn()
        schema = f"test_{uuid.uuid4().hex[:16]}"
        yield Backend("postgres", lambda: PostgresStore(dsn, schema=schema), durable=True)
        await drop_pg_schema(dsn, schema)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with backend.make() as opened:
        yield opened
