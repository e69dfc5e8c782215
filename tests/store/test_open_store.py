"""open_store: which store each URL names."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrion.store import MemoryStore, SQLiteStore, StoreUnavailable, open_store
from orchestrion.store.sqlite import default_path

from .conformance import make_run


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///tmp/j.db", "/tmp/j.db"),
        ("sqlite://runs/j.db", "runs/j.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
        ("SQLITE:///tmp/j.db", "/tmp/j.db"),
    ],
)
def test_sqlite_urls_name_a_path(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore) and store.path == path


def test_no_url_is_the_default_sqlite_file() -> None:
    store = open_store()
    assert isinstance(store, SQLiteStore) and store.path == str(default_path())


def test_memory_url() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/db", "postgres://u@h/db"])
def test_postgres_urls(url: str) -> None:
    pytest.importorskip("psycopg")
    from orchestrion.store.postgres import PostgresStore

    store = open_store(url)
    assert isinstance(store, PostgresStore) and store.dsn == url


@pytest.mark.parametrize("url", ["mysql://h/db", "journal.db", "", "sqlite:/x"])
def test_unknown_urls_say_which_forms_work(url: str) -> None:
    with pytest.raises(StoreUnavailable, match="memory://"):
        open_store(url)


async def test_the_store_opens_as_a_context_manager(tmp_path: Path) -> None:
    async with open_store(f"sqlite://{tmp_path}/j.db") as store:
        await store.create_run(make_run())
        assert [r.run_id for r in await store.list_runs()] == ["run-1"]
