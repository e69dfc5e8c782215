"""Fault injection: every multi-agent failure mode, at several positions of every pattern.

Table-driven: a case is (mode, flow shape, position).  Every case runs twice:

* guard **on**: the failure is caught, attributed (error type, step, agent; and
  ``explain`` names the same agent) and the work that finished before it is still
  on ``result.partial``;
* guard **off**: the failure is *observed* (the loop burns its whole bound, the
  hung run never returns, the oversize request reaches the provider, the broken
  agent is called again, the budget is overspent, ...), so no case passes
  vacuously.

Modes apply where the failure can happen: loops in refine/handoff (and refine
loops nested at each position of chain/route/parallel; orchestrator re-plans),
conflicts where branches are merged, plan hallucination where a planner
delegates; hangs, cascades, context overflow and cost explosion everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fault_shapes import (
    DOC,
    INPUT,
    SHAPES,
    Doc,
    GenIn,
    Review,
    Shape,
    Synthesis,
    Verdict,
    WindowProvider,
    critic,
    draft_number,
    forward,
    llm_slot,
    paging_responder,
    passthrough,
    synth,
)

from orchestrion.agents.function import FunctionAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.agents.tool import tool
from orchestrion.contracts.contract import Contract
from orchestrion.errors import (
    AgentFailed,
    BudgetExceeded,
    CircuitOpen,
    ConflictUnresolved,
    ContextOverflow,
    ContractViolation,
    LoopBoundReached,
    LoopDetected,
    PlanInvalid,
    ProviderError,
    RunError,
    StepTimeout,
    UnknownAgent,
)
from orchestrion.guards.breaker import CircuitBreaker
from orchestrion.guards.budget import Budget
from orchestrion.guards.conflicts import token_jaccard
from orchestrion.guards.progress import ProgressGuard
from orchestrion.guards.retry import NO_RETRY
from orchestrion.guards.spend import SpendApproval
from orchestrion.patterns.merge import Merge, escalate, vote
from orchestrion.patterns.orchestrate import Plan, orchestrate
from orchestrion.patterns.parallel import Parallel
from orchestrion.patterns.refine import refine
from orchestrion.runtime.policy import Policy
from orchestrion.runtime.result import RunResult
from orchestrion.tracing.explain import explain, root_error

NESTABLE = ("chain", "route", "parallel")
ALL = tuple(SHAPES)

# --------------------------------------------------------------------------- shared checks


def caught(
    result: RunResult, err_type: type[RunError], *, step: str, agent: str, intact: list[str]
) -> Any:
    """The run failed with ``err_type`` at ``step``/``agent``; finished work is on partial."""
    assert result.status == "failed", (result.status, result.output)
    err = root_error(result.error)  # type: ignore[arg-type]
    assert isinstance(err, err_type), repr(result.error)
    assert (err.step, err.agent) == (step, agent), str(err)
    missing = set(intact) - set(result.partial)
    assert not missing, f"finished work lost: {missing}"
    assert explain(result).culprit_agent == agent, explain(result).render()
    return err


async def downstream(shape: Shape, slot: str) -> set[str]:
    """Healthy steps that need the slot's output (they must never run after it fails)."""
    healthy = await shape.build().run(INPUT)
    order = [s.key for s in healthy.steps]
    key = shape.key(slot)
    later = order[order.index(key) + 1 :] if key in order else ()
    return set(later) - set(shape.before(slot))


def keys(result: RunResult) -> set[str]:
    return {s.key for s in result.steps}


# --------------------------------------------------------------------------- hangs


