"""Workflows for the chaos test: every pattern, with agents that report re-execution.

Each agent, when it runs, asks the journal whether its own step is already
completed for this run.  If it is, the runtime executed a completed step twice:
the agent appends a line to the violations file.  Agents sleep a little so that
kills land mid-flight.  Outputs are deterministic, so final results can be checked.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from typing import Any

from pydantic import BaseModel

from orchestrion.agents.function import agent
from orchestrion.patterns import (
    Plan,
    chain,
    debate,
    handoff,
    mixture,
    orchestrate,
    parallel,
    refine,
    route,
)
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


async def _guard(ctx: Any) -> None:
    """Record a violation if this step is already completed in the journal, then nap."""
    journal = os.environ.get("CHAOS_JOURNAL")
    if not journal:  # the in-process reference run has no journal to check against
        return
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute(
            "SELECT 1 FROM steps WHERE run_id = ? AND step_key = ? AND status = 'succeeded'",
            (ctx.run_id, ctx.key)).fetchone()
    finally:
        con.close()
    if row is not None:
        with open(os.environ["CHAOS_VIOLATIONS"], "a") as fh:
            fh.write(f"{ctx.run_id} {ctx.key}\n")
    await asyncio.sleep(random.uniform(0.02, 0.08))


class N(BaseModel):
    n: int


class Label(BaseModel):
    label: str


class Draft(BaseModel):
    n: int
    version: int = 0


class DraftIn(BaseModel):
    n: int
    feedback: str | None = None
    previous: dict[str, Any] | None = None


class Review(BaseModel):
    input: N
    draft: Draft
    round: int


class Verdict(BaseModel):
    accepted: bool
    feedback: str = ""


class Hand(BaseModel):
    n: int
    handoff_to: str | None = None


class HandIn(BaseModel):
    n: int
    handoff_from: str | None = None


class Turn(BaseModel):
    input: N
    round: int
    positions: list[dict[str, Any]]


class Refs(BaseModel):
    input: N
    proposals: list[dict[str, Any]]


class Positions(BaseModel):
    input: N
    positions: list[dict[str, Any]]


@agent
async def inc(x: N, ctx) -> N:
    await _guard(ctx)
    return N(n=x.n + 1)


@agent
async def double(x: N, ctx) -> N:
    await _guard(ctx)
    return N(n=x.n * 2)


@agent
async def parity(x: N, ctx) -> Label:
    await _guard(ctx)
    return Label(label="even" if x.n % 2 == 0 else "odd")


@agent
async def planner(x: N, ctx) -> Plan:
    await _guard(ctx)
    return Plan.model_validate({"tasks": [{"agent": "inc", "input": {"n": x.n}},
                                          {"agent": "double", "input": {"n": x.n}}]})


class Synth(BaseModel):
    input: N
    results: list[dict[str, Any]]


class Pair(BaseModel):
    p: N
    q: N


@agent
async def total(x: Synth, ctx) -> N:
    await _guard(ctx)
    return N(n=sum(r["output"]["n"] for r in x.results))


@agent
async def writer(x: DraftIn, ctx) -> Draft:
    await _guard(ctx)
    version = (x.previous or {}).get("version", -1) + 1
    return Draft(n=x.n, version=version)


@agent
async def critic(x: Review, ctx) -> Verdict:
    await _guard(ctx)
    return Verdict(accepted=x.draft.version >= 2, feedback="again")


@agent
async def front(x: HandIn, ctx) -> Hand:
    await _guard(ctx)
    return Hand(n=x.n, handoff_to="back" if x.handoff_from is None else None)


@agent
async def back(x: HandIn, ctx) -> Hand:
    await _guard(ctx)
    return Hand(n=x.n + 100, handoff_to=None)


@agent
async def voter(x: Turn, ctx) -> N:
    await _guard(ctx)
    return N(n=x.input.n + x.round)


@agent
async def chair(x: Positions, ctx) -> N:
    await _guard(ctx)
    return N(n=max(p["output"]["n"] for p in x.positions))


@agent
async def proposer(x: N, ctx) -> N:
    await _guard(ctx)
    return N(n=x.n + 1)


@agent
async def refiner(x: Refs, ctx) -> N:
    await _guard(ctx)
    return N(n=sum(p["output"]["n"] for p in x.proposals))


@agent
async def aggregate(x: Refs, ctx) -> N:
    await _guard(ctx)
    return N(n=max(p["output"]["n"] for p in x.proposals))


@agent
async def combine(x: Pair, ctx) -> N:
    await _guard(ctx)
    return N(n=x.p.n * 1000 + x.q.n)


@agent(idempotent=False)
async def charge(x: N, ctx) -> N:
    """A side effect: never repeated blindly after a crash (a human confirms)."""
    await _guard(ctx)
    return N(n=x.n + 7)


AGENTS = [inc, double, parity, planner, total, writer, critic, front, back, voter, chair,
          proposer, refiner, aggregate, combine, charge]


def flows() -> dict[str, Any]:
    """One flow per pattern, plus a nested one."""
    return {
        "chain": chain("inc", "double", "charge", "inc"),
        "route": route("parity", {"even": chain("double", "inc"), "odd": "inc"}),
        "parallel": chain(parallel(p="inc", q="double"), "combine"),
        "orchestrate": orchestrate("planner", workers=["inc", "double"], synthesizer="total",
                                   max_workers=3),
        "refine": refine("writer", "critic", max_rounds=4),
        "handoff": handoff("front", ["front", "back"], max_handoffs=3),
        "debate": debate(["voter", "voter"], rounds=2, judge="chair"),
        "mixture": mixture([["proposer", "proposer"], ["refiner"]], aggregator="aggregate"),
        "nested": chain("inc", parallel(p=chain("double", refine("writer", "critic",
                                                                  max_rounds=4), "inc"),
                                        q=orchestrate("planner", workers=["inc", "double"],
                                                      synthesizer="total", max_workers=2)),
                        "combine"),
    }


def workflows() -> dict[str, Workflow]:
    return {name: Workflow(flow, agents=AGENTS, name=name, input=N,
                           policy=Policy(step_timeout_s=30, run_timeout_s=120))
            for name, flow in flows().items()}
