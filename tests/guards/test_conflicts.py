"""Conflicts in parallel merges: pluggable similarity, field-by-field detection, escalation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from orchestrion.agents.function import FunctionAgent
from orchestrion.contracts.contract import Contract
from orchestrion.errors import ConflictUnresolved, ContractViolation
from orchestrion.guards.conflicts import (
    agree,
    clusters,
    exact,
    normalized,
    sequence_ratio,
    similarity_name,
    token_jaccard,
)
from orchestrion.patterns.chain import chain
from orchestrion.patterns.merge import escalate, judge, vote
from orchestrion.patterns.parallel import parallel
from orchestrion.workflow import Workflow


class Q(BaseModel):
    text: str


class Answer(BaseModel):
    city: str
    population: int


def const(name: str, value: Any, out: type[BaseModel] = Q) -> FunctionAgent:
    return FunctionAgent(lambda q: value, Contract(Q, out), name=name)


def voters(*values: Any, out: type[BaseModel] = Q) -> list[FunctionAgent]:
    return [const(f"v{i}", v, out) for i, v in enumerate(values)]


def flow(merge: Any, n: int = 3) -> Any:
    return parallel(*(f"v{i}" for i in range(n)), merge=merge)


# --------------------------------------------------------------------------- similarities


def test_similarities():
    assert exact("Paris", "Paris") == 1.0 and exact("Paris", "paris") == 0.0
    assert normalized("Paris!", "  paris ") == 1.0 and normalized("Paris", "Lyon") == 0.0
    assert token_jaccard("Paris is the capital", "the capital is Paris.") == 1.0
    assert token_jaccard("a b", "c d") == 0.0 and token_jaccard("", "") == 1.0
    assert sequence_ratio("colour", "color") > 0.9 > sequence_ratio("Paris", "Lyon")
    assert similarity_name(None, 1.0) == "exact"
    assert similarity_name(token_jaccard, 0.8) == "token_jaccard >= 0.8"


def test_structured_values_agree_field_by_field():
    a = {"city": "Paris.", "population": 2}
    assert agree(a, {"city": "paris", "population": 2}, normalized, 1.0)
    assert not agree(a, {"city": "paris", "population": 3}, normalized, 1.0)
    assert not agree(a, {"city": "paris"}, normalized, 1.0)
    assert agree([1, "X"], [1, "x"], normalized, 1.0) and not agree([1], [1, 2])


def test_clusters_are_largest_first_and_deterministic():
    values = {"a": "Lyon", "b": "Paris", "c": "paris", "d": "Nice"}
    assert clusters(values, normalized, 1.0) == [["b", "c"], ["a"], ["d"]]
    assert clusters(values) == [["a"], ["b"], ["c"], ["d"]]


# --------------------------------------------------------------------------- vote


async def test_vote_with_similarity_counts_rewordings_together():
    agents = voters(
        {"text": "Paris is the capital"},
        {"text": "Lyon is the capital"},
        {"text": "The capital is Paris."},
    )
    wf = Workflow(flow(vote(similarity=token_jaccard, threshold=0.8)), agents=agents)
    result = await wf.run({"text": "capital?"})
    assert result.ok and result.output.text == "Paris is the capital"
    (d,) = result.events_of("disagreement")
    assert dict(d.values)["parallel[1]/v1"] == '"Lyon is the capital"'  # type: ignore[attr-defined]
    assert d.resolution == "vote: 2/3 (token_jaccard >= 0.8)"  # type: ignore[attr-defined]
    (decision,) = result.events_of("decision")
    assert decision.chosen == ("v0", "v2") and decision.rejected == ("v1",)  # type: ignore[attr-defined]
    # every branch is a provenance source of the merged value
    assert result.step("parallel[0]/v0").ok
    exact_vote = await Workflow(flow(vote()), agents=agents).run({"text": "capital?"})
    assert isinstance(exact_vote.error, ConflictUnresolved)


async def test_structured_conflicts_are_reported_per_field_with_their_sources():
    agents = voters(
        {"city": "Paris", "population": 2},
        {"city": "paris ", "population": 2},
        {"city": "Paris", "population": 3},
        out=Answer,
    )
    result = await Workflow(flow(vote(similarity=normalized, threshold=1.0)), agents=agents).run(
        {"text": "q"}
    )
    assert result.ok and result.output == Answer(city="Paris", population=2)
    (d,) = result.events_of("disagreement")  # city agrees under the similarity; population not
    assert d.field == "population"  # type: ignore[attr-defined]
    assert dict(d.values) == {
        "parallel[0]/v0": "2",
        "parallel[1]/v1": "2",  # type: ignore[attr-defined]
        "parallel[2]/v2": "3",
    }


class Candidates(BaseModel):
    input: Q
    candidates: list[Q]
    labels: list[str]


async def test_vote_fallback_settles_a_tie():
    chair = FunctionAgent(lambda c: c.candidates[0], Contract(Candidates, Q), name="judge")
    agents = [*voters({"text": "Paris"}, {"text": "Lyon"}), chair]
    wf = Workflow(flow(vote(fallback=judge("judge")), n=2), agents=agents)
    result = await wf.run({"text": "q"})
    assert result.ok and result.output.text == "Paris"
    assert wf.describe()["flow"]["fallback"] == {"merge": "judge", "judge": "judge"}
    assert result.step("parallel/judge").ok


def test_vote_threshold_is_checked():
    with pytest.raises(ValueError):
        vote(threshold=1.5)


# --------------------------------------------------------------------------- escalate


async def test_agreeing_branches_are_not_escalated():
    agents = voters({"text": "Paris."}, {"text": "paris"})
    result = await Workflow(
        flow(escalate(similarity=normalized, threshold=1.0), n=2), agents=agents
    ).run({"text": "q"})
    assert result.ok and not result.pending and result.output.text == "Paris."
    assert result.events_of("decision")[0].reason == "all branches agree"  # type: ignore[attr-defined]


async def test_a_conflict_pauses_the_run_with_the_candidates_and_their_sources():
    agents = voters(
        {"city": "Paris", "population": 2}, {"city": "Lyon", "population": 1}, out=Answer
    )
    wf = Workflow(chain(flow(escalate("Which city?"), n=2)), agents=agents)
    result = await wf.run({"text": "q"})
    assert result.status == "paused"
    (request,) = result.pending
    assert request["step"] == "chain[0]/parallel/escalate" and request["agent"] == "human"
    assert request["prompt"] == "Which city?" and request["request_id"].startswith("apr_")
    assert request["payload"]["candidates"] == {
        "v0": {"source": "chain[0]/parallel[0]/v0", "output": {"city": "Paris", "population": 2}},
        "v1": {"source": "chain[0]/parallel[1]/v1", "output": {"city": "Lyon", "population": 1}},
    }
    assert request["answer_schema"]["anyOf"][0]["enum"] == ["v0", "v1"]
    assert {e.field for e in result.events_of("disagreement")} == {"city", "population"}  # type: ignore[attr-defined]
    (asked,) = result.events_of("approval.requested")
    assert asked.step == request["step"]  # type: ignore[attr-defined]
    assert set(result.partial) == {"chain[0]/parallel[0]/v0", "chain[0]/parallel[1]/v1"}

    step = request["step"]
    chosen = await wf.run({"text": "q"}, answers={step: "v1"})
    assert chosen.ok and chosen.output == Answer(city="Lyon", population=1)
    assert chosen.events_of("decision")[-1].reason == "chosen by a human"  # type: ignore[attr-defined]
    picked = await wf.run({"text": "q"}, answers={step: {"choose": "v0"}})
    assert picked.output.city == "Paris"
    written = await wf.run(
        {"text": "q"}, answers={step: {"output": {"city": "Nice", "population": 9}}}
    )
    assert written.ok and written.output == Answer(city="Nice", population=9)


@pytest.mark.parametrize("answer", ["v9", {"output": {"city": "Nice"}}, 3])
async def test_a_bad_human_answer_is_a_typed_error(answer):
    agents = voters(
        {"city": "Paris", "population": 2}, {"city": "Lyon", "population": 1}, out=Answer
    )
    wf = Workflow(flow(escalate(), n=2), agents=agents)
    result = await wf.run({"text": "q"}, answers={"parallel/escalate": answer})
    assert isinstance(result.error, ContractViolation)
    assert result.error.agent == "human" and result.error.step == "parallel/escalate"


async def test_vote_can_escalate_when_there_is_no_majority():
    agents = voters({"text": "Paris"}, {"text": "Lyon"}, {"text": "Nice"})
    wf = Workflow(flow(vote(fallback=escalate())), agents=agents)
    assert (await wf.run({"text": "q"})).status == "paused"
    assert wf.describe()["flow"]["fallback"]["merge"] == "escalate"
