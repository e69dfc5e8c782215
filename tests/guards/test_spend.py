"""SpendApproval: pause before the projected spend crosses a threshold; approve, raise, decline."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.contracts.contract import Contract
from orchestrion.cost.prices import register_price
from orchestrion.errors import BudgetExceeded
from orchestrion.guards.spend import SpendApproval, one_request
from orchestrion.patterns.chain import chain
from orchestrion.providers.base import ModelSettings
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Doc(BaseModel):
    text: str


register_price("test-spend-model", 1000.0, 1000.0)  # $0.001 per token: easy arithmetic


def writer(name: str) -> LLMAgent:
    provider = ScriptedProvider(lambda r: {"text": "x" * 400}, model="test-spend-model")
    return LLMAgent(
        name,
        instructions="Write.",
        provider=provider,
        contract=Contract(Doc, Doc),
        settings=ModelSettings(max_tokens=150),
    )


def workflow(guard: SpendApproval) -> tuple[Workflow, list[LLMAgent]]:
    agents = [writer(n) for n in ("a", "b", "c", "d")]
    return Workflow(
        chain("a", "b", "c", "d"), agents=agents, policy=Policy(guards=(guard,))
    ), agents


async def test_pauses_before_the_step_that_would_cross_the_threshold():
    wf, agents = workflow(SpendApproval(usd=0.5))
    result = await wf.run({"text": "go"})
    assert result.status == "paused"
    (request,) = result.pending
    key = request["payload"]["step"]
    assert request["step"] == key + "#spend" and request["agent"] == key.split("/")[-1]
    assert request["payload"]["projected_usd"] > 0.5 and request["payload"]["threshold"] == {
        "usd": 0.5
    }
    assert "crosses the approval threshold of $0.5000" in request["prompt"]
    finished = set(result.partial)
    assert finished and key not in finished  # the expensive step did not start
    assert result.usage.usd <= 0.5
    (asked,) = result.events_of("approval.requested")
    assert asked.step == request["step"]  # type: ignore[attr-defined]
    spent_before = sum(a.provider.calls for a in agents)  # type: ignore[attr-defined]
    assert spent_before == len(finished)


async def test_an_approval_lets_the_run_finish():
    guard = SpendApproval(usd=0.5)
    wf, _ = workflow(guard)
    paused = await wf.run({"text": "go"})
    step = paused.pending[0]["step"]
    result = await wf.run({"text": "go"}, answers={step: True})
    assert result.ok and result.usage.usd > 0.5


async def test_an_approval_up_to_a_new_ceiling_asks_again_above_it():
    wf, _ = workflow(SpendApproval(usd=0.5))
    first = (await wf.run({"text": "go"})).pending[0]["step"]
    again = await wf.run({"text": "go"}, answers={first: {"approve": True, "up_to_usd": 0.9}})
    assert again.status == "paused"
    second = again.pending[0]["step"]
    assert second != first and again.pending[0]["payload"]["threshold"] == {"usd": 0.9}


async def test_every_asks_again_each_time_that_much_more_is_projected():
    wf, _ = workflow(SpendApproval(usd=0.5, every_usd=0.5))
    first = (await wf.run({"text": "go"})).pending[0]["step"]
    again = await wf.run({"text": "go"}, answers={first: {"approve": True}})
    assert again.status == "paused" and again.pending[0]["step"] != first


async def test_a_decline_ends_the_run_with_the_partial_result_and_the_spend():
    wf, _ = workflow(SpendApproval(usd=0.5))
    step = (await wf.run({"text": "go"})).pending[0]["step"]
    result = await wf.run({"text": "go"}, answers={step: {"approve": False}})
    err = result.error
    assert isinstance(err, BudgetExceeded) and err.before_call
    assert err.scope == "spend approval (declined)" and err.limit == 0.5
    assert err.step == step.removesuffix("#spend") and result.partial
    assert result.usage.usd > 0  # what was spent is reported
    assert [e.guard for e in result.events_of("guard.tripped")] == ["budget"]  # type: ignore[attr-defined]


async def test_token_threshold_and_code_agents():
    @agent
    def tidy(d: Doc) -> Doc:
        return d

    assert one_request(tidy, Doc(text="x")).tokens == 0  # code costs no tokens
    wf = Workflow(
        chain("tidy", "a"),
        agents=[tidy, writer("a")],
        policy=Policy(guards=(SpendApproval(tokens=100),)),
    )
    result = await wf.run({"text": "go"})
    assert result.status == "paused" and result.pending[0]["step"] == "chain[1]/a#spend"
    assert "chain[0]/tidy" in result.partial


def test_a_threshold_is_required():
    with pytest.raises(ValueError):
        SpendApproval()
    assert repr(SpendApproval(usd=1.0)) == "SpendApproval(usd=1.0, tokens=None)"


def test_the_estimate_is_pluggable():
    from orchestrion.cost.usage import Usage

    def flat(agent: Any, payload: Any) -> Usage:
        return Usage(0, 0, 1, 0.3)

    guard = SpendApproval(usd=0.5, estimate=flat)
    assert guard.estimate is flat
