"""Orchestrate (orchestrator-workers): plans checked before any worker starts, re-asked
with the problems, bounded fan-out, worker failures, synthesis, static checks and bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.durable import Runner
from orchestrion.errors import BranchesFailed, CheckFailed, PlanInvalid
from orchestrion.patterns.chain import chain
from orchestrion.patterns.orchestrate import OrchestrateResult, Plan, TaskResult, orchestrate
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.store import MemoryStore
from orchestrion.workflow import Workflow

# --------------------------------------------------------------------------- models


class Goal(BaseModel):
    topic: str


class Query(BaseModel):
    q: str


class Finding(BaseModel):
    fact: str


class Sum(BaseModel):
    a: int
    b: int


class Total(BaseModel):
    value: int


class Item(BaseModel):
    agent: str
    id: str | None = None
    output: Finding | Total


class Results(BaseModel):
    input: Goal
    results: list[Item]


class Report(BaseModel):
    text: str
    count: int


class FindingItem(BaseModel):
    agent: str
    output: Finding


class OnlyFindings(BaseModel):
    input: Goal
    results: list[FindingItem]


class NotAPlan(BaseModel):
    steps: list[str]


# --------------------------------------------------------------------------- agents


def planner(*plans: Any, **kw: Any) -> StubAgent:
    return StubAgent("planner", Contract(Goal, Plan), script=list(plans), strict=True, **kw)


@agent
def search(query: Query) -> Finding:
    return Finding(fact=f"found {query.q}")


@agent
def add(s: Sum) -> Total:
    return Total(value=s.a + s.b)


def writer() -> StubAgent:
    def write(r: Results) -> Report:
        return Report(
            text=" | ".join(type(i.output).__name__ for i in r.results), count=len(r.results)
        )

    return StubAgent("writer", Contract(Results, Report), script=[write])


def task(agent: str, id: str | None = None, **input: Any) -> dict[str, Any]:
    return {"agent": agent, "input": input, "id": id}


GOOD = {
    "tasks": [task("search", "s1", q="rust"), task("add", "a1", a=2, b=3)],
    "reason": "one lookup and one sum",
}


def flow(**kw: Any):
    kw.setdefault("workers", ["search", "add"])
    kw.setdefault("max_workers", 3)
    return orchestrate("planner", **kw)


def called(result, agent_name: str) -> list[str]:
    return [s.key for s in result.steps if s.agent == agent_name]


# --------------------------------------------------------------------------- normal path


async def test_plan_runs_workers_then_the_synthesizer():
    synth = writer()
    wf = Workflow(flow(synthesizer="writer"), agents=[planner(GOOD), search, add, synth])
    result = await wf.run({"topic": "rust"})
    assert result.ok, result.error
    assert result.output == Report(text="Finding | Total", count=2)
    assert [s.key for s in result.steps] == [
        "orchestrate/planner",
        "orchestrate[0]/search",
        "orchestrate[1]/add",
        "orchestrate[synthesis]/writer",
    ]
    # The synthesizer got {"input", "results": [{"agent", "id", "output"}]} in plan order.
    (seen,) = synth.inputs
    assert seen.input == Goal(topic="rust")
    assert [(i.agent, i.id, i.output) for i in seen.results] == [
        ("search", "s1", Finding(fact="found rust")),
        ("add", "a1", Total(value=5)),
    ]
    (decision,) = result.events_of("decision")
    assert decision.step == "orchestrate/planner" and decision.pattern == "orchestrate"
    assert decision.chosen == ("search", "add") and decision.rejected == ()
    assert decision.reason == "one lookup and one sum"


async def test_workers_inputs_come_from_the_planner_with_its_taint():
    wf = Workflow(flow(synthesizer="writer"), agents=[planner(GOOD), search, add, writer()])
    result = await wf.run({"topic": "rust"}, tainted=True)
    worker = result.step("orchestrate[0]/search")
    assert worker.input == Query(q="rust")
    assert worker.provenance["sources"] == ["orchestrate/planner"]
    assert worker.provenance["taint_sources"] == ["input"]
    synth = result.step("orchestrate[synthesis]/writer")
    assert synth.provenance["sources"] == [
        "orchestrate/planner",
        "orchestrate[0]/search",
        "orchestrate[1]/add",
    ]
    assert synth.provenance["tainted"]


async def test_without_synthesizer_the_output_is_typed_results():
    plan = {"tasks": [task("add", a=1, b=1), task("search", q="x")], "reason": "two"}
    wf = Workflow(
        flow(workers=["search", "add", "spare"]),
        agents=[planner(plan), search, add, StubAgent("spare", Contract(Goal, Total))],
    )
    report = wf.check()
    assert report.ok, report.problems
    result = await wf.run({"topic": "t"})
    out = result.output
    assert isinstance(out, OrchestrateResult) and isinstance(out.results[0], TaskResult)
    assert [(r.agent, r.id, r.output) for r in out.results] == [
        ("add", None, Total(value=2)),
        ("search", None, Finding(fact="found x")),
    ]
    assert report.output_model is type(out)
    (decision,) = result.events_of("decision")
    assert decision.chosen == ("add", "search") and decision.rejected == ("spare",)


async def test_keys_follow_the_scope_and_the_name():
    @agent
    def prep(g: Goal) -> Goal:
        return g

    wf = Workflow(chain("prep", flow(name="team")), agents=[prep, planner(GOOD), search, add])
    result = await wf.run({"topic": "t"})
    assert [s.key for s in result.steps] == [
        "chain[0]/prep",
        "chain[1]/team/planner",
        "chain[1]/team[0]/search",
        "chain[1]/team[1]/add",
    ]


async def test_same_worker_twice_gets_one_key_per_task():
    plan = {"tasks": [task("search", q="a"), task("search", q="b")]}
    result = await Workflow(flow(), agents=[planner(plan), search, add]).run({"topic": "t"})
    assert called(result, "search") == ["orchestrate[0]/search", "orchestrate[1]/search"]
    assert [r.output.fact for r in result.output.results] == ["found a", "found b"]


# --------------------------------------------------------------------------- plan validation


async def test_unknown_agent_is_re_asked_with_the_problem_and_repaired():
    feedback: list[tuple[str, ...]] = []

    @agent(name="planner")
    def plan_it(goal: Goal, ctx) -> Plan:
        if ctx.feedback is None:
            return Plan.model_validate({"tasks": [task("hack", cmd="rm -rf /")]})
        feedback.append(ctx.feedback.errors)
        return Plan.model_validate(GOOD)

    wf = Workflow(flow(), agents=[plan_it, search, add])
    result = await wf.run({"topic": "t"})
    assert result.ok, result.error
    (errors,) = feedback
    assert "unknown agent 'hack'" in errors[0] and "allowed workers: search, add" in errors[0]
    # No worker ran on the bad plan: the only worker steps are the good plan's.
    assert [s.agent for s in result.steps] == ["planner", "search", "add"]
    assert result.step("orchestrate/planner").attempts == 2
    (violation,) = result.events_of("contract.violated")
    assert violation.repairing and violation.step == "orchestrate/planner"


async def test_unknown_agent_twice_is_plan_invalid_and_no_worker_runs():
    bad = {"tasks": [task("hack", q="x"), task("search", q="ok")]}
    wf = Workflow(flow(), agents=[planner(bad, bad), search, add])
    result = await wf.run({"topic": "t"})
    err = result.error
    assert result.status == "failed" and isinstance(err, PlanInvalid)
    assert err.step == "orchestrate/planner" and err.agent == "planner"
    assert err.problems[0] == "task 0: unknown agent 'hack'; allowed workers: search, add"
    # progress detection adds that the planner repeated the plan it was told is wrong
    assert err.problems[1:] == ("the planner returned the same rejected plan again",)
    assert "before any worker started" in str(err)
    assert result.calls_by_agent == {"planner": 2}
    assert called(result, "search") == []
    (decision,) = result.events_of("decision")
    assert decision.chosen == () and "unknown agent 'hack'" in decision.reason


async def test_agent_registered_but_not_a_worker_is_refused():
    plan = {"tasks": [task("writer", text="x", count=1)]}
    wf = Workflow(flow(max_replans=0), agents=[planner(plan), search, add, writer()])
    err = (await wf.run({"topic": "t"})).error
    assert isinstance(err, PlanInvalid)
    assert "unknown agent 'writer'" in err.problems[0]


async def test_too_many_tasks_is_refused():
    plan = {"tasks": [task("search", q=str(i)) for i in range(3)]}
    wf = Workflow(flow(max_workers=2, max_replans=0), agents=[planner(plan), search, add])
    result = await wf.run({"topic": "t"})
    assert isinstance(result.error, PlanInvalid)
    assert result.error.problems == ("the plan has 3 tasks; at most 2 are allowed",)
    assert called(result, "search") == []


async def test_empty_plan_is_refused():
    wf = Workflow(flow(max_replans=0), agents=[planner({"tasks": []}), search, add])
    err = (await wf.run({"topic": "t"})).error
    assert isinstance(err, PlanInvalid)
    assert err.problems == ("the plan has no tasks; give at least 1",)


async def test_task_input_invalid_for_its_worker_lists_the_errors():
    plan = {"tasks": [task("add", "x", a="two"), task("search", q="fine")]}
    wf = Workflow(flow(max_replans=0), agents=[planner(plan), search, add])
    result = await wf.run({"topic": "t"})
    err = result.error
    assert isinstance(err, PlanInvalid)
    (problem,) = err.problems
    assert problem.startswith("task 0 (x): input for 'add' does not match Sum [")
    assert "a: Input should be a valid integer" in problem and "b: Field required" in problem
    assert result.calls_by_agent == {"planner": 1}


async def test_every_problem_of_a_plan_is_reported_at_once():
    plan = {
        "tasks": [
            task("nope", "d"),
            task("add", "d", a=1),
            task("search", q="a"),
            task("search", q="b"),
        ]
    }
    wf = Workflow(flow(max_replans=0), agents=[planner(plan), search, add])
    err = (await wf.run({"topic": "t"})).error
    assert isinstance(err, PlanInvalid)
    assert len(err.problems) == 4, err.problems
    assert "at most 3" in err.problems[0]
    assert "repeated: d" in err.problems[-1]


# --------------------------------------------------------------------------- workers


def flaky_search() -> StubAgent:
    return StubAgent(
        "search", Contract(Query, Finding), script=[RuntimeError("index down"), {"fact": "late"}]
    )


async def test_failing_worker_fails_the_run_and_keeps_the_others_results():
    plan = {"tasks": [task("search", q="a"), task("add", a=1, b=2)]}
    wf = Workflow(flow(synthesizer="writer"), agents=[planner(plan), flaky_search(), add, writer()])
    result = await wf.run({"topic": "t"})
    err = result.error
    assert isinstance(err, BranchesFailed)
    assert list(err.failures) == ["orchestrate[0]/search"]
    assert err.results == {"orchestrate[1]/add": Total(value=3)}
    assert err.step == "orchestrate[0]/search" and err.agent == "search"
    assert result.partial["orchestrate[1]/add"] == Total(value=3)
    assert called(result, "writer") == []


async def test_keep_drops_failed_tasks_and_records_the_decision():
    plan = {"tasks": [task("search", q="a"), task("add", a=1, b=2)]}
    synth = writer()
    wf = Workflow(
        flow(synthesizer="writer", on_error="keep"),
        agents=[planner(plan), flaky_search(), add, synth],
    )
    result = await wf.run({"topic": "t"})
    assert result.ok, result.error
    assert result.output == Report(text="Total", count=1)
    keep = result.events_of("decision")[-1]
    assert keep.chosen == ("orchestrate[1]/add",)
    assert keep.rejected == ("orchestrate[0]/search",)


async def test_keep_with_every_worker_failed_still_fails():
    plan = {"tasks": [task("search", q="a")]}
    wf = Workflow(flow(on_error="keep"), agents=[planner(plan), flaky_search(), add])
    assert isinstance((await wf.run({"topic": "t"})).error, BranchesFailed)


async def test_concurrency_limit_is_respected():
    in_flight = peak = 0

    @agent(name="search")
    async def slow_search(query: Query) -> Finding:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):  # yield to the loop so that unlimited tasks would overlap
            await asyncio.sleep(0)
        in_flight -= 1
        return Finding(fact=query.q)

    plan = {"tasks": [task("search", q=str(i)) for i in range(6)]}
    wf = Workflow(flow(max_workers=6, concurrency=2), agents=[planner(plan), slow_search, add])
    result = await wf.run({"topic": "t"})
    assert result.ok, result.error
    assert peak == 2
    assert [r.output.fact for r in result.output.results] == [str(i) for i in range(6)]


async def test_workers_overlap_up_to_the_limit():
    started: list[str] = []
    gate = asyncio.Event()

    @agent(name="search")
    async def waiting(query: Query) -> Finding:
        started.append(query.q)
        if len(started) == 3:
            gate.set()
        await gate.wait()  # only returns if all three run at the same time
        return Finding(fact=query.q)

    plan = {"tasks": [task("search", q=str(i)) for i in range(3)]}
    wf = Workflow(flow(concurrency=3), agents=[planner(plan), waiting, add])
    assert (await wf.run({"topic": "t"})).ok


# --------------------------------------------------------------------------- LLM planner


async def test_llm_planner_sees_the_rejection_and_replans():
    bad = {"tasks": [{"agent": "web", "input": {"q": "x"}}], "reason": "browse"}
    provider = ScriptedProvider([bad, GOOD])
    llm = LLMAgent(
        "planner", instructions="Plan the work.", provider=provider, contract=Contract(Goal, Plan)
    )
    wf = Workflow(flow(), agents=[llm, search, add])
    result = await wf.run({"topic": "rust"})
    assert result.ok, result.error
    second = provider.requests[1].messages
    assert second[-1].role == "user"
    assert "unknown agent 'web'; allowed workers: search, add" in second[-1].content
    assert called(result, "search") == ["orchestrate[0]/search"]
    provider.assert_exhausted()


# --------------------------------------------------------------------------- static check


def problems(wf: Workflow) -> list[tuple[str, str, str]]:
    return [(p.code, p.where, p.message) for p in wf.check().problems]


def test_every_unknown_name_is_reported():
    wf = Workflow(
        orchestrate("boss", workers=["search", "ghost"], synthesizer="scribe", max_workers=2),
        agents=[search],
        input=Goal,
    )
    found = problems(wf)
    assert [(c, w) for c, w, _ in found] == [
        ("unknown-agent", "orchestrate/boss"),
        ("unknown-agent", "orchestrate[1]/ghost"),
        ("unknown-agent", "orchestrate[synthesis]/scribe"),
    ]
    assert "planner 'boss'" in found[0][2] and "synthesizer 'scribe'" in found[2][2]
    with pytest.raises(CheckFailed):
        Workflow(
            orchestrate("boss", workers=["search"], max_workers=1), agents=[search], input=Goal
        ).ensure_checked()


def test_incompatible_planner_output_is_reported():
    boss = StubAgent("planner", Contract(Goal, NotAPlan))
    found = problems(Workflow(flow(), agents=[boss, search, add]))
    assert len(found) == 1
    code, where, message = found[0]
    assert code == "type-mismatch" and where == "orchestrate"
    assert "'planner' (NotAPlan) -> Plan" in message and "tasks" in message


def test_incompatible_synthesizer_is_reported():
    scribe = StubAgent("scribe", Contract(OnlyFindings, Report))
    # 'add' is a worker too, so a result's output may be a Total, not only a Finding.
    ((code, where, message),) = problems(
        Workflow(flow(synthesizer="scribe"), agents=[planner(), search, add, scribe])
    )
    assert (code, where) == ("type-mismatch", "orchestrate[synthesis]/scribe")
    assert "orchestrate results (Synthesis) -> 'scribe' (OnlyFindings)" in message
    assert "results[].output.fact" in message


def test_typed_synthesizer_input_checks_clean():
    report = Workflow(flow(synthesizer="writer"), agents=[planner(), search, add, writer()]).check()
    assert report.ok, report.problems
    assert report.output_model is Report


def test_planner_must_accept_the_orchestrate_input():
    wf = Workflow(flow(), agents=[planner(), search, add], input=Query)
    ((code, where, message),) = problems(wf)
    assert code == "type-mismatch" and where == "orchestrate"
    assert "(Query) -> 'planner' (Goal)" in message and "topic" in message


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"max_workers": 0}, "unbounded"),
        ({"concurrency": 0}, "invalid-limit"),
        ({"max_replans": -1}, "invalid-limit"),
    ],
)
async def test_limits_are_checked(kw, code):
    wf = Workflow(flow(**kw), agents=[planner(GOOD), search, add])
    ((found, where, _),) = problems(wf)
    assert (found, where) == (code, "orchestrate")
    with pytest.raises(CheckFailed):
        await wf.run({"topic": "t"})


def test_bound_is_planner_with_replans_plus_max_workers_plus_synthesizer():
    # Function agents cost one call per attempt; the default policy allows 3 attempts
    # (retries) + 1 repair per step and 120 s per attempt.
    wf = Workflow(
        flow(synthesizer="writer", max_workers=3, concurrency=2, max_replans=2),
        agents=[planner(), search, add, writer()],
    )
    bound = wf.estimate()
    planner_calls, per_step = 3 + 2, 3 + 1
    assert bound.calls == planner_calls + 3 * per_step + per_step
    # Latency: the planner, two waves of workers (3 tasks, 2 at a time), the synthesizer.
    assert bound.seconds == 120 * (planner_calls + 2 * per_step + per_step)


def test_constructor_rejects_nonsense():
    with pytest.raises(ValueError):
        orchestrate("p", workers=[], max_workers=1)
    with pytest.raises(TypeError):
        orchestrate("p", workers="search", max_workers=1)
    with pytest.raises(ValueError):
        orchestrate("p", workers=["w"], max_workers=1, on_error="ignore")  # type: ignore[arg-type]


def test_describe_names_every_agent():
    node = flow(synthesizer="writer")
    assert list(node.agents()) == ["planner", "search", "add", "writer"]
    data = node.describe()
    assert data["kind"] == "orchestrate" and data["max_workers"] == 3
    assert data["workers"] == ["search", "add"] and data["synthesizer"] == "writer"


# --------------------------------------------------------------------------- resume


async def test_resume_replays_the_plan_and_finished_workers():
    plan = {"tasks": [task("search", q="a"), task("add", a=1, b=2)]}
    boss, flaky = planner(plan), flaky_search()
    wf = Workflow(flow(), agents=[boss, flaky, add])
    async with MemoryStore() as store:
        runner = Runner(store)
        first = await runner.run(wf, {"topic": "t"})
        assert isinstance(first.error, BranchesFailed)
        second = await runner.resume(first.run_id, wf)
    assert second.ok, second.error
    # Same keys on resume: the plan and the finished worker come from the journal.
    assert boss.calls == 1 and flaky.calls == 2
    assert [(s.key, s.status) for s in second.steps] == [
        ("orchestrate/planner", "replayed"),
        ("orchestrate[0]/search", "succeeded"),
        ("orchestrate[1]/add", "replayed"),
    ]
    assert [r.output for r in second.output.results] == [Finding(fact="late"), Total(value=3)]
