"""Workflow.check(): every problem reported at once, before any run starts."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.contracts.contract import Contract
from orchestrion.errors import CheckFailed
from orchestrion.guards.budget import Budget
from orchestrion.patterns.chain import chain
from orchestrion.patterns.route import route
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Q(BaseModel):
    text: str


class Order(BaseModel):
    order_id: str
    qty: int


class Order2(BaseModel):
    order_id: str
    qty: str


class Shipment(BaseModel):
    order_id: str
    qty: int
    address: str


class Tri(BaseModel):
    label: Literal["billing", "tech"]


def s(name, inp, out):
    return StubAgent(name, Contract(inp, out))


def test_incompatible_edge_names_both_ends_and_the_field():
    wf = Workflow(chain("intake", "shipper"),
                  agents=[s("intake", Q, Order2), s("shipper", Order, Shipment)])
    report = wf.check()
    assert not report.ok
    msgs = [str(p) for p in report.problems]
    assert any("'intake'" in m and "'shipper'" in m and "qty" in m for m in msgs), msgs
    assert report.problems[0].code == "type-mismatch"
    assert report.problems[0].where == "chain[1]/shipper"


def test_missing_required_field_is_reported():
    wf = Workflow(chain("intake", "ship"),
                  agents=[s("intake", Q, Order), s("ship", Shipment, Q)])
    msgs = " ".join(str(p) for p in wf.check().problems)
    assert "address" in msgs


def test_every_problem_is_reported_at_once_and_no_run_starts():
    intake = s("intake", Q, Order2)
    wf = Workflow(chain("intake", "shipper", "ghost"),
                  agents=[intake, s("shipper", Order, Shipment)])
    report = wf.check()
    codes = sorted(p.code for p in report.problems)
    assert codes == ["type-mismatch", "unknown-agent"]
    with pytest.raises(CheckFailed) as info:
        wf.run_sync({"text": "x"})
    assert len(info.value.problems) == 2
    assert intake.calls == 0


def test_route_labels_unrouted_and_unreachable():
    wf = Workflow(route("triage", {"billing": "b", "sales": "b"}),
                  agents=[s("triage", Q, Tri), s("b", Q, Q)])
    problems = {p.code: p for p in wf.check().problems}
    assert "tech" in problems["unrouted-label"].message
    assert problems["unreachable-branch"].where == "route[sales]"


def test_usd_budget_over_unpriced_model_is_reported():
    llm = LLMAgent("w", instructions="x", provider=ScriptedProvider(model="homegrown-7b"),
                   contract=Contract(Q, Q))
    wf = Workflow("w", agents=[llm], policy=Policy(budget=Budget(usd=1.0)))
    (problem,) = wf.check().problems
    assert problem.code == "unpriced-model" and "homegrown-7b" in problem.message


def test_granted_tool_must_exist():
    a = StubAgent("a", Contract(Q, Q), tools=["search"])
    (problem,) = Workflow("a", agents=[a]).check().problems
    assert problem.code == "unknown-tool"


def test_bound_is_computed_from_structure():
    p = ScriptedProvider(model="gpt-4o-mini")
    llm = LLMAgent("w", instructions="x", provider=p, contract=Contract(Q, Q),
                   max_repairs=0, max_tool_rounds=0)
    one = Workflow("w", agents=[llm], policy=Policy(max_repairs=0)).estimate()
    two = Workflow(chain("w", "w"), agents=[llm], policy=Policy(max_repairs=0)).estimate()
    assert two.usd == pytest.approx(2 * one.usd) and two.requests == 2 * one.requests
    assert one.usd > 0 and one.seconds is not None
