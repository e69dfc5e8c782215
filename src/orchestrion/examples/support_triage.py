"""Support triage: route a ticket, research it in parallel, write and review a reply.

The main job of ``orchestrion demo``.  Every LLM agent runs on a
:class:`ScriptedProvider` whose answers are computed from the request it gets,
so the whole multi-agent flow runs offline, deterministically, with realistic
token counts and prices (the scripted providers are named after real models
only to price them).

Flow::

    chain(
      route(triage, {
        billing:   chain(parallel(ticket=intake, policy=policy_research,
                                  account=account_research), billing_brief),
        technical: chain(parallel(ticket=intake, kb=kb_research, logs=log_research), tech_brief),
        general:   general_brief,
      }),
      refine(writer, reviewer, max_rounds=3),
    )
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from orchestrion.agents.function import agent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.tool import tool
from orchestrion.contracts.contract import Contract
from orchestrion.guards.budget import Budget
from orchestrion.guards.retry import Retry
from orchestrion.patterns.chain import chain
from orchestrion.patterns.parallel import parallel
from orchestrion.patterns.refine import refine
from orchestrion.patterns.route import route
from orchestrion.providers.base import ModelRequest, ModelSettings, ToolCall
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow

# ---------------------------------------------------------------------------- contracts


class Ticket(BaseModel):
    customer: str
    subject: str
    body: str


class Triage(BaseModel):
    label: Literal["billing", "technical", "general"]
    urgency: Literal["low", "normal", "high"]
    reason: str


class Research(BaseModel):
    findings: list[str]
    sources: list[str] = Field(default_factory=list)


class BillingResearch(BaseModel):
    ticket: Ticket
    policy: Research
    account: Research


class TechResearch(BaseModel):
    ticket: Ticket
    kb: Research
    logs: Research


class Brief(BaseModel):
    customer: str
    topic: str
    facts: list[str]
    tone: Literal["apologetic", "neutral", "friendly"] = "neutral"


class DraftRequest(Brief):
    feedback: str | None = None
    previous: dict[str, Any] | None = None


class Reply(BaseModel):
    subject: str
    body: str


class Review(BaseModel):
    input: Brief
    draft: Reply
    round: int


class Verdict(BaseModel):
    accepted: bool
    feedback: str
    score: float = Field(ge=0, le=1)


SAMPLE_TICKETS: dict[str, Ticket] = {
    "billing": Ticket(customer="Dana Ortiz", subject="Charged twice for March",
                      body="My card was charged twice for order A-1042 this month. "
                           "Please refund the duplicate payment."),
    "technical": Ticket(customer="Lee Park", subject="App crashes on export",
                        body="Since the last update the desktop app crashes every time I "
                             "export a report to PDF. Error code E42."),
    "general": Ticket(customer="Sam Weller", subject="Do you have a student plan?",
                      body="I'm a student and wondered whether there is a discount."),
}

# ---------------------------------------------------------------------------- tools

_POLICIES = {
    "duplicate charge": "Duplicate charges are refunded in full within 5 business days.",
    "refund": "Refunds go back to the original payment method.",
}
_ORDERS = {"A-1042": [("2026-03-02", 49.00, "settled"), ("2026-03-02", 49.00, "settled")]}
_KB = {"E42": "E42 is a PDF export crash fixed in version 4.2.1; clearing the font cache "
              "is a workaround."}


@tool(effects=["read"])
def search_policies(query: str) -> list[str]:
    """Search the billing policy handbook."""
    return [text for key, text in _POLICIES.items() if key.split()[0] in query.lower()]


@tool(effects=["read"])
def order_history(order_id: str) -> list[dict[str, Any]]:
    """Payments recorded for an order."""
    return [{"date": d, "amount": a, "status": s} for d, a, s in _ORDERS.get(order_id, [])]


@tool(effects=["read"], trusted_output=False)
def search_kb(query: str) -> list[str]:
    """Search the public knowledge base (community-edited: untrusted)."""
    return [text for code, text in _KB.items() if code in query]


# ---------------------------------------------------------------------------- scripted models


def _payload(request: ModelRequest) -> dict[str, Any]:
    return json.loads(request.messages[1].content)


def _triage_model(request: ModelRequest) -> dict[str, Any]:
    ticket = _payload(request)
    text = (ticket["subject"] + " " + ticket["body"]).lower()
    if any(w in text for w in ("charge", "refund", "invoice", "payment")):
        return {"label": "billing", "urgency": "high",
                "reason": "mentions a charge and asks for a refund"}
    if any(w in text for w in ("crash", "error", "bug")):
        return {"label": "technical", "urgency": "normal", "reason": "reports a crash"}
    return {"label": "general", "urgency": "low", "reason": "product question"}


def _researcher(tool_name: str, query_of):  # one tool round, then findings
    def respond(request: ModelRequest) -> Any:
        last = request.messages[-1]
        if last.role != "tool":
            return ToolCall("call_1", tool_name, {"query": query_of(_payload(request))})
        found = json.loads(last.content)
        return {"findings": found or ["nothing relevant found"], "sources": [tool_name]}

    return respond


def _writer_model(request: ModelRequest) -> dict[str, Any]:
    brief = _payload(request)
    facts = " ".join(brief["facts"])
    opener = {"apologetic": "I'm sorry for the trouble.", "friendly": "Thanks for asking!",
              "neutral": "Thanks for reaching out."}[brief.get("tone", "neutral")]
    body = f"Hi {brief['customer'].split()[0]}, {opener} {facts}"
    if brief.get("feedback"):
        body += " You'll get a confirmation email as soon as this is done."
    return {"subject": f"Re: {brief['topic']}", "body": body}


def _reviewer_model(request: ModelRequest) -> dict[str, Any]:
    review = _payload(request)
    body = review["draft"]["body"]
    if "confirmation" not in body:
        return {"accepted": False, "score": 0.6,
                "feedback": "Tell the customer what happens next and when they will hear back."}
    return {"accepted": True, "score": 0.92, "feedback": "Clear, accurate and kind."}


# ---------------------------------------------------------------------------- agents


@agent(tools=["order_history"])
async def account_research(ticket: Ticket, ctx) -> Research:
    """Look up the payments of the order the ticket mentions."""
    order_id = next((w.strip(".,") for w in ticket.body.split() if w.startswith("A-")), "")
    payments = await ctx.use("order_history", {"order_id": order_id})
    dupes = len(payments) - len({(p["date"], p["amount"]) for p in payments})
    findings = [f"order {order_id} has {len(payments)} payment(s), {dupes} duplicate(s)"]
    return Research(findings=findings, sources=["order_history"])


@agent
def intake(ticket: Ticket) -> Ticket:
    """Normalize the ticket (whitespace, casing of the customer name)."""
    return Ticket(customer=ticket.customer.strip().title(), subject=ticket.subject.strip(),
                  body=" ".join(ticket.body.split()))


@agent
def log_research(ticket: Ticket) -> Research:
    """Match the error code against crash telemetry."""
    words = [w.strip(".,") for w in ticket.body.split()]
    code = next((w for w in words if w[:1] == "E" and w[1:].isdigit()), "none")
    return Research(findings=[f"telemetry: 312 crashes with {code} on 4.2.0, none on 4.2.1"],
                    sources=["telemetry"])


@agent
def billing_brief(research: BillingResearch) -> Brief:
    """Combine policy and account findings into a brief for the writer."""
    return Brief(customer=research.ticket.customer, topic="your duplicate charge",
                 tone="apologetic",
                 facts=research.account.findings + research.policy.findings)


@agent
def tech_brief(research: TechResearch) -> Brief:
    """Combine knowledge-base and telemetry findings into a brief for the writer."""
    return Brief(customer=research.ticket.customer, topic="the crash on export",
                 tone="apologetic",
                 facts=research.kb.findings + research.logs.findings)


@agent
def general_brief(ticket: Ticket) -> Brief:
    """Answer product questions from the plan catalogue."""
    return Brief(customer=ticket.customer, topic=ticket.subject, tone="friendly",
                 facts=["Students get 50% off any plan with a valid student email."])


def build(*, budget_usd: float = 0.05) -> Workflow:
    """The support-triage workflow on scripted providers (fresh providers each call).

    Each LLM agent declares tight limits (prompt size, tool rounds, repairs), which
    is what makes the pre-flight worst-case bound small enough to budget against.
    """
    mini, big = "gpt-4o-mini", "gpt-4o"
    limits: dict[str, Any] = {"max_input_tokens": 2_000, "max_repairs": 1,
              "settings": ModelSettings(max_tokens=400)}
    agents = [
        LLMAgent("triage", instructions="Classify the support ticket.",
                 provider=ScriptedProvider(_triage_model, model=mini),
                 contract=Contract(Ticket, Triage), max_tool_rounds=0, **limits),
        LLMAgent("policy_research", instructions="Find the billing policies that apply.",
                 provider=ScriptedProvider(_researcher("search_policies",
                                                       lambda t: "duplicate charge refund"),
                                           model=mini),
                 contract=Contract(Ticket, Research), tools=["search_policies"],
                 max_tool_rounds=1, **limits),
        LLMAgent("kb_research", instructions="Search the knowledge base for the error.",
                 provider=ScriptedProvider(_researcher("search_kb",
                                                       lambda t: t["body"]), model=mini),
                 contract=Contract(Ticket, Research), tools=["search_kb"], max_tool_rounds=1,
                 **limits),
        intake, account_research, log_research, billing_brief, tech_brief, general_brief,
        LLMAgent("writer", instructions="Write the customer reply from the brief. Use only "
                 "the facts given.", provider=ScriptedProvider(_writer_model, model=big),
                 contract=Contract(DraftRequest, Reply), max_tool_rounds=0, **limits),
        LLMAgent("reviewer", instructions="Review the draft reply: accurate, complete, kind?",
                 provider=ScriptedProvider(_reviewer_model, model=mini),
                 contract=Contract(Review, Verdict), max_tool_rounds=0, **limits),
    ]
    flow = chain(
        route("triage", {
            "billing": chain(parallel(ticket="intake", policy="policy_research",
                                      account="account_research"),
                             "billing_brief"),
            "technical": chain(parallel(ticket="intake", kb="kb_research",
                                        logs="log_research"), "tech_brief"),
            "general": "general_brief",
        }),
        refine("writer", "reviewer", max_rounds=3),
    )
    return Workflow(flow, agents=agents, tools=[search_policies, order_history, search_kb],
                    policy=Policy(budget=Budget(usd=budget_usd, calls=60),
                                  retry=Retry(max_attempts=2)),
                    name="support-triage", input=Ticket)
