"""Handoff: declared-set transfers, typed unknown targets, the loop bound, static checks."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract, Text
from orchestrion.errors import (
    BudgetExceeded,
    CheckFailed,
    LoopBoundReached,
    LoopDetected,
    UnknownAgent,
)
from orchestrion.guards.budget import Budget, Ledger
from orchestrion.guards.retry import NO_RETRY
from orchestrion.patterns.handoff import handoff
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.policy import Policy
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import origin
from orchestrion.workflow import Workflow


class Ticket(BaseModel):
    text: str


class Inbound(BaseModel):
    """What a handoff target reads: the original ticket plus who handed off and why."""

    text: str
    handoff_from: str | None = None
    handoff_note: str | None = None


class Reply(BaseModel):
    answer: str = ""
    handoff_to: str | None = None
    note: str | None = None


class NoField(BaseModel):
    answer: str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def s(name: str, script=(), inp=Inbound, out=Reply, **kw) -> StubAgent:
    return StubAgent(name, Contract(inp, out), script=script, strict=True, **kw)


def to(target: str | None, note: str | None = None, answer: str = "") -> dict:
    return {"answer": answer, "handoff_to": target, "note": note}


TICKET = {"text": "I was charged twice"}
SET = ["triage", "billing", "tech"]


async def test_start_answering_directly_is_the_result():
    triage = s("triage", [to(None, answer="done")])
    wf = Workflow(handoff("triage", SET, max_handoffs=2), agents=[triage, s("billing"), s("tech")])
    result = await wf.run(TICKET)
    assert result.ok and result.output == Reply(answer="done")
    assert [st.key for st in result.steps] == ["handoff[0]/triage"]
    assert result.events_of("decision") == []


async def test_transfer_carries_original_input_sender_and_note():
    triage = s("triage", [to("billing", "double charge")])
    billing = s("billing", [to(None, answer="refunded")])
    wf = Workflow(handoff("triage", SET, max_handoffs=2), agents=[triage, billing, s("tech")])
    result = await wf.run(TICKET)
    assert result.ok and result.output.answer == "refunded"
    assert [st.key for st in result.steps] == ["handoff[0]/triage", "handoff[1]/billing"]
    assert billing.inputs == [
        Inbound(text="I was charged twice", handoff_from="triage", handoff_note="double charge")
    ]
    (decision,) = result.events_of("decision")
    assert decision.step == "handoff[0]/triage" and decision.pattern == "handoff"
    assert decision.chosen == ("billing",) and decision.rejected == ("triage", "tech")
    assert decision.reason == "double charge"
    # provenance: the target's output derives from the caller's step
    assert result.step("handoff[1]/billing").provenance["sources"] == ["handoff[0]/triage"]


async def test_function_agents_hand_off_by_content():
    @agent
    def triage(t: Inbound) -> Reply:
        target = "tech" if "crash" in t.text else "billing"
        return Reply(handoff_to=target, note=f"looks like {target}")

    @agent
    def tech(t: Inbound) -> Reply:
        return Reply(answer=f"{t.handoff_from} says: {t.handoff_note}; reinstall")

    @agent
    def billing(t: Inbound) -> Reply:
        return Reply(answer="refund")

    wf = Workflow(handoff("triage", SET, max_handoffs=1), agents=[triage, billing, tech])
    result = await wf.run({"text": "app crash on start"})
    assert result.output.answer == "triage says: looks like tech; reinstall"
    assert result.calls_by_agent == {"triage": 1, "tech": 1}


async def test_undeclared_target_is_unknown_agent_with_partial_kept():
    # "legal" is registered but not declared in the handoff set: still refused.
    triage = s("triage", [to("legal", "lawyer up")])
    legal = s("legal")
    wf = Workflow(
        handoff("triage", ["triage", "billing"], max_handoffs=3),
        agents=[triage, s("billing"), legal],
    )
    result = await wf.run(TICKET)
    err = result.error
    assert result.status == "failed" and isinstance(err, UnknownAgent)
    assert err.name == "legal" and err.caller == "triage" and err.agent == "triage"
    assert err.step == "handoff[0]/triage" and err.known == ("billing", "triage")
    assert "handoff(agents=" in str(err) and "known agents: billing, triage" in str(err)
    assert legal.calls == 0
    assert result.partial == {"handoff[0]/triage": Reply(handoff_to="legal", note="lawyer up")}
    (decision,) = result.events_of("decision")
    assert decision.chosen == () and "legal" in decision.reason


async def test_unregistered_target_mid_chain_names_its_caller():
    triage = s("triage", [to("billing")])
    billing = s("billing", [to("ghost")])
    wf = Workflow(
        handoff("triage", ["triage", "billing"], max_handoffs=3), agents=[triage, billing]
    )
    result = await wf.run(TICKET)
    err = result.error
    assert isinstance(err, UnknownAgent) and err.caller == "billing"
    assert err.step == "handoff[1]/billing"
    assert set(result.partial) == {"handoff[0]/triage", "handoff[1]/billing"}


async def test_declared_but_unregistered_target_names_the_caller():
    # check() reports "ghost"; run directly past the check, it still fails typed, naming the caller
    flow = handoff("triage", ["triage", "ghost"], max_handoffs=1)
    wf = Workflow(flow, agents=[s("triage", [to("ghost")])])
    assert [p.code for p in wf.check().problems] == ["unknown-agent"]
    ctx = RunContext(
        run_id="r",
        trace_id="t",
        workflow="w",
        registry=wf.registry,
        policy=wf.policy,
        ledger=Ledger(None),
    )
    with pytest.raises(UnknownAgent) as info:
        await flow.run(ctx, origin(Ticket(**TICKET)), Scope("", ctx.ledger))
    assert info.value.caller == "triage" and info.value.step == "handoff[1]/ghost"


async def test_tainted_caller_still_transfers_only_inside_the_set():
    triage = s("triage", [to("billing", "refund")])
    billing = s("billing", [to(None, answer="ok")])
    wf = Workflow(
        handoff("triage", ["triage", "billing"], max_handoffs=1), agents=[triage, billing]
    )
    result = await wf.run(TICKET, tainted=True)
    assert result.ok and result.step("handoff[1]/billing").provenance["tainted"] is True


async def test_ping_pong_is_stopped_by_progress_detection_by_default():
    a = s("a", [to("b", "yours")] * 5)
    b = s("b", [to("a", "no, yours")] * 5)
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=9), agents=[a, b])
    result = await wf.run(TICKET)
    assert isinstance(result.error, LoopDetected)  # long before the bound of 9 handoffs
    assert a.calls + b.calls < 9


async def test_ping_pong_hits_max_handoffs():
    a = s("a", [to("b", "yours")] * 5)
    b = s("b", [to("a", "no, yours")] * 5)
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=3), agents=[a, b],
                  policy=Policy(guards=()))  # the bound alone, without progress detection
    result = await wf.run(TICKET)
    err = result.error
    assert isinstance(err, LoopBoundReached) and err.limit == 3 and err.measured == 3
    assert err.step == "handoff[3]/b" and err.agent == "b"
    assert "a -> b -> a -> b -> a" in str(err)
    assert (a.calls, b.calls) == (2, 2)
    (trip,) = result.events_of("guard.tripped")
    assert trip.guard == "loop_bound" and trip.limit == 3 and trip.step == "handoff[3]/b"
    assert [d.chosen for d in result.events_of("decision")] == [("b",), ("a",), ("b",)]
    assert len(result.partial) == 4


async def test_max_handoffs_zero_allows_no_transfer():
    a = s("a", [to("b")])
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=0), agents=[a, s("b")])
    result = await wf.run(TICKET)
    assert isinstance(result.error, LoopBoundReached) and result.error.limit == 0


@pytest.mark.parametrize("bound", [None, -1])
async def test_unbounded_handoff_fails_the_check(bound):
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=bound), agents=[s("a"), s("b")])
    problems = wf.check().problems
    assert [p.code for p in problems] == ["unbounded-loop"]
    assert problems[0].where == "handoff"
    with pytest.raises(CheckFailed, match="unbounded-loop"):
        await wf.run(TICKET)


def test_missing_handoff_field_is_reported():
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=2), agents=[s("a"), s("b", out=NoField)])
    (problem,) = [p for p in wf.check().problems if p.code == "handoff-field"]
    assert problem.where == "handoff/b" and "'handoff_to'" in problem.message


def test_custom_field_name_and_non_nullable_field():
    class Go(BaseModel):
        answer: str = ""
        go: str

    wf = Workflow(handoff("a", ["a"], max_handoffs=1, field="go"), agents=[s("a", out=Go)])
    (problem,) = wf.check().problems
    assert problem.code == "handoff-field" and "cannot be None" in problem.message


def test_literal_targets_outside_the_set_are_reported_statically():
    class Routed(BaseModel):
        answer: str = ""
        handoff_to: Literal["b", "legal"] | None = None

    wf = Workflow(
        handoff("a", ["a", "b"], max_handoffs=2), agents=[s("a", out=Routed), s("b", out=Routed)]
    )
    problems = [p for p in wf.check().problems if p.code == "unknown-handoff-target"]
    assert {p.where for p in problems} == {"handoff/a", "handoff/b"}
    assert all("'legal'" in p.message for p in problems)


def test_start_outside_the_set_and_unknown_names_are_reported():
    wf = Workflow(handoff("boss", ["a", "ghost"], max_handoffs=2), agents=[s("boss"), s("a")])
    codes = {(p.code, p.where) for p in wf.check().problems}
    assert codes == {("handoff-start", "handoff"), ("unknown-agent", "handoff/ghost")}


def test_inputs_and_outputs_are_type_checked():
    class Answer(BaseModel):
        answer: str
        handoff_to: str | None = None

    class Other(BaseModel):
        score: int
        handoff_to: str | None = None

    wf = Workflow(
        handoff("a", ["a", "b", "c"], max_handoffs=2),
        agents=[s("a", out=Answer), s("b", inp=Strict, out=Answer), s("c", out=Other)],
    )
    messages = [p.message for p in wf.check().problems if p.code == "type-mismatch"]
    # b forbids extra fields, so it cannot take handoff_from / handoff_note
    assert any("'b' (Strict)" in m and "handoff_from" in m for m in messages)
    # c's output does not satisfy the result type (the start's Answer)
    assert any(
        "output of 'c' (Other)" in m and "handoff result" in m and "answer" in m for m in messages
    )
    assert len(messages) == 3


class TextIn(BaseModel):
    input: str
    handoff_from: str


class OnlyToB(BaseModel):
    answer: str = ""
    handoff_to: Literal["b"] | None = None
    note: str | None = None


def test_text_input_travels_under_input():
    # a's handoff_to can only name b, so a never receives a handoff input: no problem
    wf = Workflow(
        handoff("a", ["a", "b"], max_handoffs=1),
        agents=[s("a", inp=Text, out=OnlyToB), s("b", inp=TextIn, out=OnlyToB)],
    )
    assert wf.check().ok
    # with an open str field a could be handed back to, and it cannot read the handoff input
    wf = Workflow(
        handoff("a", ["a", "b"], max_handoffs=1), agents=[s("a", inp=Text), s("b", inp=TextIn)]
    )
    (problem,) = wf.check().problems
    assert problem.code == "type-mismatch" and "'a' (Text)" in problem.message


async def test_text_input_payload_at_runtime():
    a = s("a", [to("b", "over to you")], inp=Text, out=OnlyToB)
    b = s("b", [to(None, answer="ok")], inp=TextIn, out=OnlyToB)
    result = await Workflow(handoff("a", ["a", "b"], max_handoffs=1), agents=[a, b]).run("hi")
    assert result.ok and b.inputs == [TextIn(input="hi", handoff_from="a")]


def test_bound_is_turns_times_worst_agent():
    policy = Policy(retry=NO_RETRY, max_repairs=0)
    wf = Workflow(handoff("a", ["a", "b"], max_handoffs=3), agents=[s("a"), s("b")], policy=policy)
    assert wf.estimate().calls == 4
    unbounded = Workflow(handoff("a", ["a"], max_handoffs=None), agents=[s("a")], policy=policy)
    assert unbounded.estimate().seconds is None


async def test_budget_exhausted_mid_handoff_keeps_finished_steps():
    a = s("a", [to("b")])
    b = s("b", [to("c")])
    c = s("c", [to(None, answer="never")])
    wf = Workflow(
        handoff("a", ["a", "b", "c"], max_handoffs=5),
        agents=[a, b, c],
        policy=Policy(budget=Budget(calls=2)),
    )
    result = await wf.run(TICKET)
    err = result.error
    assert result.status == "failed" and isinstance(err, BudgetExceeded)
    assert err.dimension == "calls" and err.limit == 2 and err.measured == 3
    assert err.step == "handoff[2]/c"
    assert set(result.partial) == {"handoff[0]/a", "handoff[1]/b"}
    assert c.calls == 0


async def test_llm_agents_hand_off_through_scripted_providers():
    triage_llm = ScriptedProvider([{"answer": "", "handoff_to": "billing", "note": "refund"}])
    billing_llm = ScriptedProvider([{"answer": "refund issued", "handoff_to": None}])
    contract = Contract(Inbound, Reply)
    triage = LLMAgent(
        "triage", instructions="Route the ticket.", provider=triage_llm, contract=contract
    )
    billing = LLMAgent(
        "billing", instructions="Handle billing.", provider=billing_llm, contract=contract
    )
    wf = Workflow(
        handoff("triage", ["triage", "billing"], max_handoffs=2), agents=[triage, billing]
    )
    result = await wf.run(TICKET)
    assert result.ok and result.output.answer == "refund issued"
    # billing's prompt carries the typed handoff payload, not triage's transcript
    sent = json.loads(billing_llm.requests[0].messages[1].content)
    assert sent == {
        "text": "I was charged twice",
        "handoff_from": "triage",
        "handoff_note": "refund",
    }
    assert result.usage.requests == 2
    triage_llm.assert_exhausted()
    billing_llm.assert_exhausted()
