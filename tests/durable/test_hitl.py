"""HITL levels 0-4: approvals as data, inside parallel and nested patterns, expiry, edits."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.durable import Runner
from orchestrion.errors import ApprovalRejected, ContractViolation
from orchestrion.hitl.levels import Gate, Hitl
from orchestrion.patterns.chain import chain
from orchestrion.patterns.parallel import parallel
from orchestrion.patterns.refine import refine
from orchestrion.runtime.policy import Policy
from orchestrion.store import ApprovalExpired, ApprovalNotPending
from orchestrion.workflow import Workflow


class Doc(BaseModel):
    text: str


class Scored(BaseModel):
    text: str
    confidence: float


class Review(BaseModel):
    draft: Doc


class Verdict(BaseModel):
    accepted: bool
    feedback: str = ""


def s(name, script=(), inp=Doc, out=Doc, **kw):
    return StubAgent(name, Contract(inp, out), script=script, **kw)


def wf(flow, agents, hitl):
    return Workflow(flow, agents=agents, policy=Policy(hitl=hitl))


async def decide_all(runner, run_id, decision="approved", **kw):
    pending = await runner.store.pending_approvals(run_id)
    for a in pending:
        await runner.decide(a.request_id, decision=decision, by="tester", **kw)
    return pending


async def test_level0_never_asks(store):
    w = wf(chain("a", "publish"), [s("a"), s("publish")], Hitl(level=0))
    assert (await Runner(store).run(w, {"text": "x"})).ok


async def test_level1_checkpoint_before_with_edit(store):
    publish = s("publish", [lambda d: d])
    w = wf(chain("draft", "publish"), [s("draft", [{"text": "v1"}]), publish],
           Hitl(level=1, gates=(Gate("publish", prompt="publish this?"),)))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    assert paused.status == "paused" and publish.calls == 0
    (p,) = paused.pending
    assert p["prompt"] == "publish this?" and p["input"] == {"text": "v1"}
    await decide_all(runner, paused.run_id, "edited", edited={"text": "v1, edited"})
    done = await runner.resume(paused.run_id, w)
    assert done.ok and done.output == Doc(text="v1, edited")
    assert publish.inputs == [Doc(text="v1, edited")]


async def test_level1_checkpoint_after_and_reject(store):
    w = wf("writer", [s("writer", [{"text": "rude reply"}])],
           Hitl(level=1, gates=(Gate("writer", when="after"),)))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    assert paused.pending[0]["output"] == {"text": "rude reply"}
    await decide_all(runner, paused.run_id, "rejected", reason="tone")
    failed = await runner.resume(paused.run_id, w)
    assert isinstance(failed.error, ApprovalRejected) and failed.error.step == "writer"


async def test_an_edit_must_satisfy_the_contract(store):
    w = wf("writer", [s("writer")], Hitl(level=1, gates=(Gate("writer", when="after"),)))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    await decide_all(runner, paused.run_id, "edited", edited={"wrong": 1})
    failed = await runner.resume(paused.run_id, w)
    assert isinstance(failed.error, ContractViolation) and failed.error.agent == "human@writer"


async def test_level2_escalates_failures_and_low_confidence(store):
    flaky = s("flaky", [RuntimeError("model down")] * 5, out=Doc)
    unsure = s("unsure", [{"text": "maybe", "confidence": 0.3}], out=Scored)
    w = wf(chain("flaky", "unsure"), [flaky, unsure], Hitl(level=2, threshold=0.5))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    (p,) = paused.pending
    assert p["kind"] == "failure" and "model down" in p["error"]["message"]
    await decide_all(runner, paused.run_id, "edited", edited={"text": "human answer"})
    second = await runner.resume(paused.run_id, w)
    assert second.status == "paused"
    (q,) = second.pending
    assert q["kind"] == "after" and "confidence 0.3" in q["prompt"]
    assert unsure.inputs == [Doc(text="human answer")]
    await decide_all(runner, paused.run_id)
    done = await runner.resume(paused.run_id, w)
    assert done.ok and done.output.text == "maybe"
    assert unsure.calls == 1  # the approved step was journaled, not run again


async def test_level3_alerts_within_budget_and_never_pauses(store):
    agents = [s(f"a{i}", [{"text": "t", "confidence": 0.1}], inp=Scored if i else Doc, out=Scored)
              for i in range(5)]
    w = wf(chain(*[f"a{i}" for i in range(5)]), agents, Hitl(level=3, alert_budget=2))
    result = await Runner(store).run(w, {"text": "x"})
    assert result.ok
    alerts = result.events_of("alert")
    assert len(alerts) == 3 and alerts[-1].suppressed == 1  # 2 alerts, then one notice
    assert (await store.events(result.run_id))[-1].kind == "run.finished"


async def test_level4_every_action_needs_approval(store):
    w = wf(chain("a", "b"), [s("a"), s("b")], Hitl(level=4))
    runner = Runner(store)
    run = await runner.run(w, {"text": "x"})
    asked = []
    while run.status == "paused":
        asked += [p["step"] for p in run.pending]
        await decide_all(runner, run.run_id)
        run = await runner.resume(run.run_id, w)
    assert run.ok and asked == ["chain[0]/a", "chain[1]/b"]


async def test_approvals_in_parallel_and_nested_patterns_surface_and_resolve_independently(store):
    gate = Hitl(level=1, gates=(Gate("left"), Gate("*/refine[0]/writer", when="after")))
    writer = s("writer", [{"text": "draft"}], inp=Doc)
    critic = s("critic", [{"accepted": True}], inp=Review, out=Verdict)
    flow = parallel(left="left", right=chain("prep", refine("writer", "critic", max_rounds=2)))
    w = wf(flow, [s("left", [{"text": "L"}]), s("prep"), writer, critic], gate)
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    steps = sorted(p["step"] for p in paused.pending)
    assert steps == ["parallel[0]/left", "parallel[1]/chain[1]/refine[0]/writer"]
    pending = await store.pending_approvals(paused.run_id)
    right = next(a for a in pending if "writer" in a.step_key)
    await runner.decide(right.request_id, decision="approved", by="a")
    still = await runner.resume(paused.run_id, w)
    assert [p["step"] for p in still.pending] == ["parallel[0]/left"]
    left = next(a for a in pending if a.step_key == "parallel[0]/left")
    await runner.decide(left.request_id, decision="approved", by="b")
    with pytest.raises(ApprovalNotPending):
        await runner.decide(left.request_id, decision="rejected", by="c")
    done = await runner.resume(paused.run_id, w)
    assert done.ok and done.output.left == Doc(text="L")
    assert writer.calls == 1 and critic.calls == 1


async def test_expired_request_cannot_be_approved_and_ends_the_run(store):
    w = wf("a", [s("a")], Hitl(level=1, gates=(Gate("a"),), expires_after_s=0.05))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    await asyncio.sleep(0.1)
    (request,) = await store.pending_approvals(paused.run_id)
    with pytest.raises(ApprovalExpired):
        await runner.decide(request.request_id, decision="approved", by="late")
    failed = await runner.resume(paused.run_id, w)
    assert isinstance(failed.error, ApprovalRejected) and "expired" in str(failed.error)


async def test_a_wait_on_a_human_is_bounded_by_the_expiry_sweep(store):
    w = wf(chain("prep", "a"), [s("prep"), s("a")],
           Hitl(level=1, gates=(Gate("a"),), expires_after_s=0.05))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    assert await runner.expire_overdue(lambda run: w) == []  # not overdue yet
    await asyncio.sleep(0.1)
    (ended,) = await runner.expire_overdue(lambda run: w)
    assert ended.run_id == paused.run_id and ended.status == "failed"
    err = ended.error
    assert isinstance(err, ApprovalRejected) and "expired" in str(err)
    assert err.step == "chain[1]/a" and err.agent == "a"  # the timeout names the waiting step
    assert "chain[0]/prep" in ended.partial
    assert await store.pending_approvals(paused.run_id) == []
    assert (await store.get_run(paused.run_id)).status == "failed"


async def test_an_approved_output_of_a_side_effect_step_is_not_questioned_again(store):
    pay = s("pay", [{"text": "paid"}], idempotent=False)
    w = wf("pay", [pay], Hitl(level=1, gates=(Gate("pay", when="after"),)))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    assert paused.pending[0]["kind"] == "after"
    await decide_all(runner, paused.run_id)
    done = await runner.resume(paused.run_id, w)
    assert done.ok and done.output == Doc(text="paid")
    assert pay.calls == 1  # no spurious "was it interrupted?" question, no second call


async def test_a_failed_expiry_sweep_leaves_nothing_stranded(store):
    w = wf("a", [s("a")], Hitl(level=1, gates=(Gate("a"),), expires_after_s=0.01))
    runner = Runner(store)
    paused = await runner.run(w, {"text": "x"})
    await asyncio.sleep(0.05)

    def broken(run):
        raise LookupError("workflow registry unavailable")

    with pytest.raises(LookupError):
        await runner.expire_overdue(broken)
    assert (await store.get_run(paused.run_id)).status == "paused"
    (ended,) = await runner.expire_overdue(lambda run: w)
    assert ended.status == "failed" and "expired" in str(ended.error)
