"""The benchmark workloads, built three ways over the *same* node bodies and models.

* baseline  -- plain asyncio: direct ``await`` of the node body, wrapped in exactly the
               pydantic work orchestrion's choke point does per step
               (``coerce(input_model, payload)`` before, ``coerce(output_model, raw)``
               after) and the run-input validation.  Nothing else: no events, no step
               records, no budget, no timeouts, no envelopes.
* orchestrion -- ``Workflow`` over ``@agent`` function agents with pydantic contracts,
               under the default ``Policy()`` (120 s step / 900 s run timeouts, 500-call
               budget) and under ``Policy(run_timeout_s=None, step_timeout_s=None)``.
* langgraph  -- ``StateGraph`` (TypedDict state, no checkpointer) compiled once, run with
               ``ainvoke``; each node does the same ``coerce`` calls around the same body.

Every node body returns a plain dict (as a parsed LLM answer would), so output
validation is a real ``model_validate`` in all three.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")

from pydantic import BaseModel

from orchestrion import Policy, Workflow, chain, parallel
from orchestrion import agent as as_agent
from orchestrion.contracts.contract import coerce  # the exact validation the choke point runs

FANOUT_SLEEP_S = 0.05
RUN_INPUT: dict[str, Any] = {"topic": "benchmarks", "notes": ["start"]}


# ---------------------------------------------------------------------- models and bodies


class Doc(BaseModel):
    topic: str
    step: int = 0
    notes: list[str] = []
    score: float = 0.0


def _next(d: Doc) -> dict[str, Any]:
    return {"topic": d.topic, "step": d.step + 1, "notes": [*d.notes[-3:], f"s{d.step}"],
            "score": d.score + 0.5}


async def work(d: Doc) -> Doc:
    """Chain step body: pure CPU, no suspension (measures orchestration cost only)."""
    return _next(d)  # type: ignore[return-value]  # a dict, validated by the runtime


async def tick(d: Doc) -> Doc:
    """Concurrency step body: yields to the loop once, so all N runs are in flight at once."""
    await asyncio.sleep(0)
    return _next(d)  # type: ignore[return-value]


async def slow(d: Doc) -> Doc:
    """Fan-out branch body: a 50 ms simulated model call."""
    await asyncio.sleep(FANOUT_SLEEP_S)
    return _next(d)  # type: ignore[return-value]


# refine: generator drafts, evaluator accepts only at round ``REFINE_ROUNDS``
REFINE_ROUNDS = 50


class Task(BaseModel):
    topic: str
    notes: list[str] = []
    feedback: Any = None
    previous: Any = None


class Draft(BaseModel):
    text: str
    version: int


class EvalIn(BaseModel):
    input: Task
    draft: Draft
    round: int


class Verdict(BaseModel):
    accepted: bool
    feedback: str = ""


async def generate(t: Task) -> Draft:
    version = 1 if t.previous is None else _prev_version(t.previous) + 1
    return {"text": f"{t.topic} v{version}", "version": version}  # type: ignore[return-value]


def _prev_version(prev: Any) -> int:
    if isinstance(prev, Draft):
        return prev.version
    if isinstance(prev, dict):
        return int(prev.get("version", 0))
    return int(getattr(prev, "version", 0))


async def evaluate(e: EvalIn) -> Verdict:
    ok = e.round >= REFINE_ROUNDS - 1  # rounds are 0-based, as in orchestrion's refine
    return {"accepted": ok, "feedback": "" if ok else f"improve v{e.draft.version}"}  # type: ignore[return-value]


# ---------------------------------------------------------------------- baseline


async def base_step(body: Callable[[Any], Awaitable[Any]], payload: Any,
                    inp: type[BaseModel] = Doc, out: type[BaseModel] = Doc) -> BaseModel:
    """What the choke point does that a hand-written pipeline would also do: validate both ways."""
    return coerce(out, await body(coerce(inp, payload)))


def baseline_chain(steps: int, body=work) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        x: Any = coerce(Doc, RUN_INPUT)
        for _ in range(steps):
            x = await base_step(body, x)
        return x

    return run


def baseline_fanout(n: int) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        x = coerce(Doc, RUN_INPUT)
        outs = await asyncio.gather(*(base_step(slow, x) for _ in range(n)))
        return dict(zip((f"w{i}" for i in range(n)), outs, strict=True))

    return run


def baseline_refine(rounds: int = REFINE_ROUNDS) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        task = coerce(Task, RUN_INPUT)
        base = task.model_dump()
        draft: Any = None
        verdict: Any = None
        for r in range(rounds):
            gin = base if r == 0 else {**base, "feedback": verdict.feedback, "previous": draft}
            draft = await base_step(generate, gin, Task, Draft)
            verdict = await base_step(evaluate, {"input": task, "draft": draft, "round": r},
                                      EvalIn, Verdict)
            if verdict.accepted:
                return draft
        raise RuntimeError("refine baseline never accepted")

    return run


# ---------------------------------------------------------------------- orchestrion

POLICIES: dict[str, Policy] = {
    "orch": Policy(),
    "orch_nt": Policy(run_timeout_s=None, step_timeout_s=None),
}


def orch_chain(steps: int, policy: Policy, body=work) -> Workflow:
    agents = [as_agent(body, name=f"s{i}") for i in range(steps)]
    wf = Workflow(chain(*(a.name for a in agents)), agents=agents, policy=policy,
                  name=f"chain{steps}")
    wf.ensure_checked()
    return wf


def orch_fanout(n: int, policy: Policy) -> Workflow:
    w = as_agent(slow, name="w")
    wf = Workflow(parallel(*["w"] * n), agents=[w], policy=policy, name=f"fanout{n}")
    wf.ensure_checked()
    return wf


def orch_refine(policy: Policy, rounds: int = REFINE_ROUNDS) -> Workflow | None:
    try:
        from orchestrion import refine
    except ImportError:  # the refine pattern is not in this checkout
        return None
    gen = as_agent(generate, name="gen")
    ev = as_agent(evaluate, name="judge")
    wf = Workflow(refine("gen", "judge", max_rounds=rounds), agents=[gen, ev], policy=policy,
                  name="refine")
    wf.ensure_checked()
    return wf


def orch_runner(wf: Workflow) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        return await wf.run(RUN_INPUT)

    return run


# ---------------------------------------------------------------------- langgraph


def _lg():
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    return StateGraph, START, END, Send


class DocState(TypedDict):
    doc: Any


def lg_chain(steps: int, body=work):
    StateGraph, START, END, _ = _lg()
    g = StateGraph(DocState)

    async def node(state: DocState) -> dict[str, Any]:
        return {"doc": await base_step(body, state["doc"])}

    names = [f"s{i}" for i in range(steps)]
    for name in names:
        g.add_node(name, node)
    g.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g.compile()


class FanState(TypedDict):
    doc: Any
    results: Annotated[list, operator.add]


def lg_fanout(n: int):
    StateGraph, START, END, Send = _lg()
    g = StateGraph(FanState)

    async def worker(state: dict[str, Any]) -> dict[str, Any]:
        return {"results": [await base_step(slow, state["doc"])]}

    def dispatch(state: FanState) -> list:
        doc = coerce(Doc, state["doc"])  # validate the run input once, like the others
        return [Send("w", {"doc": doc}) for _ in range(n)]

    g.add_node("w", worker)
    g.add_conditional_edges(START, dispatch, ["w"])
    g.add_edge("w", END)
    return g.compile()


class RefineState(TypedDict, total=False):
    task: Any
    draft: Any
    verdict: Any
    round: int


def lg_refine(rounds: int = REFINE_ROUNDS):
    StateGraph, START, END, _ = _lg()
    g = StateGraph(RefineState)

    async def gen(state: RefineState) -> dict[str, Any]:
        task = coerce(Task, state["task"])
        r = state.get("round", -1) + 1
        base = task.model_dump()
        gin = base if r == 0 else {**base, "feedback": state["verdict"].feedback,
                                   "previous": state["draft"]}
        return {"task": task, "draft": await base_step(generate, gin, Task, Draft), "round": r}

    async def judge(state: RefineState) -> dict[str, Any]:
        payload = {"input": state["task"], "draft": state["draft"], "round": state["round"]}
        return {"verdict": await base_step(evaluate, payload, EvalIn, Verdict)}

    def after(state: RefineState) -> str:
        done = state["verdict"].accepted or state["round"] >= rounds - 1
        return END if done else "gen"

    g.add_node("gen", gen)
    g.add_node("judge", judge)
    g.add_edge(START, "gen")
    g.add_edge("gen", "judge")
    g.add_conditional_edges("judge", after, ["gen", END])
    return g.compile()


def lg_runner(graph, key: str = "doc", *, recursion_limit: int = 10_000):
    config = {"recursion_limit": recursion_limit}

    async def run() -> Any:
        return await graph.ainvoke({key: RUN_INPUT}, config)

    return run
