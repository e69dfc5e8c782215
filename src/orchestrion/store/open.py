"""open_store: a store from a URL, the one knob users set for where runs are journaled."""

from __future__ import annotations

from orchestrion.store.base import Store
from orchestrion.store.errors import StoreUnavailable

_FORMS = (
    "None (SQLite in the user's data directory), 'sqlite:///abs/path.db', "
    "'sqlite://relative/path.db', 'sqlite://:memory:', 'memory://' or "
    "'postgresql://user@host:port/db'"
)


def open_store(url: str | None = None) -> Store:
    """The store a URL names, not yet open: use it as ``async with open_store(url) as store``.

    ``None`` is the embedded default, a SQLite file in the user's data directory.
    ``sqlite://`` is followed by a path (``sqlite:///tmp/j.db`` is ``/tmp/j.db``) or
    ``:memory:``; ``memory://`` is the in-process store for tests;
    ``postgresql://`` (or ``postgres://``) is a libpq URL, which needs the
    ``postgres`` extra.
    """
    if url is None:
        from orchestrion.store.sqlite import SQLiteStore

        return SQLiteStore()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        from orchestrion.store.sqlite import SQLiteStore

        return SQLiteStore(rest or ":memory:")
    if sep and scheme == "memory":
        from orchestrion.store.memory import MemoryStore

        return MemoryStore()
    if sep and scheme in ("postgresql", "postgres"):
        from orchestrion.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreUnavailable(f"cannot tell which store {url!r} names", hint=f"use {_FORMS}")
