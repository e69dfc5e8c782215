"""Context window policy: prune, summarize, fail; the provider never gets an oversize request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.tool import tool
from orchestrion.contracts.contract import Contract
from orchestrion.errors import ContextOverflow, GuardTripped
from orchestrion.guards import context_window as cw
from orchestrion.providers.base import (
    Message,
    ModelRequest,
    ModelSettings,
    ToolCall,
    estimate_request_tokens,
)
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.workflow import Workflow


class Ask(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str


BIG = "lorem ipsum dolor sit amet " * 90  # ~2,400 characters, ~600 tokens


@tool
def fetch(n: int) -> str:
    """Fetch a long page."""
    return f"page {n}: {BIG}"


def pages_then_answer(pages: int):
    """A model that asks for ``pages`` pages (it remembers what it asked: a summary may have
    replaced the pages in its context), then answers."""
    asked = [0]

    def respond(request: ModelRequest) -> Any:
        if asked[0] < pages:
            asked[0] += 1
            return ToolCall(id=f"t{asked[0]}", name="fetch", arguments={"n": asked[0]})
        return {"answer": f"read {asked[0]} pages"}

    return respond


def reader(provider: ScriptedProvider, **kw: Any) -> LLMAgent:
    return LLMAgent(
        "reader",
        instructions="Read and answer.",
        provider=provider,
        contract=Contract(Ask, Answer),
        tools=["fetch"],
        max_tool_rounds=8,
        settings=ModelSettings(max_tokens=200),
        **kw,
    )


def sizes(provider: ScriptedProvider) -> list[int]:
    return [estimate_request_tokens(r) + r.settings.max_tokens for r in provider.requests]


# --------------------------------------------------------------------------- pure functions


def conversation(n_tools: int) -> ModelRequest:
    msgs = [Message("system", "sys"), Message("user", '{"question": "q"}')]
    for i in range(n_tools):
        call = ToolCall(id=f"c{i}", name="fetch", arguments={"n": i})
        msgs += [
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", f"{i}:{BIG}", tool_call_id=f"c{i}", name="fetch"),
        ]
    return ModelRequest(messages=tuple(msgs))


def test_split_keeps_tool_results_with_their_call():
    head, groups = cw.split(conversation(3).messages)
    assert [m.role for m in head] == ["system", "user"]
    assert [[m.role for m in g] for g in groups] == [["assistant", "tool"]] * 3


def test_prune_elides_oldest_tool_results_first_and_keeps_the_latest_exchange():
    request = conversation(4)
    before = estimate_request_tokens(request)
    fit = cw.prune(request, before - 700)  # room for everything but about one page
    assert fit.after <= before - 700 and fit.elided == 2 and fit.dropped == 0
    contents = [m.content for m in fit.request.messages if m.role == "tool"]
    assert contents[0].startswith("[elided:") and contents[1].startswith("[elided:")
    assert contents[2].startswith("2:") and contents[3].startswith("3:")  # the recent ones stay
    assert fit.request.messages[:2] == request.messages[:2]  # system + typed payload kept


def test_prune_drops_whole_exchanges_then_truncates_the_latest_result():
    request = conversation(4)
    head_only = estimate_request_tokens(ModelRequest(messages=request.messages[:2]))
    fit = cw.prune(request, head_only + 300)
    assert fit.after <= head_only + 300 and fit.dropped == 3
    (last_tool,) = [m for m in fit.request.messages if m.role == "tool"]
    assert "characters cut to fit the context" in last_tool.content
    assert "3 exchange(s) dropped" in fit.describe(head_only + 300)


def test_summary_text_reads_the_common_shapes():
    class Summ(BaseModel):
        summary: str

    assert cw.summary_text(Summ(summary="s")) == "s"
    assert cw.summary_text(Answer(answer="a")) == str(Answer(answer="a"))
    assert cw.summary_text("plain") == "plain"


def test_input_limit_is_the_tighter_of_the_window_and_max_input_tokens():
    p = ScriptedProvider(context_window=1000)
    assert cw.input_limit(p, 200, 16_000) == (800, "context window of 1000 minus max_tokens=200")
    assert cw.input_limit(p, 200, 500) == (500, "max_input_tokens=500")


# --------------------------------------------------------------------------- the LLM agent


async def test_prune_lets_the_agent_finish_inside_the_window():
    provider = ScriptedProvider(pages_then_answer(4), context_window=1600)
    result = await Workflow(
        "reader", agents=[reader(provider, overflow="prune")], tools=[fetch]
    ).run({"question": "q"})
    assert result.ok and result.output.answer == "read 4 pages"
    assert max(sizes(provider)) <= 1600
    decisions = [e for e in result.events_of("decision") if e.pattern == "context_window"]  # type: ignore[attr-defined]
    assert decisions and "tool result(s) elided" in decisions[0].reason  # type: ignore[attr-defined]
    # Usage per hop is the provider's count of what was really sent.
    assert result.usage.requests == 5 and result.step("reader").usage.input_tokens > 0


async def test_fail_is_a_typed_error_and_nothing_oversize_is_sent():
    provider = ScriptedProvider(pages_then_answer(4), context_window=1600)
    result = await Workflow("reader", agents=[reader(provider)], tools=[fetch]).run(
        {"question": "q"}
    )
    err = result.error
    assert isinstance(err, ContextOverflow) and isinstance(err, GuardTripped)
    assert (err.step, err.agent, err.guard, err.limit) == (
        "reader",
        "reader",
        "context_window",
        1400,
    )
    assert err.measured > 1400 and "overflow='prune'" in err.hint
    assert max(sizes(provider)) <= 1600 and provider.calls == 3  # the 4th would not fit
    (trip,) = result.events_of("guard.tripped")
    assert trip.guard == "context_window"  # type: ignore[attr-defined]


async def test_summarize_replaces_the_middle_with_the_summarizers_summary():
    seen: list[cw.SummaryRequest] = []

    @agent
    def condenser(req: cw.SummaryRequest) -> cw.Summary:
        seen.append(req)
        return cw.Summary(summary=f"{req.text.count('[tool fetch]')} pages about lorem ipsum")

    provider = ScriptedProvider(pages_then_answer(4), context_window=1600)
    llm = reader(provider, overflow="summarize", summarizer="condenser")
    result = await Workflow("reader", agents=[llm, condenser], tools=[fetch]).run({"question": "q"})
    assert result.ok, result.error
    assert max(sizes(provider)) <= 1600
    assert seen and seen[0].max_tokens > 0 and "[tool fetch]" in seen[0].text
    summarized = [
        r
        for r in provider.requests
        if any(m.content.startswith("Summary of the earlier") for m in r.messages)
    ]
    assert summarized and "pages about lorem ipsum" in summarized[0].messages[2].content
    assert any(s.key.startswith("reader/call[") and s.agent == "condenser" for s in result.steps)
    assert result.calls_by_agent["condenser"] >= 1  # the summarizer's cost is its own


async def test_a_payload_too_large_for_the_window_fails_before_any_request():
    provider = ScriptedProvider([{"answer": "x"}], context_window=600)
    llm = LLMAgent(
        "reader",
        instructions="x",
        provider=provider,
        contract=Contract(Ask, Answer),
        overflow="prune",
        settings=ModelSettings(max_tokens=200),
    )
    result = await Workflow("reader", agents=[llm]).run({"question": BIG})
    err = result.error
    assert isinstance(err, ContextOverflow) and provider.calls == 0
    assert "typed payload alone" in err.hint and "max_output_chars" in err.hint


def test_overflow_settings_are_checked():
    p = ScriptedProvider()
    with pytest.raises(ValueError, match="overflow must be"):
        LLMAgent("a", instructions="x", provider=p, contract=Contract(Ask, Answer), overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="summarizer"):
        LLMAgent(
            "a", instructions="x", provider=p, contract=Contract(Ask, Answer), overflow="summarize"
        )


def test_the_payload_stays_typed_json():
    request = conversation(1)
    assert json.loads(cw.prune(request, 10).request.messages[1].content) == {"question": "q"}
