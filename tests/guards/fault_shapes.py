"""Flow shapes for fault injection: one healthy flow per pattern, with named fault slots.

Each :class:`Shape` is a small healthy workflow (chain, route, parallel,
orchestrate, refine, handoff) whose *slots* are the positions where a test puts a
faulty agent (or, in chain/route/parallel, a faulty sub-flow).  A shape knows the
step key of each slot and which steps must have finished before a fault there,
so a test can check that a fault is attributed to the right step and agent and
that finished work stayed on the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from orchestrion.agents.function import FunctionAgent
from orchestrion.agents.llm import LLMAgent
from orchestrion.contracts.contract import Contract, coerce
from orchestrion.errors import ProviderError
from orchestrion.guards.retry import NO_RETRY
from orchestrion.patterns.base import Flow
from orchestrion.patterns.chain import chain
from orchestrion.patterns.handoff import handoff
from orchestrion.patterns.orchestrate import Plan, Task, orchestrate
from orchestrion.patterns.parallel import Parallel
from orchestrion.patterns.refine import refine
from orchestrion.patterns.route import route
from orchestrion.providers.base import (
    ModelRequest,
    ModelSettings,
    ToolCall,
    estimate_request_tokens,
)
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow

# --------------------------------------------------------------------------- models


class Doc(BaseModel):
    text: str


class Label(BaseModel):
    label: Literal["go", "other"]


class Trio(BaseModel):
    s0: Doc
    s1: Doc
    s2: Doc


class GenIn(BaseModel):
    text: str
    feedback: str | None = None
    previous: Doc | None = None


class Review(BaseModel):
    input: Doc
    draft: Doc
    round: int


class Verdict(BaseModel):
    accepted: bool
    feedback: str = ""


class Inbound(BaseModel):
    text: str
    handoff_from: str | None = None
    handoff_note: str | None = None


class Reply(BaseModel):
    text: str = ""
    handoff_to: str | None = None
    note: str | None = None


class Item(BaseModel):
    agent: str
    id: str | None = None
    output: Doc


class Synthesis(BaseModel):
    input: Doc
    results: list[Item]


DOC = Contract(Doc, Doc)
INPUT = {"text": "q"}

# --------------------------------------------------------------------------- healthy behaviour


def passthrough(name: str) -> Callable[[Any], Any]:
    return lambda d: Doc(text=f"{d.text}>{name}")


def draft_number(previous: Doc | None) -> int:
    return 0 if previous is None else int(previous.text.split()[-1]) + 1


def generator(g: GenIn) -> Doc:
    """A generator that makes progress: draft 0, draft 1, draft 2, ..."""
    return Doc(text=f"draft {draft_number(g.previous)}")


def critic(r: Review) -> Verdict:
    """Accepts the third draft."""
    ok = r.draft.text == "draft 2"
    return Verdict(accepted=ok, feedback="" if ok else f"improve {r.draft.text}")


def forward(to: str | None) -> Callable[[Any], Any]:
    return lambda i: Reply(text="" if to else "answered", handoff_to=to, note=to and f"to {to}")


def planner(d: Doc) -> Plan:
    return Plan(tasks=[Task(agent=s, input={"text": d.text}, id=s) for s in ("s0", "s1", "s2")])


def synth(s: Synthesis) -> Doc:
    return Doc(text=" + ".join(i.output.text for i in s.results))


def post(t: Trio) -> Doc:
    return Doc(text=" | ".join((t.s0.text, t.s1.text, t.s2.text)))


# --------------------------------------------------------------------------- shapes


@dataclass
class Shape:
    """A healthy flow with fault slots.  ``build`` swaps agents (or sub-flows) in."""

    name: str
    slots: tuple[str, ...]
    contracts: dict[str, Contract]
    healthy: dict[str, Callable[[Any], Any]]
    make: Callable[[Mapping[str, Flow], dict[str, Any]], Flow]
    prefix: Callable[[str], str]  # slot -> key prefix of the slot
    before: Callable[[str], list[str]]  # slot -> keys that finish before the slot runs
    nestable: bool = False  # slots may hold sub-flows
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self, slot: str, leaf: str | None = None) -> str:
        return self.prefix(slot) + (leaf or slot)

    def agents(self, overrides: Mapping[str, Any] = ()) -> list[Any]:
        over = dict(overrides)
        out = [
            over.pop(n, None) or FunctionAgent(fn, self.contracts[n], name=n)
            for n, fn in self.healthy.items()
        ]
        return out + list(over.values())

    def build(
        self,
        agents: Mapping[str, Any] = (),
        *,
        flows: Mapping[str, Flow] = (),
        node: Mapping[str, Any] = (),
        policy: Policy | None = None,
        tools: list[Any] | None = None,
    ) -> Workflow:
        """The workflow with ``agents`` replacing healthy ones, ``flows`` in slots,
        ``node`` keyword arguments (timeout_s, budget, merge) on the shape's main node."""
        flow = self.make(dict(flows), dict(node))
        return Workflow(
            flow,
            agents=self.agents(agents),
            tools=tools or [],
            policy=policy or Policy(retry=NO_RETRY, guards=()),
            name=self.name,
            input=Doc,
        )


def _chain() -> Shape:
    slots = ("s0", "s1", "s2")
    return Shape(
        "chain",
        slots,
        dict.fromkeys(slots, DOC),
        {s: passthrough(s) for s in slots},
        lambda f, kw: chain(*(f.get(s, s) for s in slots), **kw),
        lambda s: f"chain[{slots.index(s)}]/",
        lambda s: [f"chain[{i}]/{x}" for i, x in enumerate(slots[: slots.index(s)])],
        nestable=True,
    )


