"""One CancelPoller per Runner: all live runs' statuses in one read, at most every interval."""

from __future__ import annotations

import asyncio

from orchestrion.durable import Runner
from orchestrion.runtime.journal import CancelPoller, StoreJournal
from orchestrion.store import Store

from .conformance import make_run


async def _settle(poller: CancelPoller) -> None:
    task = poller._task
    if task is not None:
        await task


async def test_one_read_covers_every_live_run(store: Store) -> None:
    poller = CancelPoller(store, interval=0.01)
    journals = []
    for i in range(50):
        await store.create_run(make_run(f"run-{i}"))
        journals.append(StoreJournal(store, f"run-{i}", completed={}, begun={}, poller=poller))
    for i in (3, 17, 42):  # cancelled elsewhere: another process, the CLI
        await store.update_run(f"run-{i}", status="cancelled")
    await asyncio.sleep(0.02)
    assert not any(j.cancelled() for j in journals)  # a check only starts the poll
    assert not any(j.cancelled() for j in journals)  # ... and does not start a second
    await _settle(poller)
    assert poller.reads == 1
    assert [j.run_id for j in journals if j.cancelled()] == ["run-3", "run-17", "run-42"]
    for journal in journals:
        await journal.close()
    assert poller._journals == {}


async def test_closing_the_last_journal_waits_for_a_read_in_flight(store: Store) -> None:
    await store.create_run(make_run())
    poller = CancelPoller(store, interval=0)
    journal = StoreJournal(store, "run-1", completed={}, begun={}, poller=poller)
    await asyncio.sleep(0.001)
    journal.cancelled()
    task = poller._task
    assert task is not None and not task.done()
    await journal.close()
    assert task.done() and not task.cancelled()


async def test_polls_no_more_often_than_the_interval(store: Store) -> None:
    await store.create_run(make_run())
    poller = CancelPoller(store, interval=60)
    journal = StoreJournal(store, "run-1", completed={}, begun={}, poller=poller)
    await store.update_run("run-1", status="cancelled")
    for _ in range(100):
        assert not journal.cancelled()
    assert poller.reads == 0
    journal.cancel()  # an in-process cancel needs no read
    assert journal.cancelled()
    await journal.close()


async def test_a_journal_alone_gets_its_own_poller(store: Store) -> None:
    await store.create_run(make_run())
    journal = StoreJournal(store, "run-1", completed={}, begun={})
    journal._poller.interval = 0
    await store.update_run("run-1", status="cancelled")
    journal.cancelled()
    await _settle(journal._poller)
    assert journal.cancelled()
    await journal.close()


def test_a_runner_shares_one_poller(store: Store) -> None:
    runner = Runner(store)
    assert isinstance(runner._cancels, CancelPoller)
    assert runner._cancels.store is store
