"""Durable runs on every store: journal before ack, resume without repeating work, cancel."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from orchestrion.agents.human import HumanAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.durable import Runner
from orchestrion.errors import (
    ApprovalRejected,
    Cancelled,
    DefinitionChanged,
    InputError,
    RunNotResumable,
)
from orchestrion.patterns.chain import chain
from orchestrion.patterns.parallel import parallel
from orchestrion.runtime.policy import Policy
from orchestrion.store import ApprovalNotPending, UnknownRun
from orchestrion.workflow import Workflow


class Doc(BaseModel):
    text: str


def s(name, script=(), **kw):
    return StubAgent(name, Contract(Doc, Doc), script=script, **kw)


def counted_flow():
    a = s("a", [lambda d: Doc(text=d.text + "+a")] * 5)
    b = s("b", [RuntimeError("b is down"), lambda d: Doc(text=d.text + "+b")])
    c = s("c", [lambda d: Doc(text=d.text + "+c")] * 5)
    wf = Workflow(chain("a", parallel("b", "c"), name="pipeline"), agents=[a, b, c],
                  policy=Policy(retry=Policy().retry.__class__(max_attempts=1)))
    return wf, a, b, c


async def test_failed_run_resumes_without_repeating_completed_steps(backend):
    wf, a, b, c = counted_flow()
    async with backend.make() as store:
        first = await Runner(store).run(wf, {"text": "x"})
        assert first.status == "failed"
        assert (await store.get_run(first.run_id)).status == "failed"
    async with backend.make() as store:  # a new process, as far as the store can tell
        if not backend.durable:
            pytest.skip("memory keeps nothing across store instances")
        second = await Runner(store).resume(first.run_id, wf)
        assert second.ok, second.error
        assert (a.calls, b.calls, c.calls) == (1, 2, 1)
        statuses = {st.key: st.status for st in second.steps}
        assert statuses["pipeline[0]/a"] == "replayed"
        assert statuses["pipeline[1]/parallel[1]/c"] == "replayed"
        assert statuses["pipeline[1]/parallel[0]/b"] == "succeeded"
        assert second.usage_by_agent == {}  # stubs cost nothing; replays cost nothing either
        events = await store.events(first.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no gaps
        assert (await store.get_run(first.run_id)).status == "succeeded"


async def test_pause_for_a_human_survives_a_restart_and_takes_the_edit(backend):
    h = HumanAgent("editor", Contract(Doc, Doc), prompt="polish this")
    after = s("after", [lambda d: Doc(text=d.text.upper())])
    wf = Workflow(chain("editor", "after"), agents=[h, after])
    async with backend.make() as store:
        paused = await Runner(store).run(wf, {"text": "draft"})
        assert paused.status == "paused"
        (pending,) = paused.pending
        assert pending["prompt"] == "polish this" and pending["input"] == {"text": "draft"}
        assert (await store.get_run(paused.run_id)).status == "paused"
    if not backend.durable:
        return
    async with backend.make() as store:
        runner = Runner(store)
        (request,) = await store.pending_approvals(paused.run_id)
        await runner.decide(request.request_id, decision="edited", by="dana",
                            edited={"text": "final"})
        with pytest.raises(ApprovalNotPending):
            await runner.decide(request.request_id, decision="approved", by="mallory")
        done = await runner.resume(paused.run_id, wf)
        assert done.ok and done.output == Doc(text="FINAL")
        decided = await store.get_approval(request.request_id)
        assert decided.decided_by == "dana" and decided.status == "edited"


async def test_rejection_ends_the_run_with_a_typed_error(store):
    h = HumanAgent("approver", Contract(Doc, Doc), prompt="ok?")
    wf = Workflow("approver", agents=[h])
    runner = Runner(store)
    paused = await runner.run(wf, {"text": "x"})
    await runner.decide(paused.pending[0]["request_id"], decision="rejected", by="ops",
                        reason="not now")
    failed = await runner.resume(paused.run_id, wf)
    assert isinstance(failed.error, ApprovalRejected)
    assert failed.error.by == "ops" and "not now" in str(failed.error)


async def test_bad_requests_get_typed_errors(store):
    wf, *_ = counted_flow()
    runner = Runner(store)
    with pytest.raises(UnknownRun):
        await runner.resume("run_nope", wf)
    with pytest.raises(InputError):
        await runner.run(wf, {"nope": 1})
    assert await store.list_runs() == []  # rejected input is never journaled
    ok_wf = Workflow("a", agents=[s("a")])
    done = await runner.run(ok_wf, {"text": "x"})
    with pytest.raises(RunNotResumable):
        await runner.resume(done.run_id, ok_wf)


async def test_changed_definition_is_refused_unless_forced(store):
    wf = Workflow("a", agents=[s("a", [RuntimeError("boom")] * 3)],
                  policy=Policy(max_repairs=0))
    runner = Runner(store)
    failed = await runner.run(wf, {"text": "x"})
    changed = Workflow(chain("a"), agents=[s("a")])
    with pytest.raises(DefinitionChanged) as info:
        await runner.resume(failed.run_id, changed)
    assert "force" in str(info.value)
    assert (await runner.resume(failed.run_id, changed, force=True)).ok


async def test_cancel_stops_new_calls_and_is_final(store):
    gate = asyncio.Event()

    async def slow(d):
        await gate.wait()
        return Doc(text="slow")

    first = s("first", [slow])
    second = s("second")
    wf = Workflow(chain("first", "second"), agents=[first, second])
    runner = Runner(store)
    task = asyncio.create_task(runner.run(wf, {"text": "x"}))
    while not runner._live:
        await asyncio.sleep(0.005)
    (run_id,) = runner._live
    await runner.cancel(run_id)
    gate.set()
    result = await task
    assert result.status == "cancelled"
    assert second.calls == 0  # no side effect starts after the cancel
    assert (await store.get_run(run_id)).status == "cancelled"
    with pytest.raises(RunNotResumable):
        await runner.resume(run_id, wf)
    assert Cancelled  # the signal type the run ended on is not an error


async def test_a_timed_out_side_effect_is_not_repeated_without_confirmation(backend):
    from orchestrion import Retry, agent

    effects = []

    @agent(idempotent=False, timeout_s=0.05)
    async def pay(d: Doc) -> Doc:
        effects.append(d.text)  # the effect happens ...
        if len(effects) == 1:
            await asyncio.sleep(1)  # ... then the step times out mid-flight
        return Doc(text="paid")

    wf = Workflow(chain("pay"), agents=[pay], policy=Policy(retry=Retry(max_attempts=1)))
    async with backend.make() as store:
        runner = Runner(store)
        first = await runner.run(wf, {"text": "x"})
        assert first.status == "failed"
        paused = await runner.resume(first.run_id, wf)
        assert paused.status == "paused" and effects == ["x"]  # a human must confirm
        (request,) = await store.pending_approvals(first.run_id)
        assert request.action["kind"] == "rerun"
        await runner.decide(request.request_id, decision="approved", by="ops")
        done = await runner.resume(first.run_id, wf)
        assert done.ok and effects == ["x", "x"]


async def test_a_store_fault_after_the_flow_never_leaves_the_run_looking_live():
    from orchestrion.store import MemoryStore, StoreUnavailable

    class FlakyEvents(MemoryStore):
        async def append_events(self, run_id, events):
            raise StoreUnavailable("disk full", hint="free some space")

    async with FlakyEvents() as store:
        wf = Workflow("a", agents=[s("a")])
        with pytest.raises(StoreUnavailable):
            await Runner(store).run(wf, {"text": "x"})
        (run,) = await store.list_runs()
        assert run.status == "failed" and "disk full" in run.error["message"]