def hang_case(scope: str) -> Callable[[Shape, str, bool], Awaitable[None]]:
    async def case(shape: Shape, slot: str, on: bool) -> None:
        hung = StubAgent(slot, shape.contracts[slot], delay_s=3600)
        key = shape.key(slot)
        if not on:
            wf = shape.build(
                {slot: hung},
                policy=Policy(step_timeout_s=None, run_timeout_s=None, retry=NO_RETRY, guards=()),
            )
            with pytest.raises(TimeoutError):  # the run never comes back on its own
                await asyncio.wait_for(wf.run(INPUT), 0.1)
            assert hung.calls == 1
            return
        policy = Policy(
            step_timeout_s=0.05 if scope == "step" else None,
            run_timeout_s=0.1 if scope == "run" else None,
            retry=NO_RETRY,
            guards=(),
        )
        node = {"timeout_s": 0.1} if scope == "node" else {}
        result = await shape.build({slot: hung}, node=node, policy=policy).run(INPUT)
        err = caught(result, StepTimeout, step=key, agent=slot, intact=shape.before(slot))
        # A step timeout fails the step; a branch or run timeout cancels it (recorded).
        assert result.step(key).status == ("failed" if scope == "step" else "cancelled")
        node_kind = {"route": "chain"}.get(shape.name, shape.name)  # route: its branch chain
        assert err.scope == scope if scope != "node" else err.scope.startswith(f"{node_kind} ")

    return case


# --------------------------------------------------------------------------- loops


def stalling(stall_from: int, variant: bool = False) -> FunctionAgent:
    """A generator that stops improving at round ``stall_from`` (optionally re-wording it)."""

    def gen(g: GenIn) -> Doc:
        n = min(draft_number(g.previous), stall_from)
        text = f"draft {n}"
        if variant and g.previous is not None:  # same draft, other case and spacing
            text = f"  DRAFT   {n} " if g.previous.text == text else text
        return Doc(text=text)

    return FunctionAgent(gen, Contract(GenIn, Doc), name="gen")


def _critic() -> FunctionAgent:
    return FunctionAgent(critic, Contract(Review, Verdict), name="critic")


def _policy(on: bool, *guards: Any, **kw: Any) -> Policy:
    return Policy(retry=NO_RETRY, guards=tuple(guards) if on else (), **kw)


async def loop_case(shape: Shape, pos: str, on: bool) -> None:
    if shape.name == "refine":
        await _refine_stall(shape, pos, on)
    elif shape.name == "handoff":
        await _ping_pong(shape, pos, on)
    elif shape.name == "orchestrate":
        await _replan(on)
    else:
        await _nested_stall(shape, pos, on)


async def _refine_stall(shape: Shape, pos: str, on: bool) -> None:
    k = int(pos[0])
    wf = shape.build(
        {"gen": stalling(k, variant=pos.endswith("~"))}, policy=_policy(on, ProgressGuard())
    )
    result = await wf.run(INPUT)
    if not on:
        assert isinstance(result.error, LoopBoundReached)
        assert result.calls_by_agent["gen"] == 4  # every round of the bound burned
        return
    err = caught(
        result,
        LoopDetected,
        step=f"refine[{k + 1}]/gen",
        agent="gen",
        intact=[f"refine[{r}]/{a}" for r in range(k + 1) for a in ("gen", "critic")],
    )
    assert err.kind == "stalled" and err.cycle == (f"refine[{k}]/gen", f"refine[{k + 1}]/gen")
    assert result.calls_by_agent["gen"] == k + 2


async def _nested_stall(shape: Shape, slot: str, on: bool) -> None:
    wf = shape.build(
        {"gen": stalling(0), "critic": _critic()},
        flows={slot: refine("gen", "critic", max_rounds=4)},
        policy=_policy(on, ProgressGuard()),
    )
    result = await wf.run(INPUT)
    if not on:
        assert isinstance(root_error(result.error), LoopBoundReached)  # type: ignore[arg-type]
        assert result.calls_by_agent["gen"] == 4
        return
    inner = shape.prefix(slot)
    caught(
        result,
        LoopDetected,
        step=inner + "refine[1]/gen",
        agent="gen",
        intact=[*shape.before(slot), inner + "refine[0]/gen", inner + "refine[0]/critic"],
    )
    assert result.calls_by_agent["gen"] == 2


BOUNCE = {  # slot -> (who it hands back to, where the loop is caught, how)
    "h0": ("h0", "handoff[2]/h0", "repeat"),
    "h1": ("h0", "handoff[3]/h1", "ping-pong"),
    "h2": ("h1", "handoff[4]/h2", "ping-pong"),
}


