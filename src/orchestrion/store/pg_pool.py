"""A small fixed-size pool of async psycopg connections.

Just enough for a journal: at most ``size`` connections, opened on demand, the most
recently used handed out first, and a broken one replaced on its next checkout.
It avoids a dependency on ``psycopg_pool`` for what the store needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, pq


class ConnectionPool:
    """Up to ``size`` connections made by ``connect``; borrow one with :meth:`connection`."""

    def __init__(self, connect: Callable[[], Awaitable[AsyncConnection[Any]]], size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one connection, got size={size}")
        self._connect = connect
        # Each slot holds a connection or None (free capacity: connect on checkout).
        # LIFO, so warm connections are reused before new ones are opened.
        self._slots: asyncio.LifoQueue[AsyncConnection[Any] | None] = asyncio.LifoQueue()
        for _ in range(size):
            self._slots.put_nowait(None)
        self._all: set[AsyncConnection[Any]] = set()
        self._closed = False

    async def warm(self) -> None:
        """Open one connection now, so a wrong DSN fails at open, not at first use."""
        async with self.connection():
            pass

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """Borrow a connection, waiting for one if all are in use."""
        conn = await self._slots.get()
        try:
            if conn is None or conn.closed or conn.broken:
                conn = await self._open()
        except BaseException:
            self._slots.put_nowait(None)
            raise
        try:
            yield conn
        finally:
            self._slots.put_nowait(await self._reusable(conn))

    async def close(self) -> None:
        """Close every connection; borrowed ones are closed when returned."""
        self._closed = True
        for conn in list(self._all):
            await conn.close()
        self._all.clear()

    async def _open(self) -> AsyncConnection[Any]:
        conn = await self._connect()
        self._all.add(conn)
        return conn

    async def _reusable(self, conn: AsyncConnection[Any]) -> AsyncConnection[Any] | None:
        if self._closed:
            await conn.close()
        if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:  # a borrower left a transaction open (cancelled mid-way): undo it
                await conn.rollback()
            except Exception:
                await conn.close()
        if conn.closed or conn.broken:
            self._all.discard(conn)
            return None
        return conn
