"""SQLite specifics: the file, its pragmas, migrations, damage, crashes and concurrency."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrion.errors import StoreError
from orchestrion.store import (
    SCHEMA_VERSION,
    CorruptRecord,
    SchemaTooNew,
    SQLiteStore,
    StoreUnavailable,
)

from .conformance import make_events, make_run, make_step


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection to the journal file, to inspect or damage it behind the store."""
    return sqlite3.connect(path, isolation_level=None)


async def journal_with_two_runs(path: Path) -> None:
    async with SQLiteStore(path) as store:
        for run_id in ("run-1", "run-2"):
            await store.create_run(make_run(run_id))
            await store.record_step(make_step(run_id=run_id, status="succeeded"))
            await store.append_events(run_id, make_events(1, 2, run_id=run_id))


async def test_the_journal_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with SQLiteStore(path) as store:
        await store.create_run(make_run())
        assert raw(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        modes = await store.worker.run(
            lambda c: [
                c.execute(f"PRAGMA {p}").fetchone()[0] for p in ("synchronous", "foreign_keys")
            ]
        )
        assert modes == [1, 1]  # NORMAL, on


async def test_the_default_path_is_in_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app: str(tmp_path / "data" / app))
    store = SQLiteStore()
    assert Path(store.path) == tmp_path / "data" / "orchestrion" / "journal.db"
    async with store:  # the directory is created on first open
        await store.create_run(make_run())
    assert Path(store.path).exists()


async def test_an_in_memory_journal_works(tmp_path: Path) -> None:
    async with SQLiteStore(":memory:") as store:
        await store.create_run(make_run())
        assert await store.schema_version() == SCHEMA_VERSION


async def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await journal_with_two_runs(path)
    raw(path).execute("INSERT INTO orchestrion_schema VALUES (99, 'from the future', 'x')")
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew) as info:
        await SQLiteStore(path).open()
    assert (info.value.found, info.value.supported) == (99, SCHEMA_VERSION)
    assert "upgrade orchestrion" in str(info.value)
    assert path.read_bytes() == before
    assert raw(path).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2


@pytest.mark.parametrize("content", [b"", None], ids=["empty-file", "foreign-tables"])
async def test_migrates_an_empty_or_unversioned_file(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "j.db"
    if content is not None:
        path.write_bytes(content)
    else:  # a SQLite file written by someone else: version 0 for us, their data stays
        raw(path).execute("CREATE TABLE notes (body TEXT)")
        raw(path).execute("INSERT INTO notes VALUES ('keep me')")
    async with SQLiteStore(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
        await store.create_run(make_run())
    versions = raw(path).execute("SELECT version FROM orchestrion_schema").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    if content is None:
        assert raw(path).execute("SELECT body FROM notes").fetchall() == [("keep me",)]


async def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await journal_with_two_runs(path)
    for _ in range(2):
        async with SQLiteStore(path):
            pass
    assert raw(path).execute("SELECT COUNT(*) FROM orchestrion_schema").fetchone()[0] == 1


async def test_a_file_that_is_not_sqlite_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreUnavailable, match="not a usable SQLite journal"):
        await SQLiteStore(path).open()
    assert path.read_bytes().startswith(b"these are my notes")


async def test_an_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await SQLiteStore(blocker / "sub" / "j.db").open()


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("UPDATE runs SET input = '{not json' WHERE run_id = 'run-1'", "input"),
        ("UPDATE runs SET usage = '[1, 2]' WHERE run_id = 'run-1'", "usage"),
        ("UPDATE runs SET status = 'exploded' WHERE run_id = 'run-1'", "status"),
        ("UPDATE runs SET created_at = 'yesterday' WHERE run_id = 'run-1'", "created_at"),
        ("UPDATE runs SET updated_at = '2025-01-01T00:00:00' WHERE run_id = 'run-1'", "updated_at"),
    ],
)
async def test_a_corrupt_run_row_is_named_and_others_still_read(
    tmp_path: Path, sql: str, column: str
) -> None:
    path = tmp_path / "j.db"
    await journal_with_two_runs(path)
    raw(path).execute(sql)
    async with SQLiteStore(path) as store:
        with pytest.raises(CorruptRecord) as info:
            await store.get_run("run-1")
        assert (info.value.table, info.value.key, info.value.column) == ("runs", "run-1", column)
        assert "run-1" in str(info.value) and "not changed" in str(info.value)
        assert (await store.get_run("run-2")).run_id == "run-2"
        with pytest.raises(CorruptRecord):
            await store.list_runs()