async def _ping_pong(shape: Shape, slot: str, on: bool) -> None:
    back, where, kind = BOUNCE[slot]
    bouncer = FunctionAgent(forward(back), shape.contracts[slot], name=slot)
    result = await shape.build({slot: bouncer}, policy=_policy(on, ProgressGuard())).run(INPUT)
    if not on:
        assert isinstance(result.error, LoopBoundReached)
        assert result.calls == 7  # max_handoffs=6: every transfer burned
        return
    turn = int(where.split("[")[1].split("]")[0])
    intact = [s.key for s in result.steps if s.ok and int(s.key[8]) < turn]
    err = caught(result, LoopDetected, step=where, agent=slot, intact=intact)
    assert err.kind == kind and err.cycle[-1] == where
    assert len(intact) == turn
    assert result.calls == turn + 1


BAD_PLAN = {"tasks": [{"agent": "ghost", "input": {"text": "q"}}], "reason": "same again"}


async def choke_point_reports_rejections() -> bool:
    """Whether the runtime calls ``guard.rejected`` (the patch proposed with this suite)."""
    seen: list[str] = []

    class Spy:
        def before(self, *a: Any) -> None: ...
        def failed(self, *a: Any) -> None: ...
        def succeeded(self, *a: Any) -> None: ...
        def finished(self, *a: Any) -> None: ...
        def rejected(self, ctx: Any, agent: str, *a: Any) -> None:
            seen.append(agent)

    a = StubAgent("a", DOC, script=[{"nope": 1}, {"text": "ok"}])
    from orchestrion.workflow import Workflow

    await Workflow("a", agents=[a], policy=Policy(guards=(Spy(),))).run(INPUT)
    return bool(seen)


async def _replan(on: bool) -> None:
    shape = SHAPES["orchestrate"]
    plans = StubAgent("planner", Contract(Doc, Plan), script=[BAD_PLAN] * 4, strict=True)
    wf = shape.build(
        {"planner": plans}, node={"max_replans": 3}, policy=_policy(on, ProgressGuard())
    )
    if on and not await choke_point_reports_rejections():
        pytest.skip("needs the choke point to report rejected outputs (guard.rejected patch)")
    result = await wf.run(INPUT)
    if not on:
        assert isinstance(result.error, PlanInvalid)
        assert plans.calls == 4  # re-asked with the same errors, same plan, every time
        return
    assert plans.calls == 2  # stopped at the first identical re-plan, not after 4
    err = root_error(result.error)  # type: ignore[arg-type]
    if isinstance(err, PlanInvalid):  # orchestrate reports the loop as its own typed error
        assert any("same rejected plan again" in p for p in err.problems)
        caught(result, PlanInvalid, step="orchestrate/planner", agent="planner", intact=[])
    else:
        err = caught(result, LoopDetected, step="orchestrate/planner", agent="planner", intact=[])
        assert err.kind == "replan"


# --------------------------------------------------------------------------- conflicts

AGREE = ("Paris is the capital of France", "The capital of France is Paris.")
DISSENT = "Lyon is the capital of France"
SPLIT = ("Paris is the capital", "Lyon it is, without doubt", "Marseille, surely")


class FirstWins(Merge):
    """What a framework without conflict handling does: one branch wins, silently."""

    name = "first"

    def output_model(self, cc, outputs, input_model, where, optional):
        return next(m for m in outputs.values() if m is not None)

    async def merge(self, ctx, env, scope, key, results):
        return next(iter(results.values()))


def answering(text: str) -> Callable[[Doc], Doc]:
    return lambda d: Doc(text=text)


def voters(answers: tuple[str, ...]) -> dict[str, FunctionAgent]:
    return {f"v{j}": FunctionAgent(answering(a), DOC, name=f"v{j}") for j, a in enumerate(answers)}


def vote_answers(dissent_at: int) -> tuple[str, ...]:
    answers = list(AGREE)
    answers.insert(dissent_at, DISSENT)
    return tuple(answers)


