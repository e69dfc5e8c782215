"""Debate: bounded rounds over typed positions, consensus, disagreements, failures, checks."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.errors import AgentFailed, BranchesFailed, BudgetExceeded, CheckFailed
from orchestrion.guards.budget import Budget
from orchestrion.guards.retry import NO_RETRY
from orchestrion.patterns.debate import debate
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Question(BaseModel):
    text: str


class Stance(BaseModel):
    answer: str
    why: str = ""


class Position(BaseModel):
    agent: str
    output: Stance


class Turn(BaseModel):
    input: Question
    round: int
    positions: list[Position]


class Verdict(BaseModel):
    input: Question
    positions: list[Position]


class Ruling(BaseModel):
    answer: str
    votes: int


def participant(name: str, script=(), **kw) -> StubAgent:
    return StubAgent(name, Contract(Turn, Stance), script=script, strict=True, **kw)


def chair(**kw) -> StubAgent:
    def rule(v: Verdict) -> dict:
        answers = [p.output.answer for p in v.positions]
        top = max(answers, key=answers.count)
        return {"answer": top, "votes": answers.count(top)}

    return StubAgent("chair", Contract(Verdict, Ruling), script=[rule], strict=True, **kw)


Q = {"text": "what is 6 x 7?"}


async def test_consensus_stops_early():
    a = participant("a", [{"answer": "42"}])
    b = participant("b", [{"answer": "42"}])
    wf = Workflow(debate(["a", "b"], rounds=3, judge="chair"), agents=[a, b, chair()])
    result = await wf.run(Q)
    assert result.ok and result.output == Ruling(answer="42", votes=2)
    assert (a.calls, b.calls) == (1, 1)
    assert [st.key for st in result.steps if st.agent != "chair"] == ["debate[0]/a", "debate[0]/b"]
    assert result.step("debate/chair").ok
    (decision,) = result.events_of("decision")
    assert decision.step == "debate[0]" and decision.pattern == "debate"
    assert decision.chosen == ("a", "b") and decision.reason == "consensus"
    assert result.events_of("disagreement") == []


async def test_disagreement_runs_every_round_and_is_recorded_with_sources():
    a = participant("a", [{"answer": "42"}] * 3)
    b = participant("b", [{"answer": "41"}, {"answer": "43"}, {"answer": "44"}])
    wf = Workflow(debate(["a", "b"], rounds=3, judge="chair"), agents=[a, b, chair()])
    result = await wf.run(Q)
    assert result.ok and (a.calls, b.calls) == (3, 3)
    assert result.events_of("decision") == []
    disagreements = result.events_of("disagreement")
    assert [d.step for d in disagreements] == ["debate[0]", "debate[1]", "debate[2]"]
    assert all(d.field == "answer" for d in disagreements)
    assert disagreements[1].values == (("debate[1]/a", '"42"'), ("debate[1]/b", '"43"'))
    assert disagreements[0].resolution == "debate round 0: on to round 1"
    assert disagreements[2].resolution == "debate round 2: on to judge 'chair'"


async def test_participants_see_only_the_previous_round():
    a = participant("a", [{"answer": f"a{r}"} for r in range(3)])
    b = participant("b", [{"answer": f"b{r}"} for r in range(3)])
    judge = chair()
    wf = Workflow(debate(["a", "b"], rounds=3, judge="chair"), agents=[a, b, judge])
    await wf.run(Q)
    assert [t.round for t in a.inputs] == [0, 1, 2]
    assert a.inputs[0].positions == [] and a.inputs[0].input == Question(**Q)
    seen = [[(p.agent, p.output.answer) for p in t.positions] for t in b.inputs]
    assert seen == [[], [("a", "a0"), ("b", "b0")], [("a", "a1"), ("b", "b1")]]
    (verdict,) = judge.inputs
    assert [(p.agent, p.output.answer) for p in verdict.positions] == [("a", "a2"), ("b", "b2")]


async def test_consensus_on_the_last_round_is_not_an_early_stop():
    a = participant("a", [{"answer": "1"}, {"answer": "42"}])
    b = participant("b", [{"answer": "2"}, {"answer": "42"}])
    wf = Workflow(debate(["a", "b"], rounds=2, judge="chair"), agents=[a, b, chair()])
    result = await wf.run(Q)
    assert result.ok and a.calls == 2 and result.events_of("decision") == []


async def test_stop_on_consensus_false_runs_all_rounds():
    a = participant("a", [{"answer": "42"}] * 2)
    b = participant("b", [{"answer": "42"}] * 2)
    flow = debate(["a", "b"], rounds=2, judge="chair", stop_on_consensus=False)
    result = await Workflow(flow, agents=[a, b, chair()]).run(Q)
    assert result.ok and (a.calls, b.calls) == (2, 2)


async def test_repeated_participants_get_suffixed_labels():
    critic = participant("critic", [{"answer": "x"}, {"answer": "y"}])
    wf = Workflow(debate(["critic", "critic"], rounds=1, judge="chair"), agents=[critic, chair()])
    result = await wf.run(Q)
    assert {"debate[0]/critic", "debate[0]/critic_2"} <= set(result.partial)
    (d,) = result.events_of("disagreement")
    assert dict(d.values) == {"debate[0]/critic": '"x"', "debate[0]/critic_2": '"y"'}


async def test_function_participants():
    @agent
    def hawk(t: Turn) -> Stance:
        return Stance(answer="raise", why=f"round {t.round}")

    @agent
    def dove(t: Turn) -> Stance:
        # concedes once it has seen the hawk's position
        return Stance(answer="raise" if t.positions else "cut", why=f"round {t.round}")

    wf = Workflow(debate(["hawk", "dove"], rounds=4, judge="chair"), agents=[hawk, dove, chair()])
    result = await wf.run(Q)
    assert result.output == Ruling(answer="raise", votes=2)
    assert result.calls_by_agent == {"hawk": 2, "dove": 2, "chair": 1}
    assert [d.reason for d in result.events_of("decision")] == ["consensus"]


async def test_failing_participant_fails_the_debate_keeping_the_others():
    a = participant("a", [{"answer": "1"}, {"answer": "2"}])
    b = participant("b", [{"answer": "3"}, RuntimeError("model fell over")])
    judge = chair()
    wf = Workflow(
        debate(["a", "b"], rounds=3, judge="chair"),
        agents=[a, b, judge],
        policy=Policy(retry=NO_RETRY),
    )
    result = await wf.run(Q)
    err = result.error
    assert result.status == "failed" and isinstance(err, BranchesFailed)
    assert list(err.failures) == ["b"] and isinstance(err.failures["b"], AgentFailed)
    assert err.results == {"a": Stance(answer="2")}
    assert err.step == "debate[1]/b" and err.agent == "b"
    assert set(result.partial) == {"debate[0]/a", "debate[0]/b", "debate[1]/a"}
    assert judge.calls == 0


async def test_budget_exhausted_mid_round():
    a = participant("a", [{"answer": "1"}] * 2)
    b = participant("b", [{"answer": "2"}] * 2)
    wf = Workflow(
        debate(["a", "b"], rounds=2, judge="chair"),
        agents=[a, b, chair()],
        policy=Policy(budget=Budget(calls=3)),
    )
    result = await wf.run(Q)
    err = result.error
    assert result.status == "failed" and isinstance(err, BudgetExceeded)
    assert err.limit == 3 and err.measured == 4 and err.step == "debate[1]/b"
    assert set(result.partial) == {"debate[0]/a", "debate[0]/b", "debate[1]/a"}
    (trip,) = result.events_of("guard.tripped")
    assert trip.guard == "budget" and trip.limit == 3


@pytest.mark.parametrize("rounds", [None, 0])
async def test_unbounded_rounds_fail_the_check(rounds):
    wf = Workflow(debate(["a"], rounds=rounds, judge="chair"), agents=[participant("a"), chair()])
    (problem,) = wf.check().problems
    assert problem.code == "unbounded-loop" and problem.where == "debate"
    with pytest.raises(CheckFailed):
        await wf.run(Q)


def test_turn_and_verdict_shapes_are_checked():
    class Plain(BaseModel):
        text: str

    class WrongVerdict(BaseModel):
        candidates: list[Stance]

    plain = StubAgent("plain", Contract(Plain, Stance))
    bad_judge = StubAgent("chair", Contract(WrongVerdict, Ruling))
    wf = Workflow(
        debate(["a", "plain", "ghost"], rounds=2, judge="chair"),
        agents=[participant("a"), plain, bad_judge],
        input=Question,
    )
    problems = wf.check().problems
    codes = {(p.code, p.where) for p in problems}
    assert ("unknown-agent", "debate/ghost") in codes
    mismatches = {p.where: p.message for p in problems if p.code == "type-mismatch"}
    assert "debate turn (Turn) -> 'plain' (Plain)" in mismatches["debate/plain"]
    assert "debate positions (Verdict) -> 'chair' (WrongVerdict)" in mismatches["debate"]
    assert "candidates" in mismatches["debate"]


def test_input_model_comes_from_the_turn_and_bound_multiplies_rounds():
    policy = Policy(retry=NO_RETRY, max_repairs=0)
    wf = Workflow(
        debate(["a", "b", "c"], rounds=3, judge="chair"),
        agents=[participant("a"), participant("b"), participant("c"), chair()],
        policy=policy,
    )
    report = wf.check()
    assert report.ok and report.input_model is Question and report.output_model is Ruling
    assert wf.estimate().calls == 3 * 3 + 1
    assert wf.estimate().seconds == 3 * 120.0 + 120.0  # rounds x slowest, then the judge


def test_empty_or_string_participants_are_refused():
    with pytest.raises(ValueError):
        debate([], rounds=1, judge="chair")
    with pytest.raises(TypeError):
        debate("ab", rounds=1, judge="chair")


async def test_llm_participants_over_scripted_providers():
    optimist_llm = ScriptedProvider(
        [{"answer": "yes", "why": "growth"}, {"answer": "maybe", "why": "both risks"}]
    )
    skeptic_llm = ScriptedProvider(
        [{"answer": "no", "why": "risk"}, {"answer": "maybe", "why": "both risks"}]
    )

    def llm(name: str, provider: ScriptedProvider) -> LLMAgent:
        return LLMAgent(
            name,
            instructions="Argue your position.",
            provider=provider,
            contract=Contract(Turn, Stance),
        )

    wf = Workflow(
        debate(["optimist", "skeptic"], rounds=3, judge="chair"),
        agents=[llm("optimist", optimist_llm), llm("skeptic", skeptic_llm), chair()],
    )
    result = await wf.run(Q)
    assert result.ok and result.output == Ruling(answer="maybe", votes=2)
    # round 1's prompt carries round 0's typed positions, not a transcript
    sent = json.loads(skeptic_llm.requests[1].messages[1].content)
    assert sent == {
        "input": Q,
        "round": 1,
        "positions": [
            {"agent": "optimist", "output": {"answer": "yes", "why": "growth"}},
            {"agent": "skeptic", "output": {"answer": "no", "why": "risk"}},
        ],
    }
    assert [d.reason for d in result.events_of("decision")] == ["consensus"]
    assert result.usage.requests == 4
    optimist_llm.assert_exhausted()
    skeptic_llm.assert_exhausted()
