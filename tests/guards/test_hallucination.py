"""Orchestrator hallucination: typed, recoverable errors; re-ask with the problems; fallback.

Also the end-to-end checks of the choke-point hooks proposed with the guards
(rejected outputs, tool calls, failed-step provenance); they are skipped until the
runtime reports them, and run by themselves once it does.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrion.agents.function import FunctionAgent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.agents.tool import tool
from orchestrion.contracts.contract import Contract
from orchestrion.errors import LoopDetected, PlanInvalid
from orchestrion.guards.progress import ProgressGuard
from orchestrion.patterns.orchestrate import Plan, orchestrate
from orchestrion.providers.base import ToolCall
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Doc(BaseModel):
    text: str


def task(agent: str, **input: Any) -> dict[str, Any]:
    return {"agent": agent, "input": input}


GOOD = {"tasks": [task("search", text="a"), task("search", text="b")]}
GHOST = {"tasks": [task("search", text="a"), task("ghost", text="b")]}
BAD_ARGS = {"tasks": [task("search", txt="a")]}
TOO_MANY = {"tasks": [task("search", text=str(i)) for i in range(5)]}


def agents(*plans: Any) -> list[Any]:
    planner = StubAgent("planner", Contract(Doc, Plan), script=list(plans), strict=True)
    search = FunctionAgent(lambda d: Doc(text=f"found {d.text}"), Contract(Doc, Doc), name="search")
    return [planner, search]


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        (GHOST, "task 1: unknown agent 'ghost'; allowed workers: search"),
        (BAD_ARGS, "task 0: input for 'search' does not match Doc"),
        (TOO_MANY, "the plan has 5 tasks; at most 3 are allowed"),
    ],
)
async def test_a_bad_plan_is_re_asked_with_its_problems_then_recovers(plan, problem):
    team = agents(plan, GOOD)
    wf = Workflow(orchestrate("planner", workers=["search"], max_workers=3), agents=team)
    result = await wf.run({"text": "q"})
    assert result.ok, result.error
    planner = team[0]
    assert planner.calls == 2
    (violation,) = result.events_of("contract.violated")
    assert violation.repairing and problem in violation.errors[0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("plan", [GHOST, BAD_ARGS, TOO_MANY])
async def test_a_plan_still_bad_is_a_typed_error_before_any_worker(plan):
    team = agents(plan, plan)
    wf = Workflow(
        orchestrate("planner", workers=["search"], max_workers=3),
        agents=team,
        policy=Policy(guards=()),
    )
    result = await wf.run({"text": "q"})
    err = result.error
    assert isinstance(err, PlanInvalid) and (err.step, err.agent) == (
        "orchestrate/planner",
        "planner",
    )
    assert err.problems and "re-asked" in err.hint
    assert "search" not in result.calls_by_agent  # no worker started


supports_fallback = "fallback" in inspect.signature(orchestrate).parameters


@pytest.mark.skipif(not supports_fallback, reason="needs orchestrate(fallback=...) (patch)")
async def test_a_declared_fallback_answers_when_no_valid_plan_comes():
    class Results(BaseModel):
        results: list[dict]

    team = agents(GHOST, GHOST)
    writer = FunctionAgent(lambda r: Doc(text="synthesized"), Contract(Results, Doc), name="writer")
    solo = FunctionAgent(lambda d: Doc(text=f"solo: {d.text}"), Contract(Doc, Doc), name="solo")
    flow = orchestrate(
        "planner", workers=["search"], synthesizer="writer", max_workers=3, fallback="solo"
    )  # type: ignore[call-arg]
    result = await Workflow(flow, agents=[*team, writer, solo]).run({"text": "q"})
    assert result.ok and result.output == Doc(text="solo: q")
    assert result.step("orchestrate[fallback]/solo").ok
    decision = next(e for e in result.events_of("decision") if "fallback" in e.reason)  # type: ignore[attr-defined]
    assert decision.chosen == ("solo",) and decision.rejected == ("planner",)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- hook checks


async def _runtime_calls(hook: str) -> bool:
    """Whether the choke point calls the optional guard hook ``hook``."""
    seen: list[str] = []

    class Spy:
        def before(self, *a: Any) -> None: ...
        def failed(self, *a: Any) -> None: ...
        def succeeded(self, *a: Any) -> None: ...
        def finished(self, *a: Any) -> None: ...

    setattr(Spy, hook, lambda self, *a: seen.append(hook))

    @tool
    def ping() -> str:
        return "pong"

    async def body(d: Doc, ctx: Any) -> Doc:
        await ctx.use("ping", {})
        return d

    a = StubAgent("a", Contract(Doc, Doc), script=[{"nope": 1}, {"text": "ok"}])
    b = FunctionAgent(body, Contract(Doc, Doc), name="b", tools=["ping"])
    policy = Policy(guards=(Spy(),))
    await Workflow("a", agents=[a], policy=policy).run({"text": "q"})
    await Workflow("b", agents=[b], tools=[ping], policy=policy).run({"text": "q"})
    return bool(seen)


async def test_an_agent_stuck_on_the_same_tool_call_is_stopped():
    if not await _runtime_calls("tool_used"):
        pytest.skip("needs the choke point to report tool calls (guard.tool_used patch)")

    @tool
    def search(q: str, page: int = 1) -> str:
        return "no results"

    same = [ToolCall(id=f"c{i}", name="search", arguments={"q": "x"}) for i in range(6)]
    pages = [
        ToolCall(id=f"p{i}", name="search", arguments={"q": "x", "page": i}) for i in range(1, 6)
    ]

    def llm(script: list[Any]) -> LLMAgent:
        return LLMAgent(
            "reader",
            instructions="x",
            provider=ScriptedProvider(script),
            contract=Contract(Doc, Doc),
            tools=["search"],
            max_tool_rounds=8,
        )

    policy = Policy(guards=(ProgressGuard(),))
    stuck = await Workflow("reader", agents=[llm(same)], tools=[search], policy=policy).run(
        {"text": "q"}
    )
    assert isinstance(stuck.error, LoopDetected) and stuck.error.kind == "tool-repeat"
    paged = await Workflow(
        "reader", agents=[llm([*pages, {"text": "done"}])], tools=[search], policy=policy
    ).run({"text": "q"})
    assert paged.ok, paged.error  # a paginated tool with new arguments is progress


async def test_an_orchestrator_repeating_a_rejected_plan_is_stopped():
    if not await _runtime_calls("rejected"):
        pytest.skip("needs the choke point to report rejected outputs (guard.rejected patch)")
    team = agents(GHOST, GHOST, GHOST, GHOST)
    wf = Workflow(
        orchestrate("planner", workers=["search"], max_workers=3, max_replans=3),
        agents=team,
        policy=Policy(guards=(ProgressGuard(),)),
    )
    result = await wf.run({"text": "q"})
    err = result.error
    assert team[0].calls == 2  # the identical re-plan is not asked for a third and fourth time
    assert (isinstance(err, LoopDetected) and err.kind == "replan") or (
        isinstance(err, PlanInvalid)
        and "the planner returned the same rejected plan again" in err.problems
    )