async def conflict_vote_case(shape: Shape, slot: str, on: bool) -> None:
    j = shape.slots.index(slot)
    merge = vote(similarity=token_jaccard, threshold=0.8) if on else vote()
    inner = Parallel({f"v{i}": f"v{i}" for i in range(3)}, merge=merge)
    result = await shape.build(voters(vote_answers(j)), flows={slot: inner}).run(INPUT)
    where = shape.prefix(slot) + "parallel"
    dissenter = f"{where}[{j}]/v{j}"
    if not on:  # the two agreeing answers are worded differently: no majority, run lost
        assert isinstance(root_error(result.error), ConflictUnresolved)  # type: ignore[arg-type]
        return
    assert result.ok, result.error
    assert "Paris" in str(result.output) and "Lyon" not in str(result.output)
    (conflict,) = [e for e in result.events_of("disagreement") if e.step == where]
    assert dissenter in dict(conflict.values)  # type: ignore[attr-defined]
    (decision,) = [e for e in result.events_of("decision") if e.step == where]
    assert decision.rejected == (f"v{j}",)  # type: ignore[attr-defined]


async def conflict_escalate_case(shape: Shape, slot: str, on: bool) -> None:
    merge = escalate(similarity=token_jaccard, threshold=0.8) if on else FirstWins()
    inner = Parallel({f"v{i}": f"v{i}" for i in range(3)}, merge=merge)
    wf = shape.build(voters(SPLIT), flows={slot: inner})
    result = await wf.run(INPUT)
    where = shape.prefix(slot) + "parallel"
    if not on:  # an arbitrary answer went through and nothing says there was a conflict
        assert result.ok and not result.pending
        assert not result.events_of("disagreement")
        return
    assert result.status == "paused"
    (request,) = result.pending
    assert request["step"] == where + "/escalate"
    candidates = request["payload"]["candidates"]
    assert {c["source"] for c in candidates.values()} == {f"{where}[{i}]/v{i}" for i in range(3)}
    assert set(shape.before(slot)) <= set(result.partial)
    resumed = await wf.run(INPUT, answers={request["step"]: "v1"})
    assert resumed.ok and "Lyon" in str(resumed.output)


# --------------------------------------------------------------------------- context overflow


@tool
def page(n: int) -> str:
    """One page of a long document."""
    return f"page {n}: " + "lorem ipsum dolor sit amet " * 80  # ~2,200 characters


WINDOW = 1400


def overflow_case(policy: str) -> Callable[[Shape, str, bool], Awaitable[None]]:
    async def case(shape: Shape, slot: str, on: bool) -> None:
        contract = shape.contracts[slot]
        provider = WindowProvider(
            paging_responder(contract, shape.healthy[slot], pages=4),
            window=WINDOW,
            declared=WINDOW if on else None,
        )
        agent = llm_slot(shape, slot, provider, overflow=policy)
        result = await shape.build({slot: agent}, tools=[page]).run(INPUT)
        if not on:  # nobody knew the window: the oversize request was sent and refused
            assert provider.largest > WINDOW
            assert isinstance(root_error(result.error), ProviderError)  # type: ignore[arg-type]
            return
        assert provider.requests and provider.largest <= WINDOW  # never sent too large
        if policy == "fail":
            err = caught(
                result, ContextOverflow, step=shape.key(slot), agent=slot, intact=shape.before(slot)
            )
            assert err.limit == WINDOW - 200 and err.measured > err.limit
            return
        assert result.ok, result.error
        pruned = [e for e in result.events_of("decision") if e.pattern == "context_window"]  # type: ignore[attr-defined]
        assert pruned and pruned[0].step == shape.key(slot)  # type: ignore[attr-defined]

    return case


# --------------------------------------------------------------------------- cost explosion


@tool
def note(n: int) -> str:
    """A short note."""
    return f"note {n}: " + "x" * 400


TOKENS = 1500


def _spender(shape: Shape, slot: str) -> tuple[Any, WindowProvider]:
    """An LLM agent in ``slot`` that reads six notes, its transcript growing every round."""
    respond = paging_responder(shape.contracts[slot], shape.healthy[slot], pages=6, tool="note")
    provider = WindowProvider(respond, window=10**6, declared=10**6)
    return llm_slot(shape, slot, provider, tool="note"), provider


async def cost_case(shape: Shape, slot: str, on: bool) -> None:
    agent, _ = _spender(shape, slot)
    policy = Policy(
        retry=NO_RETRY,
        budget=Budget(calls=500, tokens=TOKENS) if on else Budget(calls=500),
        guards=(),
    )
    result = await shape.build({slot: agent}, tools=[note], policy=policy).run(INPUT)
    if not on:  # the agent's transcript grows every round: far over what was affordable
        assert result.usage.tokens > TOKENS
        return
    err = caught(
        result, BudgetExceeded, step=shape.key(slot), agent=slot, intact=shape.before(slot)
    )
    assert err.dimension == "tokens" and err.before_call  # refused before it was spent
    assert result.usage.tokens <= TOKENS
    assert result.usage.tokens > 0  # the spend so far is reported


