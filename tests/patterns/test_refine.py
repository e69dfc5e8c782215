"""Refine (evaluator-optimizer): convergence, the mandatory bound, exhaustion, feedback to
the generator, budgets mid-loop, keys, static checks and the cost bound."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.durable import Runner
from orchestrion.errors import BudgetExceeded, CheckFailed, DefinitionChanged, LoopBoundReached
from orchestrion.guards.budget import Budget
from orchestrion.patterns.chain import chain
from orchestrion.patterns.refine import refine
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.store import MemoryStore
from orchestrion.workflow import Workflow

# --------------------------------------------------------------------------- models


class Brief(BaseModel):
    topic: str


class Draft(BaseModel):
    text: str
    version: int


class WriterIn(BaseModel):
    topic: str
    feedback: str | None = None
    previous: Draft | None = None


class ReviewIn(BaseModel):
    input: Brief
    draft: Draft
    round: int


class Verdict(BaseModel):
    accepted: bool
    feedback: str = ""


class Score(BaseModel):
    score: int
    notes: list[str] = []


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str


class OtherDraft(BaseModel):
    body: str


class BadPrevious(BaseModel):
    topic: str
    previous: OtherDraft | None = None


# --------------------------------------------------------------------------- agents


def make_writer(seen: list[WriterIn] | None = None):
    @agent(name="writer")
    def writer(brief: WriterIn) -> Draft:
        if seen is not None:
            seen.append(brief)
        version = 0 if brief.previous is None else brief.previous.version + 1
        return Draft(text=f"{brief.topic} v{version}", version=version)

    return writer


def critic(accept_from: int | None) -> StubAgent:
    """Accepts drafts whose version is >= ``accept_from`` (never when None)."""

    def review(r: ReviewIn) -> Verdict:
        ok = accept_from is not None and r.draft.version >= accept_from
        return Verdict(accepted=ok, feedback="" if ok else f"improve v{r.draft.version}")

    return StubAgent("critic", Contract(ReviewIn, Verdict), script=[review] * 10)


def keys(result) -> list[str]:
    return [s.key for s in result.steps]


# --------------------------------------------------------------------------- running


async def test_converges_in_round_k_feeding_back_feedback_and_previous():
    seen: list[WriterIn] = []
    judge = critic(accept_from=2)
    wf = Workflow(refine("writer", "critic", max_rounds=5), agents=[make_writer(seen), judge])
    result = await wf.run({"topic": "tides"})
    assert result.ok, result.error
    assert result.output == Draft(text="tides v2", version=2)
    assert keys(result) == [
        "refine[0]/writer",
        "refine[0]/critic",
        "refine[1]/writer",
        "refine[1]/critic",
        "refine[2]/writer",
        "refine[2]/critic",
    ]
    assert seen[0] == WriterIn(topic="tides")
    assert seen[1] == WriterIn(
        topic="tides", feedback="improve v0", previous=Draft(text="tides v0", version=0)
    )
    assert seen[2].feedback == "improve v1" and seen[2].previous.version == 1
    assert [(i.draft.version, i.round, i.input.topic) for i in judge.inputs] == [
        (0, 0, "tides"),
        (1, 1, "tides"),
        (2, 2, "tides"),
    ]
    decisions = result.events_of("decision")
    assert [d.chosen for d in decisions] == [("revise",), ("revise",), ("accept",)]
    assert [d.step for d in decisions] == [
        "refine[0]/critic",
        "refine[1]/critic",
        "refine[2]/critic",
    ]
    assert decisions[0].reason == "improve v0" and decisions[0].pattern == "refine"
    assert result.events_of("guard.tripped") == []


async def test_accepted_in_the_first_round_calls_each_agent_once():
    wf = Workflow(refine("writer", "critic", max_rounds=3), agents=[make_writer(), critic(0)])
    result = await wf.run({"topic": "t"})
    assert result.output.version == 0 and result.calls_by_agent == {"writer": 1, "critic": 1}


async def test_bound_reached_fails_naming_the_bound_and_keeps_the_drafts():
    wf = Workflow(refine("writer", "critic", max_rounds=2), agents=[make_writer(), critic(None)])
    result = await wf.run({"topic": "t"})
    err = result.error
    assert result.status == "failed" and isinstance(err, LoopBoundReached)
    assert err.limit == 2 and err.guard == "loop_bound"
    assert "refine 'refine' reached its bound of 2" in str(err)
    assert err.step == "refine[1]/critic"
    (tripped,) = result.events_of("guard.tripped")
    assert tripped.guard == "loop_bound" and tripped.limit == 2
    assert result.partial["refine[0]/writer"] == Draft(text="t v0", version=0)
    assert result.partial["refine[1]/writer"] == Draft(text="t v1", version=1)
    assert result.output is None


async def test_on_exhausted_last_returns_the_last_draft_after_the_guard_event():
    wf = Workflow(
        refine("writer", "critic", max_rounds=3, on_exhausted="last"),
        agents=[make_writer(), critic(None)],
    )
    result = await wf.run({"topic": "t"})
    assert result.ok, result.error
    assert result.output == Draft(text="t v2", version=2)
    (tripped,) = result.events_of("guard.tripped")
    assert tripped.step == "refine[2]/critic" and "bound of 3" in tripped.message


async def test_custom_stop_reads_any_evaluation():
    scores = iter([3, 6, 9])
    grader = StubAgent(
        "grader",
        Contract(ReviewIn, Score),
        script=[lambda r: Score(score=next(scores), notes=["more data"])] * 3,
    )
    wf = Workflow(
        refine("writer", "grader", max_rounds=3, stop=lambda s: s.score >= 8),
        agents=[make_writer(), grader],
    )
    assert wf.check().ok
    result = await wf.run({"topic": "t"})
    assert result.output.version == 2
    # Without a feedback field the generator gets the whole evaluation as JSON.
    reason = result.events_of("decision")[0].reason
    assert reason == '{"score":3,"notes":["more data"]}'


async def test_generator_that_forbids_extra_fields_gets_only_the_input():
    seen: list[Strict] = []

    @agent(name="writer")
    def strict_writer(brief: Strict) -> Draft:
        seen.append(brief)
        return Draft(text=brief.topic, version=len(seen) - 1)

    wf = Workflow(refine("writer", "critic", max_rounds=2), agents=[strict_writer, critic(1)])
    result = await wf.run({"topic": "t"})
    assert result.ok, result.error
    assert seen == [Strict(topic="t"), Strict(topic="t")]


async def test_keys_follow_the_scope_and_the_name():
    @agent
    def prep(b: Brief) -> Brief:
        return b

    wf = Workflow(
        chain("prep", refine("writer", "critic", max_rounds=2, name="polish")),
        agents=[prep, make_writer(), critic(1)],
    )
    result = await wf.run({"topic": "t"})
    assert keys(result) == [
        "chain[0]/prep",
        "chain[1]/polish[0]/writer",
        "chain[1]/polish[0]/critic",
        "chain[1]/polish[1]/writer",
        "chain[1]/polish[1]/critic",
    ]


async def test_budget_exhausted_mid_refine_keeps_earlier_drafts():
    wf = Workflow(
        refine("writer", "critic", max_rounds=5),
        agents=[make_writer(), critic(None)],
        policy=Policy(budget=Budget(calls=3)),
    )
    result = await wf.run({"topic": "t"})
    err = result.error
    assert result.status == "failed" and isinstance(err, BudgetExceeded)
    assert err.dimension == "calls" and err.limit == 3 and err.measured == 4
    assert err.step == "refine[1]/critic"
    assert set(result.partial) == {"refine[0]/writer", "refine[0]/critic", "refine[1]/writer"}
    assert result.partial["refine[1]/writer"].version == 1
    assert len(result.events_of("guard.tripped")) == 1


async def test_resume_after_the_budget_replays_finished_rounds():
    writer, judge = make_writer(), critic(2)
    poor = Workflow(
        refine("writer", "critic", max_rounds=5),
        agents=[writer, judge],
        policy=Policy(budget=Budget(calls=3)),
    )
    rich = Workflow(refine("writer", "critic", max_rounds=5), agents=[writer, judge])
    async with MemoryStore() as store:
        runner = Runner(store)
        failed = await runner.run(poor, {"topic": "t"})
        assert failed.status == "failed"
        with pytest.raises(DefinitionChanged):  # the budget is part of the definition
            await runner.resume(failed.run_id, rich)
        result = await runner.resume(failed.run_id, rich, force=True)
    assert result.ok and result.output.version == 2
    replayed = [s.key for s in result.steps if s.status == "replayed"]
    assert replayed == ["refine[0]/writer", "refine[0]/critic", "refine[1]/writer"]
    assert result.calls_by_agent == {"critic": 2, "writer": 1}


async def test_llm_generator_sees_the_feedback():
    provider = ScriptedProvider(
        [{"text": "short", "version": 0}, {"text": "a longer draft", "version": 1}]
    )
    llm = LLMAgent(
        "writer", instructions="Write.", provider=provider, contract=Contract(WriterIn, Draft)
    )

    @agent(name="critic")
    def length_critic(r: ReviewIn) -> Verdict:
        ok = len(r.draft.text) > 10
        return Verdict(accepted=ok, feedback="" if ok else "too short, expand")

    wf = Workflow(refine("writer", "critic", max_rounds=3), agents=[llm, length_critic])
    result = await wf.run({"topic": "tides"})
    assert result.ok, result.error
    assert result.output.text == "a longer draft"
    prompt = provider.requests[1].messages[-1].content
    assert '"feedback":"too short, expand"' in prompt and '"previous":{"text":"short"' in prompt
    provider.assert_exhausted()


# --------------------------------------------------------------------------- static check


def problems(wf: Workflow) -> list[tuple[str, str, str]]:
    return [(p.code, p.where, p.message) for p in wf.check().problems]


@pytest.mark.parametrize("rounds", [None, 0, -1])
async def test_missing_bound_is_an_unbounded_loop_and_no_run_starts(rounds):
    writer, judge = make_writer(), critic(0)
    wf = Workflow(refine("writer", "critic", max_rounds=rounds), agents=[writer, judge])
    ((code, where, message),) = problems(wf)
    assert (code, where) == ("unbounded-loop", "refine")
    assert "refine 'refine'" in message and f"max_rounds={rounds!r}" in message
    with pytest.raises(CheckFailed) as info:
        await wf.run({"topic": "t"})
    assert info.value.problems[0].code == "unbounded-loop"
    assert judge.calls == 0


def test_unbounded_loop_names_the_node_where_it_sits():
    wf = Workflow(
        chain("writer", refine("writer", "critic", max_rounds=None, name="polish")),
        agents=[make_writer(), critic(0)],
        input=WriterIn,
    )
    codes = [(c, w) for c, w, _ in problems(wf)]
    assert ("unbounded-loop", "chain[1]/polish") in codes


def test_evaluator_without_accepted_field_needs_a_stop():
    grader = StubAgent("grader", Contract(ReviewIn, Score))
    ((code, where, message),) = problems(
        Workflow(refine("writer", "grader", max_rounds=2), agents=[make_writer(), grader])
    )
    assert (code, where) == ("no-stop-condition", "refine")
    assert "'grader'" in message and "accepted" in message


def test_generator_must_accept_the_refine_input():
    wf = Workflow(
        refine("writer", "critic", max_rounds=2), agents=[make_writer(), critic(0)], input=Score
    )
    found = problems(wf)
    assert found and all(c == "type-mismatch" for c, _, _ in found)
    assert any("'writer' (WriterIn)" in m and "topic" in m for _, _, m in found)


def test_evaluator_must_accept_the_review():
    class NeedsScore(BaseModel):
        draft: Draft
        score: int

    bad = StubAgent("critic", Contract(NeedsScore, Verdict))
    ((code, _, message),) = problems(
        Workflow(refine("writer", "critic", max_rounds=2), agents=[make_writer(), bad])
    )
    assert code == "type-mismatch"
    assert "refine review" in message and "'critic'" in message and "score" in message


def test_declared_previous_must_match_the_generator_output():
    @agent(name="writer")
    def odd_writer(brief: BadPrevious) -> Draft:
        return Draft(text="x", version=0)

    ((code, _, message),) = problems(
        Workflow(refine("writer", "critic", max_rounds=2), agents=[odd_writer, critic(0)])
    )
    assert code == "type-mismatch" and "'writer' (BadPrevious)" in message
    assert "previous.body" in message


def test_unknown_agents_are_reported():
    found = problems(Workflow(refine("ghost", "phantom", max_rounds=2), input=Brief))
    assert [(c, w) for c, w, _ in found] == [
        ("unknown-agent", "refine/ghost"),
        ("unknown-agent", "refine/phantom"),
    ]
    assert "generator 'ghost'" in found[0][2] and "evaluator 'phantom'" in found[1][2]


def test_bound_is_rounds_times_generator_plus_evaluator():
    wf = Workflow(refine("writer", "critic", max_rounds=4), agents=[make_writer(), critic(0)])
    per_step = 3 + 1  # default policy: 3 attempts + 1 repair per step, 120 s each
    bound = wf.estimate()
    assert bound.calls == 4 * 2 * per_step
    assert bound.seconds == 4 * 2 * per_step * 120


def test_constructor_rejects_nonsense():
    with pytest.raises(ValueError, match="collide"):
        refine("writer", "writer", max_rounds=2)
    with pytest.raises(ValueError):
        refine("a", "b", max_rounds=2, on_exhausted="retry")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        refine("a", "b", max_rounds=2, stop="accepted")  # type: ignore[arg-type]


def test_describe():
    node = refine("writer", "critic", max_rounds=3, on_exhausted="last")
    assert list(node.agents()) == ["writer", "critic"]
    data = node.describe()
    assert (data["kind"], data["max_rounds"], data["on_exhausted"]) == ("refine", 3, "last")
