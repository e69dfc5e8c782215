"""CircuitBreaker: open, refuse with a clear error, half-open probe, what counts, provider scope."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.errors import (
    AgentFailed,
    BudgetExceeded,
    CircuitOpen,
    ContractViolation,
    MalformedOutput,
    ProviderUnavailable,
    StepTimeout,
)
from orchestrion.guards.breaker import CircuitBreaker, counts_against
from orchestrion.guards.budget import Budget
from orchestrion.guards.retry import NO_RETRY, Retry
from orchestrion.patterns.chain import chain
from orchestrion.patterns.parallel import parallel
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Doc(BaseModel):
    text: str


class Positive(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("n must be positive")
        return v


class Count(BaseModel):
    n: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stub(name: str, script=(), **kw: Any) -> StubAgent:
    return StubAgent(name, Contract(Doc, Doc), script=script, **kw)


def down(n: int) -> list[Any]:
    return [RuntimeError("connection refused") for _ in range(n)]


async def test_opens_after_n_failures_and_refuses_with_a_clear_error():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_after_s=30, clock=clock)
    broken = stub("search", down(10))
    wf = Workflow(
        chain("search"), agents=[broken], policy=Policy(guards=(breaker,), retry=NO_RETRY)
    )
    for _ in range(3):
        assert isinstance((await wf.run({"text": "q"})).error, AgentFailed)
    assert breaker.state("search") == "open" and breaker.failures("search") == 3
    clock.now += 12
    result = await wf.run({"text": "q"})
    err = result.error
    assert isinstance(err, CircuitOpen) and broken.calls == 3  # not called again
    assert (err.step, err.agent, err.target, err.failures, err.limit) == (
        "chain[0]/search",
        "search",
        "search",
        3,
        3,
    )
    assert err.retry_in_s == pytest.approx(18)
    assert "circuit for agent 'search' is open after 3 consecutive failure(s)" in str(err)
    assert "RuntimeError: connection refused" in str(err) and "next probe in 18.0s" in str(err)
    assert result.step("chain[0]/search").error_type == "CircuitOpen"
    (trip,) = result.events_of("guard.tripped")
    assert trip.guard == "breaker"  # type: ignore[attr-defined]


async def test_retries_count_as_failures():
    breaker = CircuitBreaker(failures=3)
    flaky = stub("api", [ProviderUnavailable("503")] * 3)
    wf = Workflow(
        "api",
        agents=[flaky],
        policy=Policy(guards=(breaker,), retry=Retry(max_attempts=3, backoff_s=0)),
    )
    await wf.run({"text": "q"})
    assert breaker.state("api") == "open" and flaky.calls == 3


async def test_half_open_lets_one_probe_through_and_success_closes():
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_after_s=10, clock=clock)
    a = stub("a", [*down(2), {"text": "back"}])
    wf = Workflow("a", agents=[a], policy=Policy(guards=(breaker,), retry=NO_RETRY))
    await wf.run({"text": "q"})
    await wf.run({"text": "q"})
    assert breaker.state("a") == "open"
    clock.now += 10
    assert breaker.state("a") == "half-open"
    result = await wf.run({"text": "q"})
    assert result.ok and breaker.state("a") == "closed" and breaker.failures("a") == 0


async def test_a_failed_probe_opens_the_circuit_again():
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_after_s=10, clock=clock)
    a = stub("a", down(5))
    wf = Workflow("a", agents=[a], policy=Policy(guards=(breaker,), retry=NO_RETRY))
    await wf.run({"text": "q"})
    await wf.run({"text": "q"})
    clock.now += 11
    probe = await wf.run({"text": "q"})
    assert isinstance(probe.error, AgentFailed) and a.calls == 3
    refused = await wf.run({"text": "q"})
    assert isinstance(refused.error, CircuitOpen) and refused.error.retry_in_s == 10
    assert a.calls == 3


def test_only_one_probe_at_a_time_and_an_abandoned_probe_is_released():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_after_s=5, clock=clock)
    ctx1, ctx2 = SimpleNamespace(run_id="r1"), SimpleNamespace(run_id="r2")
    breaker.failed(ctx1, "a", "k", AgentFailed("x", agent="a"))  # type: ignore[arg-type]
    clock.now += 5
    breaker.before(ctx1, "a", "k", None)  # type: ignore[arg-type]  # r1 probes
    with pytest.raises(CircuitOpen):
        breaker.before(ctx2, "a", "k", None)  # type: ignore[arg-type]
    breaker.finished(ctx1)  # r1 paused or was cancelled mid-probe: release it
    breaker.before(ctx2, "a", "k", None)  # type: ignore[arg-type]


async def test_a_success_resets_the_count_of_consecutive_failures():
    breaker = CircuitBreaker(failures=2)
    a = stub("a", [RuntimeError("x"), {"text": "ok"}, RuntimeError("y"), {"text": "ok"}])
    wf = Workflow("a", agents=[a], policy=Policy(guards=(breaker,), retry=NO_RETRY))
    for _ in range(4):
        await wf.run({"text": "q"})
    assert breaker.state("a") == "closed"


async def test_contract_violations_are_not_held_against_anyone():
    producer = StubAgent("producer", Contract(Doc, Count), script=[{"n": -1}] * 5)
    consumer = StubAgent("consumer", Contract(Positive, Count))
    breaker = CircuitBreaker(failures=1)
    policy = Policy(guards=(breaker,), retry=NO_RETRY)
    result = await Workflow(
        chain("producer", "consumer"), agents=[producer, consumer], policy=policy
    ).run({"text": "q"})
    err = result.error  # a bad input is its producer's fault, and a data fault, not an outage
    assert isinstance(err, ContractViolation) and err.direction == "input"
    assert breaker.state("consumer") == "closed" and breaker.state("producer") == "closed"
    junk = StubAgent("junk", Contract(Doc, Count), script=[{"n": "x"}] * 4)
    result = await Workflow("junk", agents=[junk], policy=policy).run({"text": "q"})
    assert isinstance(result.error, ContractViolation) and breaker.state("junk") == "closed"


async def test_a_delegate_failure_counts_against_the_delegate_not_the_caller():
    @agent
    async def boss(d: Doc, ctx: Any) -> Doc:
        return await ctx.call("worker", d)

    worker = stub("worker", down(5))
    breaker = CircuitBreaker(failures=1)
    wf = Workflow("boss", agents=[boss, worker], policy=Policy(guards=(breaker,), retry=NO_RETRY))
    await wf.run({"text": "q"})
    assert breaker.state("worker") == "open" and breaker.state("boss") == "closed"


async def test_budget_trips_do_not_open_circuits():
    breaker = CircuitBreaker(failures=1)
    wf = Workflow(
        chain("a", "b"),
        agents=[stub("a"), stub("b")],
        policy=Policy(guards=(breaker,), budget=Budget(calls=1)),
    )
    result = await wf.run({"text": "q"})
    assert isinstance(result.error, BudgetExceeded)
    assert breaker.state("b") == "closed"


def test_which_errors_count():
    assert counts_against(AgentFailed("x", agent="a"), "a")
    assert counts_against(ProviderUnavailable("503", agent="a"), "a")
    assert counts_against(StepTimeout(1.0, agent="a"), "a")
    assert counts_against(MalformedOutput("junk", agent="a"), "a")
    assert not counts_against(MalformedOutput("junk", agent="a"), "a", "provider")
    assert not counts_against(AgentFailed("bug", agent="a"), "a", "provider")
    assert not counts_against(ContractViolation("bad", agent="a"), "a")
    assert not counts_against(BudgetExceeded("calls", limit=1, measured=2, agent="a"), "a")
    assert not counts_against(AgentFailed("x", agent="child"), "parent")


async def test_provider_scope_protects_every_agent_on_the_provider():
    class Answer(BaseModel):
        text: str

    outage = [ProviderUnavailable("overloaded") for _ in range(2)]  # one exception per call
    shared = ScriptedProvider([*outage, {"text": "x"}], model="gpt-4o-mini")

    def llm(name: str) -> LLMAgent:
        return LLMAgent(name, instructions="x", provider=shared, contract=Contract(Doc, Answer))

    breaker = CircuitBreaker(failures=2, scope="provider")
    wf = Workflow(
        parallel("a", "b", on_error="keep"),
        agents=[llm("a"), llm("b")],
        policy=Policy(guards=(breaker,), retry=NO_RETRY),
    )
    await wf.run({"text": "q"})
    assert breaker.state("ScriptedProvider:gpt-4o-mini") == "open"
    again = await Workflow("a", agents=[llm("a")], policy=Policy(guards=(breaker,))).run(
        {"text": "q"}
    )
    assert isinstance(again.error, CircuitOpen) and again.error.scope == "provider"
    assert shared.calls == 2
    plain = await Workflow("c", agents=[stub("c")], policy=Policy(guards=(breaker,))).run(
        {"text": "q"}
    )
    assert plain.ok  # no provider: not covered by a provider-scoped breaker


def test_settings_are_checked_and_reset_works():
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker(scope="tool")  # type: ignore[arg-type]
    breaker = CircuitBreaker(failures=1)
    breaker.failed(SimpleNamespace(run_id="r"), "a", "k", AgentFailed("x"))  # type: ignore[arg-type]
    assert breaker.state("a") == "open"
    breaker.reset("a")
    assert breaker.state("a") == "closed" and "failures=1" in repr(breaker)