async def approval_case(shape: Shape, slot: str, on: bool) -> None:
    agent, provider = _spender(shape, slot)
    guard = SpendApproval(tokens=100)
    wf = shape.build({slot: agent}, tools=[note], policy=_policy(on, guard))
    result = await wf.run(INPUT)
    if not on:
        assert result.ok and not result.pending and result.usage.tokens > 100
        return
    assert result.status == "paused" and provider.calls == 0
    (request,) = result.pending
    assert request["step"] == shape.key(slot) + "#spend" and request["agent"] == slot
    assert set(shape.before(slot)) <= set(result.partial)
    resumed = await wf.run(INPUT, answers={request["step"]: True})
    assert resumed.ok and resumed.usage.tokens > 100


# --------------------------------------------------------------------------- hallucination


def bad_plan(kind: str, at: int, workers: tuple[str, ...]) -> dict[str, Any]:
    tasks = [{"agent": w, "input": {"text": "q"}, "id": w} for w in workers]
    if kind == "unknown":
        tasks[at]["agent"] = "ghost"
    elif kind == "args":
        tasks[at]["input"] = {"txt": "q"}
    else:  # too many workers
        tasks.append({"agent": workers[0], "input": {"text": "q"}, "id": "extra"})
    return {"tasks": tasks, "reason": "r"}


def naive_boss(workers: tuple[str, ...]) -> FunctionAgent:
    """An orchestrator without plan validation: it delegates task after task."""

    async def boss(d: Doc, ctx: Any) -> Doc:
        plan = await ctx.call("planner", d)
        results = []
        for t in plan.tasks:
            out = await ctx.call(t.agent, t.input)
            results.append({"agent": t.agent, "id": t.id, "output": out.model_dump()})
        return await ctx.call("synth", {"input": d.model_dump(), "results": results})

    return FunctionAgent(boss, DOC, name="boss")


async def hallucination_case(shape: Shape, pos: str, on: bool) -> None:
    nested = shape.name != "orchestrate"
    workers = ("w0", "w1", "w2") if nested else shape.slots
    kind, at = (pos.split("@")[0], int(pos.split("@")[1])) if "@" in pos else ("unknown", 1)
    plans = StubAgent(
        "planner", Contract(Doc, Plan), script=[bad_plan(kind, at, workers)] * 2, strict=True
    )
    agents: dict[str, Any] = {"planner": plans}
    if nested:
        agents |= {w: FunctionAgent(passthrough(w), DOC, name=w) for w in workers}
        agents["synth"] = FunctionAgent(synth, Contract(Synthesis, Doc), name="synth")
    flows: dict[str, Any] = {}
    slot = pos if nested else ""
    prefix = shape.prefix(slot) if nested else ""
    if on and nested:
        flows[slot] = orchestrate(
            "planner", workers=workers, synthesizer="synth", max_workers=3, concurrency=1
        )
    elif not on:
        agents["boss"] = naive_boss(workers)
        if nested:
            flows[slot] = "boss"
    wf = shape.build(agents, flows=flows)
    if not on and not nested:
        from orchestrion.workflow import Workflow

        wf = Workflow(
            "boss", agents=shape.agents(agents), input=Doc, policy=Policy(retry=NO_RETRY, guards=())
        )
    result = await wf.run(INPUT)
    ran = [s.key for s in result.steps if s.agent in workers and s.ok]
    if not on:  # workers ran (and were paid for) before the bad task blew up, or too many ran
        if kind == "too":
            assert result.ok and len(ran) == 4
        else:
            assert len(ran) == at
            expected = UnknownAgent if kind == "unknown" else ContractViolation
            assert isinstance(root_error(result.error), expected)  # type: ignore[arg-type]
        return
    err = caught(
        result,
        PlanInvalid,
        step=prefix + "orchestrate/planner",
        agent="planner",
        intact=shape.before(slot) if nested else [],
    )
    assert ran == []  # no worker started on a bad plan
    assert plans.calls == 2  # re-asked once with the problems, then a typed failure
    where = f"task {at}" if kind != "too" else "tasks"
    assert any(where in p for p in err.problems), err.problems