async def test_corrupt_step_and_event_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await journal_with_two_runs(path)
    raw(path).execute("UPDATE steps SET output = 'nope' WHERE run_id = 'run-1'")
    raw(path).execute("UPDATE events SET data = '\"text\"' WHERE run_id = 'run-1' AND seq = 2")
    async with SQLiteStore(path) as store:
        with pytest.raises(CorruptRecord, match=r"steps\[run-1/chain\[0\]/writer#1\].*'output'"):
            await store.completed_steps("run-1")
        with pytest.raises(CorruptRecord, match=r"events\[run-1#2\].*'data'"):
            await store.events("run-1")
        assert len(await store.events("run-1", limit=1)) == 1  # the rows before it still read
        assert len(await store.completed_steps("run-2")) == 1


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "j.db") as store:
        await store.create_run(make_run())
        before = (store.worker.commits, store.worker.writes)
        await asyncio.gather(*(store.record_step(make_step(f"k{i}")) for i in range(200)))
        commits = store.worker.commits - before[0]
        writes = store.worker.writes - before[1]
        assert writes == 200
        assert commits < writes  # group commit: fewer fsync points than writes
        assert len(await store.steps("run-1")) == 200


async def test_two_stores_on_one_file_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with SQLiteStore(path) as a, SQLiteStore(path) as b:
        await a.create_run(make_run())
        await asyncio.gather(
            *(
                s.record_step(make_step(f"{name}{i}"))
                for i in range(50)
                for name, s in [("a", a), ("b", b)]
            )
        )
        assert len(await b.steps("run-1")) == 100


async def test_durable_writes_sync_fully_and_steps_do_not(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "j.db") as store:
        trace: list[str] = []
        await store.worker.run(lambda c: c.set_trace_callback(trace.append))
        await store.create_run(make_run())
        assert trace[0] == "PRAGMA synchronous = FULL" and "COMMIT" in trace
        trace.clear()
        await store.record_step(make_step())
        assert not any("synchronous" in s for s in trace)
        await store.worker.run(lambda c: c.set_trace_callback(None))
        level = await store.worker.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert level == 1  # back to NORMAL


async def test_a_full_sync_store_stays_full(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "j.db", synchronous="FULL") as store:
        await store.create_run(make_run())
        level = await store.worker.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert level == 2
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "j.db", synchronous="OFF")  # type: ignore[arg-type]


async def test_closing_finishes_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    await store.open()
    await store.create_run(make_run())
    tasks = [asyncio.create_task(store.record_step(make_step(f"k{i}"))) for i in range(50)]
    await asyncio.sleep(0)  # let every task queue its write
    await store.close()
    await asyncio.gather(*tasks)
    async with SQLiteStore(path) as reopened:
        assert len(await reopened.steps("run-1")) == 50


async def test_a_driver_error_becomes_a_store_error(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "j.db") as store:
        with pytest.raises(StoreError, match="no such table"):
            await store.worker.run(lambda c: c.execute("SELECT * FROM nowhere"))
        await store.create_run(make_run())  # the worker is still healthy


_CRASHER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from orchestrion.store import SQLiteStore
    from tests.store.conformance import make_run, make_step

    async def main():
        store = SQLiteStore(sys.argv[1])
        await store.open()
        await store.create_run(make_run())
        print("run", flush=True)
        for i in range(40):
            await store.record_step(make_step(f"k{i}", status="succeeded", output=i))
            print(i, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush: a crash

    asyncio.run(main())
    """
)


async def test_every_acknowledged_write_survives_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(path)], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acked = proc.stdout.split()
    assert acked[0] == "run" and len(acked) == 41
    async with SQLiteStore(path) as store:
        done = await store.completed_steps("run-1")
        assert sorted(s.output for s in done.values()) == list(range(40))