def _route() -> Shape:
    slots = ("s0", "s1", "s2")
    contracts = {**dict.fromkeys((*slots, "alt"), DOC), "classify": Contract(Doc, Label)}
    healthy = {s: passthrough(s) for s in (*slots, "alt")}
    healthy["classify"] = lambda d: Label(label="go")
    return Shape(
        "route",
        slots,
        contracts,
        healthy,
        lambda f, kw: route(
            "classify", {"go": chain(*(f.get(s, s) for s in slots), **kw), "other": "alt"}
        ),
        lambda s: f"route[go]/chain[{slots.index(s)}]/",
        lambda s: (
            ["route/classify"]
            + [f"route[go]/chain[{i}]/{x}" for i, x in enumerate(slots[: slots.index(s)])]
        ),
        nestable=True,
    )


def _parallel() -> Shape:
    slots = ("s0", "s1", "s2")
    contracts = {**dict.fromkeys(slots, DOC), "post": Contract(Trio, Doc)}
    healthy = {**{s: passthrough(s) for s in slots}, "post": post}
    return Shape(
        "parallel",
        slots,
        contracts,
        healthy,
        lambda f, kw: chain(Parallel({s: f.get(s, s) for s in slots}, **kw), "post"),
        lambda s: f"chain[0]/parallel[{slots.index(s)}]/",
        # Branches run concurrently: the *other* branches finish.
        lambda s: [f"chain[0]/parallel[{i}]/{x}" for i, x in enumerate(slots) if x != s],
        nestable=True,
    )


def _orchestrate() -> Shape:
    slots = ("s0", "s1", "s2")
    contracts = {
        **dict.fromkeys(slots, DOC),
        "planner": Contract(Doc, Plan),
        "synth": Contract(Synthesis, Doc),
    }
    healthy = {**{s: passthrough(s) for s in slots}, "planner": planner, "synth": synth}
    return Shape(
        "orchestrate",
        slots,
        contracts,
        healthy,
        lambda f, kw: orchestrate(
            "planner", workers=slots, synthesizer="synth", max_workers=3, concurrency=3, **kw
        ),
        lambda s: f"orchestrate[{slots.index(s)}]/",
        # Tasks are independent: a failing one never stops the others.
        lambda s: (
            ["orchestrate/planner"]
            + [f"orchestrate[{i}]/{x}" for i, x in enumerate(slots) if x != s]
        ),
    )


def _refine() -> Shape:
    contracts = {"gen": Contract(GenIn, Doc), "critic": Contract(Review, Verdict)}
    return Shape(
        "refine",
        ("gen", "critic"),
        contracts,
        {"gen": generator, "critic": critic},
        lambda f, kw: refine("gen", "critic", max_rounds=4, **kw),
        lambda s: "refine[0]/",
        lambda s: [] if s == "gen" else ["refine[0]/gen"],
    )


def _handoff() -> Shape:
    slots = ("h0", "h1", "h2")
    contracts = dict.fromkeys(slots, Contract(Inbound, Reply))
    healthy = {"h0": forward("h1"), "h1": forward("h2"), "h2": forward(None)}
    return Shape(
        "handoff",
        slots,
        contracts,
        healthy,
        lambda f, kw: handoff("h0", list(slots), max_handoffs=6, **kw),
        lambda s: f"handoff[{slots.index(s)}]/",
        lambda s: [f"handoff[{i}]/{x}" for i, x in enumerate(slots[: slots.index(s)])],
    )


SHAPES: dict[str, Shape] = {
    s.name: s for s in (_chain(), _route(), _parallel(), _orchestrate(), _refine(), _handoff())
}

# --------------------------------------------------------------------------- LLM slot agents


class WindowProvider(ScriptedProvider):
    """A scripted model with a *true* window it enforces like a real API (HTTP 400).

    ``declared`` is what it tells the runtime (``context_window``); the real limit is
    ``window``.  Every request is recorded, oversize ones included.
    """

    def __init__(
        self,
        responder: Callable[[ModelRequest], Any],
        *,
        window: int,
        declared: int | None = None,
        model: str = "scripted",
    ) -> None:
        super().__init__(responder, model=model, context_window=declared or 128_000)
        self.window = window

    def size(self, request: ModelRequest) -> int:
        return estimate_request_tokens(request) + request.settings.max_tokens

    async def complete(self, request: ModelRequest) -> Any:
        if self.size(request) > self.window:
            self.requests.append(request)
            raise ProviderError(
                f"context_length_exceeded: {self.size(request)} > {self.window} tokens"
            )
        return await super().complete(request)

    @property
    def largest(self) -> int:
        return max((self.size(r) for r in self.requests), default=0)


def paging_responder(
    contract: Contract, fn: Callable[[Any], Any], pages: int, tool: str = "page"
) -> Callable[[ModelRequest], Any]:
    """Ask for ``pages`` pages of ``tool`` (n=1, 2, ...), then answer like ``fn`` would."""

    def respond(request: ModelRequest) -> Any:
        seen = sum(1 for m in request.messages if m.role == "tool")
        if seen < pages:
            return ToolCall(id=f"c{seen + 1}", name=tool, arguments={"n": seen + 1})
        payload = coerce(contract.input, json.loads(request.messages[1].content))
        return fn(payload).model_dump_json()

    return respond


def llm_slot(
    shape: Shape, slot: str, provider: ScriptedProvider, tool: str = "page", **kw: Any
) -> LLMAgent:
    """An LLM agent in ``slot`` with the slot's contract, granted ``tool``."""
    kw.setdefault("settings", ModelSettings(max_tokens=200))
    return LLMAgent(
        slot,
        instructions=f"You are {slot}.",
        provider=provider,
        contract=shape.contracts[slot],
        tools=[tool],
        max_tool_rounds=8,
        **kw,
    )