# --------------------------------------------------------------------------- cascades


async def cascade_case(shape: Shape, slot: str, on: bool) -> None:
    broken = StubAgent(slot, shape.contracts[slot], script=[RuntimeError("backend down")] * 5)
    breaker = CircuitBreaker(failures=2, reset_after_s=60)
    wf = shape.build({slot: broken}, policy=_policy(on, breaker))
    key = shape.key(slot)
    for _ in range(2):
        first = await wf.run(INPUT)
        caught(first, AgentFailed, step=key, agent=slot, intact=shape.before(slot))
    result = await wf.run(INPUT)
    assert not keys(result) & await downstream(shape, slot)  # nothing ran on the missing output
    if not on:  # the broken agent is called, and fails, every single time
        assert isinstance(root_error(result.error), AgentFailed)  # type: ignore[arg-type]
        assert broken.calls == 3
        return
    err = caught(result, CircuitOpen, step=key, agent=slot, intact=shape.before(slot))
    assert broken.calls == 2 and err.failures == 2 and err.retry_in_s > 0
    assert breaker.state(slot) == "open"


# --------------------------------------------------------------------------- the table

Case = Callable[[Shape, str, bool], Awaitable[None]]

MODES: dict[str, tuple[Case, dict[str, tuple[str, ...]]]] = {
    "hang-step": (hang_case("step"), {s: SHAPES[s].slots for s in ALL}),
    "hang-branch": (hang_case("node"), {s: SHAPES[s].slots for s in ALL}),
    "hang-run": (hang_case("run"), {s: SHAPES[s].slots for s in ALL}),
    "loop": (
        loop_case,
        {
            "refine": ("0", "1", "0~"),
            "handoff": ("h0", "h1", "h2"),
            "orchestrate": ("planner",),
            **{s: SHAPES[s].slots for s in NESTABLE},
        },
    ),
    "conflict-vote": (conflict_vote_case, {s: SHAPES[s].slots for s in NESTABLE}),
    "conflict-escalate": (conflict_escalate_case, {s: SHAPES[s].slots for s in NESTABLE}),
    "overflow-prune": (overflow_case("prune"), {s: SHAPES[s].slots for s in ALL}),
    "overflow-fail": (overflow_case("fail"), {s: SHAPES[s].slots for s in ALL}),
    "hallucination": (
        hallucination_case,
        {
            "orchestrate": ("unknown@0", "unknown@2", "args@0", "args@1", "too-many"),
            **{s: SHAPES[s].slots for s in NESTABLE},
        },
    ),
    "cascade": (cascade_case, {s: SHAPES[s].slots for s in ALL}),
    "cost": (cost_case, {s: SHAPES[s].slots for s in ALL}),
    "cost-approval": (approval_case, {s: SHAPES[s].slots for s in ALL}),
}

CASES = [
    pytest.param(mode, shape, pos, id=f"{mode}-{shape}-{pos}")
    for mode, (_, table) in MODES.items()
    for shape, positions in table.items()
    for pos in positions
]


@pytest.mark.parametrize("guard", ["on", "off"])
@pytest.mark.parametrize(("mode", "shape", "position"), CASES)
async def test_fault(mode: str, shape: str, position: str, guard: str) -> None:
    case, _ = MODES[mode]
    await case(SHAPES[shape], position, guard == "on")


def test_every_pattern_is_covered() -> None:
    covered = {shape for _, (_, table) in MODES.items() for shape in table}
    assert covered == set(ALL)
    assert len(CASES) >= 100


@pytest.mark.parametrize("shape", ALL)
async def test_guards_cause_no_false_positives_on_healthy_flows(shape: str) -> None:
    guards = (ProgressGuard(), CircuitBreaker(failures=1), SpendApproval(usd=1.0))
    healthy = SHAPES[shape].build(policy=Policy(guards=guards, budget=Budget(calls=50)))
    result = await healthy.run(INPUT)
    assert result.ok, result.error
    assert not result.events_of("guard.tripped")
