"""Step and run timeouts without a loop timer per step (the choke point's hot path).

``bounded(aw, limit, t0, deadlines)`` awaits ``aw`` with the semantics of
``async with asyncio.timeout(limit)`` (TimeoutError on expiry; outer timeouts and
cancellations pass through), but arms nothing for an awaitable that completes
without suspending, and lets every suspended step of a run share one loop timer
(:class:`Deadlines`).  See bench/README.md for the measurements behind it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import types
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


# A deadline entry: [when (loop time), seq, task or None once finished, fired?].  A list,
# not a class: built for every suspending step, and the heap compares it as a tuple.
_WHEN, _TASK, _FIRED = 0, 2, 3


def _expire(entry: list[Any]) -> None:
    """Cancel the entry's task (once), remembering that the deadline did it."""
    task = entry[_TASK]
    if task is not None:
        entry[_FIRED] = True
        task.cancel()


class Deadlines:
    """The step and run deadlines of one run, behind a single armed loop timer.

    A per-await ``loop.call_at`` handle costs a TimerHandle, a push into the loop's
    heap and a cancel for every step that suspends; here a step pushes an entry on
    this heap and marks it finished when it ends.  The one timer is armed at the
    earliest deadline; when it fires it cancels every due task, drops finished
    entries and re-arms at the next live deadline.  Finished entries are compacted
    once they outnumber the live ones, so the heap stays proportional to the steps
    in flight.
    """

    __slots__ = ("_handle", "_heap", "_live", "_loop", "_seq", "_when")

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._when = float("inf")
        self._seq = 0
        self._live = 0

    def add(self, loop: asyncio.AbstractEventLoop, when: float,
            task: asyncio.Task[Any]) -> list[Any] | None:
        """Watch ``task`` until ``when`` (loop time): its entry, or None when this run's
        timer lives on another event loop (the caller then arms a timer of its own)."""
        if loop is not self._loop:
            if self._live:
                return None
            self.close()
            self._loop = loop
        self._seq += 1
        entry = [when, self._seq, task, False]
        heapq.heappush(self._heap, entry)
        self._live += 1
        if when < self._when:
            if self._handle is not None:
                self._handle.cancel()
            self._when = when
            self._handle = loop.call_at(when, self._fire)
        return entry

    def done(self, entry: list[Any]) -> None:
        """The await of ``entry`` ended before its deadline."""
        entry[_TASK] = None
        self._live -= 1
        heap = self._heap
        if len(heap) > 64 and len(heap) > 2 * self._live:
            heap[:] = [e for e in heap if e[_TASK] is not None]
            heapq.heapify(heap)

    def _fire(self) -> None:
        loop, heap = self._loop, self._heap
        assert loop is not None
        due = max(loop.time(), self._when)
        self._handle, self._when = None, float("inf")
        while heap and heap[0][_WHEN] <= due:
            entry = heapq.heappop(heap)
            if entry[_TASK] is not None:
                self._live -= 1
                _expire(entry)
        while heap and heap[0][_TASK] is None:
            heapq.heappop(heap)
        if heap:
            self._when = heap[0][_WHEN]
            self._handle = loop.call_at(self._when, self._fire)

    def close(self) -> None:
        """Disarm and forget the deadlines: the run is over.  Awaits still in flight (a
        task that outlived its flow) keep theirs, so then this does nothing."""
        if self._live:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()
        self._when = float("inf")


async def _timed(aw: Awaitable[T], limit: float) -> T:
    async with asyncio.timeout(limit):
        return await aw


@types.coroutine
def bounded(aw: Awaitable[T], limit: float, t0: float,
            deadlines: Deadlines | None = None) -> Generator[Any, Any, T]:
    """``await aw`` within ``limit`` seconds of ``t0`` (a ``time.perf_counter()`` reading).

    The contract of ``async with asyncio.timeout(limit): return await aw`` entered at
    ``t0``: when the deadline passes, the task is cancelled and the CancelledError
    becomes TimeoutError, unless the task was also cancelled by someone else (the
    ``Task.uncancel`` bookkeeping of asyncio.timeout, so outer timeouts and cancels
    still propagate as CancelledError).  Only the cost differs:

    * the deadline is armed when ``aw`` first suspends (counted from ``t0``).  Until
      then the event loop cannot run, so no timer could have fired; an agent that
      never suspends (a sync function, CPU-only work) pays no timer at all;
    * with ``deadlines`` (the run's), it joins the run's single timer instead of
      scheduling a loop timer of its own.
    """
    if type(aw) is not types.CoroutineType or not limit > 0:
        return (yield from _timed(aw, limit).__await__())
    coro = aw
    try:
        pending = coro.send(None)
    except StopIteration as done:
        return done.value
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        coro.close()
        raise RuntimeError("Timeout should be used inside a task")
    cancelling = task.cancelling()
    when = loop.time() + limit - (time.perf_counter() - t0)
    handle = None
    entry = None if deadlines is None else deadlines.add(loop, when, task)
    if entry is None:
        entry = [when, 0, task, False]
        handle = loop.call_at(when, _expire, entry)
    sent: Any = None
    try:
        while True:  # PEP 380 by hand until the task resumes us, then native delegation
            thrown: BaseException | None = None
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task, e.g. a cancellation
                thrown = exc
            else:
                if sent is None:
                    result = yield from coro  # type: ignore[misc]  # a native coroutine
                    break
            try:
                pending = coro.send(sent) if thrown is None else coro.throw(thrown)
            except StopIteration as done:
                result = done.value
                break
            finally:
                thrown = None
    except BaseException as exc:
        if not entry[_FIRED]:
            if handle is not None:
                handle.cancel()
            elif deadlines is not None:
                deadlines.done(entry)
        elif task.uncancel() <= cancelling and type(exc) is asyncio.CancelledError:
            raise TimeoutError from exc
        raise
    if entry[_FIRED]:
        task.uncancel()
    elif handle is not None:
        handle.cancel()
    elif deadlines is not None:
        deadlines.done(entry)
    return result
