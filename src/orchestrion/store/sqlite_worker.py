"""One thread that owns a SQLite connection and group-commits the writes queued to it.

Why a thread: sqlite3 calls block, and the event loop must not.  Why one: SQLite
has a single writer anyway, and one connection used from one thread needs no
locking.  Why group commit: the writes that queue up while a transaction is being
committed (parallel branches journaling their steps) share the next commit, each
inside its own savepoint so that one refused write does not undo the others.

Every write's future is resolved only after the transaction holding it has
committed, so an acknowledged write is in the journal.  A *durable* write commits
with ``synchronous=FULL``, which also survives a power cut, not just a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from orchestrion.errors import StoreError
from orchestrion.store.errors import StoreUnavailable

T = TypeVar("T")
Kind = Literal["read", "write", "durable", "stop"]
Outcome = tuple["_Job", bool, Any]  # (job, ok, result or exception)


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    kind: Kind
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class SQLiteWorker:
    """Runs functions of a connection on a dedicated thread; see the module docstring.

    ``connect`` is called on the thread and returns the autocommit connection
    (``isolation_level=None``) that every job receives; ``synchronous`` is the level
    it was set to, restored after each durable commit.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        name: str,
        synchronous: str = "NORMAL",
        max_batch: int = 256,
    ) -> None:
        self._connect = connect
        self._synchronous = synchronous
        self._name = name
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._accepting = False
        self.commits = 0  # transactions committed: fewer than writes when grouping works
        self.writes = 0

    async def start(self) -> None:
        """Start the thread and connect; raises whatever ``connect`` raised."""
        ready = self._job(lambda conn: None, "read")
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"orchestrion-sqlite:{self._name}", daemon=True
        )
        self._thread.start()
        await ready.future
        self._accepting = True

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False, durable: bool = False
    ) -> T:
        """Run ``fn(conn)`` on the thread; writes return once committed.

        A read runs outside any transaction the worker opens (it may open its own).
        If the awaiting task is cancelled the job still runs: a write may land.
        """
        if not self._accepting:
            raise StoreUnavailable(
                f"SQLite journal {self._name} is not open",
                hint="use `async with store:` or await store.open() first",
            )
        job = self._job(fn, "durable" if durable else "write" if write else "read")
        self._queue.put(job)
        return await job.future  # type: ignore[no-any-return]

    async def stop(self) -> None:
        """Finish every queued job, close the connection and end the thread."""
        if not self._accepting or self._thread is None:
            return
        self._accepting = False
        job = self._job(lambda conn: None, "stop")
        self._queue.put(job)
        await job.future
        self._thread.join()

    @staticmethod
    def _job(fn: Callable[[sqlite3.Connection], Any], kind: Kind) -> _Job:
        loop = asyncio.get_running_loop()
        return _Job(fn, kind, loop, loop.create_future())

    # ------------------------------------------------------------ on the thread

    def _main(self, ready: _Job) -> None:
        try:
            self._conn = self._connect()
        except BaseException as exc:
            _settle([(ready, False, exc)])
            return
        _settle([(ready, True, None)])
        stopped = False
        while not stopped:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                stopped = self._run_batch(batch)
            except BaseException as exc:  # a bug here must not leave callers waiting forever
                _settle([(job, False, exc) for job in batch if not job.future.done()])
                raise

    def _run_batch(self, batch: list[_Job]) -> bool:
        """Run a batch in order, grouping adjacent writes; True once a stop job ran."""
        outcomes: list[Outcome] = []
        group: list[_Job] = []
        for index, job in enumerate(batch):
            if job.kind in ("write", "durable"):
                group.append(job)
            elif job.kind == "read":
                outcomes += self._commit(group)
                group = []
                outcomes.append(self._attempt(job, savepoint=False))
            else:  # stop: the caller stopped accepting jobs before queueing it
                outcomes += self._commit(group)
                group = []
                self._close()
                outcomes.append((job, True, None))
                closed = StoreUnavailable(f"SQLite journal {self._name} is closed")
                outcomes += [(late, False, closed) for late in batch[index + 1 :]]
                _settle(outcomes)
                return True
        outcomes += self._commit(group)
        _settle(outcomes)
        return False

    def _commit(self, group: list[_Job]) -> list[Outcome]:
        """Run a group of writes in one transaction; each outcome counts once committed."""
        if not group:
            return []
        conn = self._connection()
        durable = self._synchronous != "FULL" and any(job.kind == "durable" for job in group)
        shared = len(group) > 1  # a lone write needs no savepoint: it owns the transaction
        try:
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._attempt(job, savepoint=shared) for job in group]
            if not shared and not outcomes[0][1]:
                conn.execute("ROLLBACK")
                return outcomes
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = _wrap(exc, f"could not commit to the SQLite journal {self._name}")
            return [(job, False, error) for job in group]
        finally:
            if durable:
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        self.commits += 1
        self.writes += len(group)
        return outcomes

    def _attempt(self, job: _Job, *, savepoint: bool) -> Outcome:
        conn = self._connection()
        if savepoint:
            conn.execute("SAVEPOINT job")
        try:
            result = job.fn(conn)
        except Exception as exc:
            if savepoint:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            if isinstance(exc, sqlite3.Error):
                exc = _wrap(exc, f"SQLite journal {self._name} failed")
            return job, False, exc
        if savepoint:
            conn.execute("RELEASE job")
        return job, True, result

    def _connection(self) -> sqlite3.Connection:
        assert self._conn is not None, "jobs run only after connect succeeded"
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(sqlite3.Error):  # an optimization only: closing matters
            conn.execute("PRAGMA optimize")  # cheap; keeps query plans good over time
        conn.close()


def _wrap(exc: sqlite3.Error, message: str) -> StoreError:
    error = StoreError(
        f"{message}: {exc}",
        hint="check the disk (space, permissions) and that no other program holds the "
        "journal locked; the failed write was not journaled",
    )
    error.__cause__ = exc
    return error


def _settle(outcomes: list[Outcome]) -> None:
    """Hand results back to their event loops: one wake-up per loop, not per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(outcomes: list[Outcome]) -> None:
    for job, ok, value in outcomes:
        if job.future.done():  # the awaiting task was cancelled
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
