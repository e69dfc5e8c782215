"""Postgres specifics: schemas, migrations, damage, races between connections, the pool."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrion.store import (
    SCHEMA_VERSION,
    CorruptRecord,
    EventSequenceError,
    SchemaTooNew,
    StoreUnavailable,
    UnknownRun,
)

from .conformance import make_events, make_run, make_step

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")

from orchestrion.store.postgres import PostgresStore  # noqa: E402  (after the skip check)


@pytest.fixture
async def raw(pg_schema: tuple[str, str]) -> AsyncIterator[Any]:
    """A plain autocommit connection with search_path on the test schema."""
    dsn, schema = pg_schema
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        yield conn


def store_for(pg_schema: tuple[str, str], **kwargs: Any) -> PostgresStore:
    dsn, schema = pg_schema
    return PostgresStore(dsn, schema=schema, **kwargs)


async def test_concurrent_openers_migrate_once(pg_schema: tuple[str, str], raw: Any) -> None:
    stores = [store_for(pg_schema) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        assert await s.schema_version() == SCHEMA_VERSION
        await s.close()
    cur = await raw.execute("SELECT version FROM orchestrion_schema")
    assert await cur.fetchall() == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


async def test_schemas_keep_journals_apart(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    other = (dsn, schema + "_b")
    try:
        async with store_for(pg_schema) as a, store_for(other) as b:
            await a.create_run(make_run())
            with pytest.raises(UnknownRun):
                await b.get_run("run-1")
    finally:
        from conftest import drop_pg_schema

        await drop_pg_schema(*other)


async def test_a_newer_schema_is_refused_and_left_untouched(
    pg_schema: tuple[str, str], raw: Any
) -> None:
    async with store_for(pg_schema) as store:
        await store.create_run(make_run())
    await raw.execute("INSERT INTO orchestrion_schema VALUES (99, 'future', 'x')")
    with pytest.raises(SchemaTooNew) as info:
        await store_for(pg_schema).open()
    assert info.value.found == 99
    cur = await raw.execute("SELECT COUNT(*) FROM runs")
    assert await cur.fetchone() == (1,)


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("UPDATE runs SET usage = '[1]' WHERE run_id = 'run-1'", "usage"),
        ("UPDATE runs SET status = 'exploded' WHERE run_id = 'run-1'", "status"),
        ("UPDATE runs SET error = '\"oops\"' WHERE run_id = 'run-1'", "error"),
    ],
)
async def test_a_corrupt_row_is_named_and_others_still_read(
    pg_schema: tuple[str, str], raw: Any, sql: str, column: str
) -> None:
    async with store_for(pg_schema) as store:
        await store.create_run(make_run("run-1"))
        await store.create_run(make_run("run-2"))
        await raw.execute(sql)
        with pytest.raises(CorruptRecord) as info:
            await store.get_run("run-1")
        assert (info.value.key, info.value.column) == ("run-1", column)
        assert (await store.get_run("run-2")).run_id == "run-2"


async def test_an_append_racing_another_connection_is_refused(
    pg_schema: tuple[str, str], raw: Any
) -> None:
    async with store_for(pg_schema) as store:
        await store.create_run(make_run())
        await store.append_events("run-1", make_events(1, 2))
        # Another writer holds seq 3 in an open transaction; ours blocks on it, then loses.
        async with raw.transaction():
            await raw.execute(
                "INSERT INTO events (run_id, seq, kind, at, data) "
                "VALUES ('run-1', 3, 'x', now(), '{}')"
            )
            ours = asyncio.create_task(store.append_events("run-1", make_events(3, 1)))
            await asyncio.sleep(0.2)
            assert not ours.done()
        with pytest.raises(EventSequenceError) as info:
            await ours
        assert (info.value.expected, info.value.got) == (4, 3)
        assert [e.seq for e in await store.events("run-1")] == [1, 2, 3]


async def test_more_tasks_than_connections_all_land(pg_schema: tuple[str, str]) -> None:
    async with store_for(pg_schema, max_connections=2) as store:
        await store.create_run(make_run())
        await asyncio.gather(*(store.record_step(make_step(f"k{i}")) for i in range(40)))
        assert len(await store.steps("run-1")) == 40


async def test_a_killed_connection_is_replaced(pg_schema: tuple[str, str], raw: Any) -> None:
    async with store_for(pg_schema, max_connections=1) as store:
        await store.create_run(make_run())
        pid = (await store._one("SELECT pg_backend_pid()", ()) or (0,))[0]  # its one connection
        await raw.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable):
            await store.get_run("run-1")  # this call saw the connection die
        assert (await store.get_run("run-1")).run_id == "run-1"  # the next one reconnects


async def test_an_unreachable_server_is_a_store_error(pg_schema: tuple[str, str]) -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await store.open()


async def test_the_unix_socket_works(pg_schema: tuple[str, str]) -> None:
    dsn = os.environ.get("ORCHESTRION_TEST_PG_SOCKET_DSN")
    if not dsn:
        pytest.skip("ORCHESTRION_TEST_PG_SOCKET_DSN is not set (.ci/postgres.sh sets it)")
    async with PostgresStore(dsn, schema=pg_schema[1]) as store:
        await store.create_run(make_run())
        assert (await store.get_run("run-1")).run_id == "run-1"


def test_a_bad_schema_name_is_refused() -> None:
    with pytest.raises(StoreUnavailable, match="plain identifier"):
        PostgresStore("postgresql://x", schema='x"; DROP TABLE runs; --')


def test_the_repr_does_not_leak_the_password() -> None:
    assert "secret" not in repr(PostgresStore("postgresql://u:secret@h/db"))
