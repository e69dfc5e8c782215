"""Cost of the failure-mode guards per step: guards on vs off, as a ratio.

Self-contained: ``.venv/bin/python bench/bench_guards.py [--quick]``.

Workloads (trivial function agents, so the figures are pure runtime overhead):

* chain  -- a 5-step chain: the common case; every step passes every guard's hooks,
            but no step is inside a loop, so progress detection only classifies keys.
* refine -- a 5-round refine loop (10 steps): every step is inside a loop scope, so
            progress detection fingerprints every output (inputs only when an output repeats).

Configurations: no guards; each guard alone (ProgressGuard, CircuitBreaker,
SpendApproval); all three.  Timing: ``time.perf_counter`` over many runs after a
warm-up, configurations interleaved trial by trial, median of the trials reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from orchestrion.agents.function import FunctionAgent
from orchestrion.contracts.contract import Contract
from orchestrion.guards.breaker import CircuitBreaker
from orchestrion.guards.progress import ProgressGuard
from orchestrion.guards.spend import SpendApproval
from orchestrion.patterns.chain import chain
from orchestrion.patterns.refine import refine
from orchestrion.runtime.policy import Policy
from orchestrion.workflow import Workflow


class Doc(BaseModel):
    text: str


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


ROUNDS = 5

GUARDS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "off": lambda: (),
    "progress": lambda: (ProgressGuard(),),
    "breaker": lambda: (CircuitBreaker(),),
    "spend": lambda: (SpendApproval(usd=1e9),),
    "all": lambda: (ProgressGuard(), CircuitBreaker(), SpendApproval(usd=1e9)),
}


def chain_workflow(guards: tuple[Any, ...]) -> tuple[Workflow, int]:
    # FunctionAgent passes ctx to two-parameter functions: bind the name in a closure.
    agents = [FunctionAgent(_append(n), Contract(Doc, Doc), name=n) for n in "abcde"]
    return Workflow(chain(*"abcde"), agents=agents, policy=Policy(guards=guards)), 5


def _append(name: str) -> Callable[[Doc], Doc]:
    return lambda d: Doc(text=f"{d.text}>{name}")


def refine_workflow(guards: tuple[Any, ...]) -> tuple[Workflow, int]:
    def gen(g: GenIn) -> Doc:
        n = 0 if g.previous is None else int(g.previous.text.split()[-1]) + 1
        return Doc(text=f"draft {n}")

    def critic(r: Review) -> Verdict:
        return Verdict(accepted=r.round == ROUNDS - 1, feedback=f"round {r.round}: more")

    agents = [
        FunctionAgent(gen, Contract(GenIn, Doc), name="gen"),
        FunctionAgent(critic, Contract(Review, Verdict), name="critic"),
    ]
    flow = refine("gen", "critic", max_rounds=ROUNDS)
    return Workflow(flow, agents=agents, policy=Policy(guards=guards)), 2 * ROUNDS


async def _reps_for(wf: Workflow, target_s: float) -> int:
    for _ in range(20):
        await wf.run({"text": "q"})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < target_s / 4:
        await wf.run({"text": "q"})
        n += 1
    return max(10, round(n * 4))


async def measure(
    make: Callable[[tuple[Any, ...]], tuple[Workflow, int]], trials: int, target_s: float
) -> tuple[dict[str, float], int]:
    """Median seconds per run for each guard configuration, interleaved trial by trial."""
    flows = {name: make(guards())[0] for name, guards in GUARDS.items()}
    steps = make(())[1]
    for wf in flows.values():
        result = await wf.run({"text": "q"})
        assert result.ok, result.error
    reps = await _reps_for(flows["off"], target_s)
    samples: dict[str, list[float]] = {name: [] for name in flows}
    for _ in range(trials):
        for name, wf in flows.items():
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(reps):
                await wf.run({"text": "q"})
            samples[name].append((time.perf_counter() - t0) / reps)
    return {name: statistics.median(xs) for name, xs in samples.items()}, steps


def report(title: str, per_run: dict[str, float], steps: int) -> None:
    off = per_run["off"]
    print(f"\n{title} ({steps} steps per run)")
    print(f"  {'guards':<10}{'us/run':>10}{'us/step':>10}{'+us/step':>10}{'ratio':>8}")
    for name, t in per_run.items():
        extra = (t - off) / steps * 1e6
        print(f"  {name:<10}{t * 1e6:>10.1f}{t / steps * 1e6:>10.2f}{extra:>10.2f}{t / off:>8.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (smoke test)")
    args = parser.parse_args()
    trials, target = (3, 0.1) if args.quick else (9, 0.4)
    for title, make in (("5-step chain", chain_workflow), ("5-round refine", refine_workflow)):
        per_run, steps = await measure(make, trials, target)
        report(title, per_run, steps)


if __name__ == "__main__":
    asyncio.run(main())
