"""The built-in LLM agent over ScriptedProvider: parsing, repair, tools, bad output, cost."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.tool import tool
from orchestrion.contracts.contract import Contract
from orchestrion.cost.prices import price_of
from orchestrion.errors import (
    BudgetExceeded,
    EmptyOutput,
    MalformedOutput,
    OutputTooLarge,
    ScriptExhausted,
    ToolRoundsExceeded,
)
from orchestrion.guards.budget import Budget
from orchestrion.providers.base import ToolCall, estimate_tokens
from orchestrion.providers.resolve import resolve_provider
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Ticket(BaseModel):
    subject: str
    body: str


class Reply(BaseModel):
    answer: str
    confidence: float


def writer(provider, **kw) -> LLMAgent:
    return LLMAgent("writer", instructions="Answer the ticket.", provider=provider,
                    contract=Contract(Ticket, Reply, max_output_chars=kw.pop("limit", 10_000)),
                    **kw)


TICKET = {"subject": "refund", "body": "I was charged twice"}


async def run(provider, **kw):
    agents = [writer(provider, **{k: v for k, v in kw.items() if k != "policy"})]
    return await Workflow("writer", agents=agents, tools=kw.get("_tools", []),
                          policy=kw.get("policy")).run(TICKET)


async def test_prompt_carries_typed_payload_and_schema():
    p = ScriptedProvider([{"answer": "refunded", "confidence": 0.9}])
    result = await run(p)
    assert result.ok and result.output == Reply(answer="refunded", confidence=0.9)
    req = p.requests[0]
    assert json.loads(req.messages[1].content) == TICKET  # the payload, not a transcript
    assert "confidence" in req.messages[0].content  # the output schema is asked for
    assert req.output_schema == Reply.model_json_schema()
    p.assert_exhausted()


async def test_fenced_json_is_accepted():
    p = ScriptedProvider(['```json\n{"answer": "ok", "confidence": 1}\n```'])
    assert (await run(p)).output.answer == "ok"


async def test_non_json_is_repaired_with_the_error_fed_back():
    p = ScriptedProvider(["Sure! Here you go", {"answer": "ok", "confidence": 0.5}])
    result = await run(p)
    assert result.ok
    feedback = p.requests[1].messages[-1].content
    assert "not JSON" in feedback


async def test_schema_invalid_twice_is_a_typed_error():
    p = ScriptedProvider([{"answer": "x"}, {"answer": "y"}, {"answer": "z"}])
    result = await run(p, max_repairs=2)
    err = result.error
    assert isinstance(err, MalformedOutput)
    assert "confidence" in err.message and err.step == "writer" and err.agent == "writer"
    assert p.calls == 3


async def test_empty_output_is_a_typed_error():
    p = ScriptedProvider(["", "   "])
    result = await run(p, max_repairs=1)
    assert isinstance(result.error, EmptyOutput)


async def test_huge_output_is_refused_not_parsed():
    p = ScriptedProvider(["{" + '"answer": "' + "x" * 50_000 + '", "confidence": 1}'])
    result = await run(p, limit=1000)
    err = result.error
    assert isinstance(err, OutputTooLarge) and err.limit == 1000 and err.size > 50_000


async def test_unexpected_extra_call_fails_loudly():
    p = ScriptedProvider(["not json"])
    result = await run(p, max_repairs=1)
    assert isinstance(result.error, ScriptExhausted)
    assert "request #2" in str(result.error)


async def test_missing_call_is_reported():
    p = ScriptedProvider([{"answer": "a", "confidence": 1}, {"answer": "b", "confidence": 1}])
    await run(p)
    with pytest.raises(ScriptExhausted, match="never requested"):
        p.assert_exhausted()


async def test_tool_round_trip_goes_through_the_choke_point():
    @tool
    def order_status(order_id: str) -> dict:
        """Look up an order."""
        return {"order_id": order_id, "status": "charged twice"}

    p = ScriptedProvider([
        ToolCall("c1", "order_status", {"order_id": "A17"}),
        {"answer": "refund issued", "confidence": 0.8},
    ])
    agent = LLMAgent("writer", instructions="x", provider=p, contract=Contract(Ticket, Reply),
                     tools=["order_status"])
    result = await Workflow("writer", agents=[agent], tools=[order_status]).run(TICKET)
    assert result.ok
    assert p.requests[0].tools[0].name == "order_status"
    tool_msg = p.requests[1].messages[-1]
    assert tool_msg.role == "tool" and "charged twice" in tool_msg.content
    assert result.step("writer/tool[1]:order_status").output["status"] == "charged twice"


async def test_tool_rounds_are_bounded():
    @tool
    def ping(n: int) -> int:
        return n

    p = ScriptedProvider([ToolCall(f"c{i}", "ping", {"n": i}) for i in range(3)])
    agent = LLMAgent("writer", instructions="x", provider=p, contract=Contract(Ticket, Reply),
                     tools=["ping"], max_tool_rounds=2)
    result = await Workflow("writer", agents=[agent], tools=[ping]).run(TICKET)
    assert isinstance(result.error, ToolRoundsExceeded)


async def test_bad_tool_arguments_go_back_to_the_model():
    @tool
    def ping(n: int) -> int:
        return n

    p = ScriptedProvider([ToolCall("c1", "ping", {"n": "many"}),
                          {"answer": "done", "confidence": 1}])
    agent = LLMAgent("writer", instructions="x", provider=p, contract=Contract(Ticket, Reply),
                     tools=["ping"])
    result = await Workflow("writer", agents=[agent], tools=[ping]).run(TICKET)
    assert result.ok
    assert "invalid arguments" in p.requests[1].messages[-1].content


async def test_usage_and_cost_follow_the_documented_token_count():
    text = '{"answer": "ok", "confidence": 1}'
    p = ScriptedProvider([text], model="gpt-4o-mini")
    result = await run(p)
    usage = result.usage_by_agent["writer"]
    assert usage.output_tokens == estimate_tokens(text)
    assert usage.requests == 1
    expected = price_of("gpt-4o-mini").cost(usage.input_tokens, usage.output_tokens)
    assert usage.usd == pytest.approx(expected)
    assert result.usage.usd == pytest.approx(expected)


async def test_usd_budget_refuses_a_call_that_would_exceed_it():
    p = ScriptedProvider([{"answer": "ok", "confidence": 1}], model="gpt-4o")
    result = await run(p, policy=Policy(budget=Budget(usd=0.0001)))
    err = result.error
    assert isinstance(err, BudgetExceeded) and err.dimension == "usd" and err.before_call
    assert err.limit == 0.0001 and err.measured > 0.0001
    assert "$0.0001" in str(err)
    assert p.calls == 0  # refused before any spend


async def test_provider_strings_resolve_to_scripted():
    p = resolve_provider("scripted:gpt-4o-mini", responses=["hi"])
    assert isinstance(p, ScriptedProvider) and p.model == "gpt-4o-mini"
