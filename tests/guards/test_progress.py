"""ProgressGuard: loop scopes, fingerprints, each kind of no-progress, and no false positives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fault_shapes import Doc, GenIn, Review, Verdict
from pydantic import BaseModel

from orchestrion.agents.function import FunctionAgent, agent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.errors import BudgetExceeded, LoopBoundReached, LoopDetected
from orchestrion.guards.budget import Budget
from orchestrion.guards.fingerprint import canonical_json, fingerprint
from orchestrion.guards.progress import LoopSite, ProgressGuard, loop_site
from orchestrion.patterns.chain import chain
from orchestrion.patterns.debate import debate
from orchestrion.patterns.handoff import handoff
from orchestrion.patterns.parallel import parallel
from orchestrion.patterns.refine import refine
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Page(BaseModel):
    n: int


class Inbound(BaseModel):
    text: str
    handoff_from: str | None = None
    handoff_note: str | None = None


class Reply(BaseModel):
    text: str = ""
    handoff_to: str | None = None
    note: str | None = None


GUARDED = Policy(guards=(ProgressGuard(),))

# --------------------------------------------------------------------------- scopes, fingerprints


@pytest.mark.parametrize(
    ("key", "site"),
    [
        ("refine[3]/writer", LoopSite("refine", "refine", "3", "writer")),
        ("chain[1]/handoff[2]/billing", LoopSite("chain[1]/handoff", "handoff", "2", "billing")),
        (
            "refine[0]/writer/call[1]:pager",
            LoopSite("refine", "refine", "0", "writer/call[1]:pager"),
        ),
        (
            "refine[1]/parallel[0]/debate[4]/a",
            LoopSite("refine[1]/parallel[0]/debate", "debate", "4", "a"),
        ),
        ("chain[2]/writer", None),
        ("parallel[1]/critic", None),
        ("route[go]/chain[0]/a/tool[1]:fetch", None),
    ],
)
def test_loop_site_is_the_innermost_loop_with_its_index_stripped(key, site):
    assert loop_site(key) == site


def test_renamed_loops_are_declared():
    assert loop_site("drafting[2]/writer") is None
    assert loop_site("drafting[2]/writer", loops=("drafting",)) == LoopSite(
        "drafting", "drafting", "2", "writer"
    )


def test_fingerprints_ignore_case_whitespace_key_order_and_integral_floats():
    assert fingerprint(Doc(text="Draft  ONE ")) == fingerprint({"text": "draft one"})
    assert fingerprint({"a": 1, "b": 2.0}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": "x"}) != fingerprint({"a": "y"})
    assert canonical_json({"b": [1.0, " A  b"], "a": None}) == '{"a":null,"b":[1,"a b"]}'


# --------------------------------------------------------------------------- refine


def gen_agent(fn) -> FunctionAgent:
    return FunctionAgent(fn, Contract(GenIn, Doc), name="gen")


def critic_agent(fn) -> FunctionAgent:
    return FunctionAgent(fn, Contract(Review, Verdict), name="critic")


def version(g: GenIn) -> int:
    return 0 if g.previous is None else int(g.previous.text.split()[-1]) + 1


async def test_refine_whose_draft_stops_changing_is_stopped_at_once():
    gen = gen_agent(lambda g: Doc(text="draft 0"))
    critic = critic_agent(lambda r: Verdict(accepted=False, feedback="add sources"))
    wf = Workflow(refine("gen", "critic", max_rounds=10), agents=[gen, critic], policy=GUARDED)
    result = await wf.run({"text": "t"})
    err = result.error
    assert isinstance(err, LoopDetected) and err.kind == "stalled"
    assert err.cycle == ("refine[0]/gen", "refine[1]/gen") and err.agents == ("gen",)
    assert (err.step, err.agent, err.guard) == ("refine[1]/gen", "gen", "progress")
    assert "refine[0]/gen -> refine[1]/gen" in str(err)
    assert result.calls_by_agent == {"gen": 2, "critic": 1}  # not 10 rounds
    (trip,) = result.events_of("guard.tripped")
    assert trip.step == "refine[1]/gen" and trip.guard == "progress"  # type: ignore[attr-defined]


async def test_patience_tolerates_unchanged_drafts():
    gen = gen_agent(lambda g: Doc(text="same"))
    # New feedback every round (a noisy evaluator): the input changes, the draft does not.
    critic = critic_agent(lambda r: Verdict(accepted=r.round == 2, feedback=f"nit {r.round}"))
    policy = Policy(guards=(ProgressGuard(patience=2),))
    result = await Workflow(
        refine("gen", "critic", max_rounds=5), agents=[gen, critic], policy=policy
    ).run({"text": "t"})
    assert result.ok


async def test_converging_refine_with_repeated_feedback_is_not_a_loop():
    gen = gen_agent(lambda g: Doc(text=f"draft {version(g)}"))
    # The same feedback every round while the drafts improve: progress, not a loop.
    critic = critic_agent(lambda r: Verdict(accepted=r.draft.text == "draft 4", feedback="shorter"))
    wf = Workflow(refine("gen", "critic", max_rounds=6), agents=[gen, critic], policy=GUARDED)
    result = await wf.run({"text": "t"})
    assert result.ok and result.output.text == "draft 4"


async def test_paginated_delegation_inside_a_loop_is_progress():
    @agent
    def pager(p: Page) -> Doc:
        return Doc(text="no more results")  # the same answer for different pages

    async def gen(g: GenIn, ctx: Any) -> Doc:
        n = version(g)
        await ctx.call("pager", {"n": n})
        return Doc(text=f"draft {n}")

    critic = critic_agent(lambda r: Verdict(accepted=r.round == 3))
    wf = Workflow(
        refine("gen", "critic", max_rounds=5),
        agents=[FunctionAgent(gen, Contract(GenIn, Doc), name="gen"), critic, pager],
        policy=GUARDED,
    )
    result = await wf.run({"text": "t"})
    assert result.ok, result.error
    assert result.calls_by_agent["pager"] == 4


async def test_the_guard_off_lets_the_loop_burn_its_bound():
    gen = gen_agent(lambda g: Doc(text="draft 0"))
    critic = critic_agent(lambda r: Verdict(accepted=False))
    wf = Workflow(
        refine("gen", "critic", max_rounds=10), agents=[gen, critic], policy=Policy(guards=())
    )
    result = await wf.run({"text": "t"})
    assert isinstance(result.error, LoopBoundReached)
    assert result.calls_by_agent["gen"] == 10


# --------------------------------------------------------------------------- handoff and debate


def h(name: str, fn) -> FunctionAgent:
    return FunctionAgent(fn, Contract(Inbound, Reply), name=name)


async def test_ping_pong_names_the_cycle():
    a = h("a", lambda i: Reply(handoff_to="b", note="yours"))
    b = h("b", lambda i: Reply(handoff_to="a", note="no, yours"))
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=20), agents=[a, b], policy=GUARDED)
    result = await wf.run({"text": "t"})
    err = result.error
    assert isinstance(err, LoopDetected) and err.kind == "ping-pong"
    assert err.agents == ("a", "b")
    assert err.cycle == ("handoff[0]/a", "handoff[1]/b", "handoff[2]/a", "handoff[3]/b")
    assert result.calls == 4


async def test_period_three_cycles_are_found():
    names = ["a", "b", "c"]
    # FunctionAgent treats a second parameter as ctx: bind the target in a closure.
    agents = [
        h(n, (lambda nxt: lambda i: Reply(handoff_to=nxt))(names[(k + 1) % 3]))
        for k, n in enumerate(names)
    ]
    wf = Workflow(handoff("a", names, max_handoffs=30), agents=agents, policy=GUARDED)
    result = await wf.run({"text": "t"})
    err = result.error
    assert isinstance(err, LoopDetected) and err.kind == "ping-pong"
    # b gets what it got on turn 1 and answers the same: the cycle b -> c -> a -> b is named.
    assert err.cycle == ("handoff[1]/b", "handoff[2]/c", "handoff[3]/a", "handoff[4]/b")
    assert err.agents == ("b", "c", "a") and result.calls == 5


async def test_back_and_forth_with_new_information_is_not_a_loop():
    a = h(
        "a",
        lambda i: (
            Reply(handoff_to="b", note=f"retry {i.handoff_note or ''}")
            if len(i.handoff_note or "") < 12
            else Reply(text="done")
        ),
    )
    b = h("b", lambda i: Reply(handoff_to="a", note=f"{i.handoff_note}+"))
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=20), agents=[a, b], policy=GUARDED)
    result = await wf.run({"text": "t"})
    assert result.ok, result.error


async def test_debate_positions_held_across_rounds_are_not_a_loop():
    class Turn(BaseModel):
        input: Doc
        round: int
        positions: list[dict]

    stubborn = FunctionAgent(lambda t: Doc(text="no"), Contract(Turn, Doc), name="x")
    other = FunctionAgent(lambda t: Doc(text="yes"), Contract(Turn, Doc), name="y")

    class Verdicts(BaseModel):
        input: Doc
        positions: list[dict]

    chair = FunctionAgent(lambda v: Doc(text="decided"), Contract(Verdicts, Doc), name="chair")
    wf = Workflow(
        debate(["x", "y"], rounds=4, judge="chair"),
        agents=[stubborn, other, chair],
        policy=GUARDED,
        input=Doc,
    )
    result = await wf.run({"text": "t"})
    assert result.ok, result.error


# --------------------------------------------------------------------------- outside loops


async def test_equal_parallel_outputs_and_a_repeated_chain_agent_are_not_loops():
    @agent
    def norm(d: Doc) -> Doc:
        return Doc(text=d.text.strip().lower())  # idempotent: its output is its next input

    @agent
    def same(d: Doc) -> Doc:
        return Doc(text="42")

    flow = chain("norm", "norm", "norm", parallel(a="same", b="same"))
    result = await Workflow(flow, agents=[norm, same], policy=GUARDED).run({"text": " X "})
    assert result.ok, result.error


# --------------------------------------------------------------------------- delegation recursion


async def test_delegation_back_to_the_caller_with_the_same_input_is_stopped():
    @agent
    async def a(d: Doc, ctx: Any) -> Doc:
        return await ctx.call("b", d)

    @agent
    async def b(d: Doc, ctx: Any) -> Doc:
        return await ctx.call("a", d)  # "not mine, ask a" — with the very same question

    result = await Workflow("a", agents=[a, b], policy=GUARDED).run({"text": "t"})
    err = result.error
    assert isinstance(err, LoopDetected) and err.kind == "recursion"
    assert err.cycle == ("a", "a/call[1]:b", "a/call[1]:b/call[1]:a")
    assert err.agents == ("a", "b", "a") and result.calls == 2  # refused before it ran
    off = await Workflow("a", agents=[a, b], policy=Policy(budget=Budget(calls=40), guards=())).run(
        {"text": "t"}
    )
    assert isinstance(off.error, BudgetExceeded) and off.calls == 40  # only a budget stops it


class N(BaseModel):
    n: int


async def test_recursion_that_makes_progress_is_allowed():
    @agent
    async def down(x: N, ctx: Any) -> N:
        return x if x.n == 0 else await ctx.call("other", {"n": x.n - 1})

    @agent
    async def other(x: N, ctx: Any) -> N:
        return await ctx.call("down", x)

    result = await Workflow("down", agents=[down, other], policy=GUARDED).run({"n": 3})
    assert result.ok and result.output.n == 0


# --------------------------------------------------------------------------- optional hooks


def fake_ctx(run_id: str = "r1") -> Any:
    return SimpleNamespace(run_id=run_id)


def test_rejected_repeats_stop_the_repair_loop():
    guard = ProgressGuard()
    ctx = fake_ctx()
    plan = {"tasks": [{"agent": "ghost", "input": {}}]}
    guard.rejected(ctx, "planner", "orchestrate/planner", plan, ["plan: unknown agent 'ghost'"])
    with pytest.raises(LoopDetected) as info:
        guard.rejected(
            ctx, "planner", "orchestrate/planner", dict(plan), ["plan: unknown agent 'ghost'"]
        )
    assert info.value.kind == "replan" and info.value.agent == "planner"
    other = ProgressGuard()
    other.rejected(ctx, "w", "k", {"a": 1}, ["x: bad"])
    other.rejected(ctx, "w", "k", {"a": 2}, ["x: bad"])  # a different attempt: progress
    with pytest.raises(LoopDetected) as again:
        other.rejected(ctx, "w", "k", {"a": 2}, ["x: bad"])
    assert again.value.kind == "repair"


def test_tool_calls_with_new_arguments_are_progress_repeats_are_not():
    guard = ProgressGuard(tool_repeats=2)
    ctx = fake_ctx()
    for n in range(1, 10):  # pagination: same tool, new page, sometimes the same (empty) result
        guard.tool_used(ctx, "reader", f"s/tool[{n}]:search", "search", {"page": n}, "[]")
    key = "s/tool[{}]:fetch"
    guard.tool_used(ctx, "reader", key.format(10), "fetch", {"url": "u"}, "page")
    guard.tool_used(ctx, "reader", key.format(11), "fetch", {"url": "u"}, "page")  # re-fetch ok
    with pytest.raises(LoopDetected) as info:
        guard.tool_used(ctx, "reader", key.format(12), "fetch", {"url": "u"}, "page")
    err = info.value
    assert err.kind == "tool-repeat" and err.step == "s" and len(err.cycle) == 3


def test_state_is_per_run_and_dropped_when_the_run_finishes():
    guard = ProgressGuard()
    guard.rejected(fake_ctx("r1"), "a", "k", {"x": 1}, ["e"])
    guard.rejected(fake_ctx("r2"), "a", "k", {"x": 1}, ["e"])  # another run: no history
    guard.finished(fake_ctx("r1"))
    guard.rejected(fake_ctx("r1"), "a", "k", {"x": 1}, ["e"])  # history dropped
    assert "r2" in guard._runs and repr(guard).startswith("ProgressGuard(")


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        ProgressGuard(max_period=1)


async def test_a_stub_script_can_drive_a_stall_too():
    gen = StubAgent(
        "gen", Contract(GenIn, Doc), script=[{"text": "A"}, {"text": "B"}, {"text": " b "}]
    )
    critic = critic_agent(lambda r: Verdict(accepted=False))
    result = await Workflow(
        refine("gen", "critic", max_rounds=6), agents=[gen, critic], policy=GUARDED
    ).run({"text": "t"})
    assert isinstance(result.error, LoopDetected) and result.error.step == "refine[2]/gen"
