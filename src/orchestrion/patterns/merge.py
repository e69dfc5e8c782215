"""Merge policies for parallel fan-out: collect, majority vote, judge agent.

Every policy records disagreements between branches as events, field by field
for structured outputs, with the step that produced each value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from orchestrion.contracts.contract import dump_payload, payload_json
from orchestrion.cost.bounds import ZERO_BOUND, Bound
from orchestrion.errors import ConflictUnresolved
from orchestrion.patterns.base import CheckContext, bundle
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Merge:
    """Base: how parallel results become one output."""

    name = "merge"

    def output_model(self, cc: CheckContext, outputs: Mapping[str, type[BaseModel] | None],
                     input_model: type[BaseModel] | None, where: str,
                     optional: bool) -> type[BaseModel] | None:
        raise NotImplementedError

    async def merge(self, ctx: RunContext, env: Envelope, scope: Scope, key: str,
                    results: Mapping[str, Envelope]) -> Envelope:
        raise NotImplementedError

    def bound(self, cc: CheckContext) -> Bound:
        return ZERO_BOUND

    def agents(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> dict[str, Any]:
        return {"merge": self.name}


class Collect(Merge):
    """Keep every branch's output, one field per branch label."""

    name = "collect"

    def output_model(self, cc, outputs, input_model, where, optional):
        fields = tuple((lbl, (m or Any) | None if optional else (m or Any), not optional)
                       for lbl, m in outputs.items())
        return bundle(f"{_camel(where)}Results", fields)

    async def merge(self, ctx, env, scope, key, results):
        model = self._model_for(results)
        payload = model(**{lbl: e.payload for lbl, e in results.items()})
        first, *rest = results.values()
        return first.bundle(payload, sender="parallel", key=key, extra=tuple(rest))

    def __init__(self) -> None:
        self._runtime_model: type[BaseModel] | None = None

    def bind(self, model: type[BaseModel] | None) -> None:
        self._runtime_model = model

    def _model_for(self, results: Mapping[str, Envelope]) -> type[BaseModel]:
        if self._runtime_model is not None:
            return self._runtime_model
        return bundle("ParallelResults", tuple((lbl, Any, False) for lbl in results))


class Vote(Merge):
    """Majority vote over identical outputs. No strict majority is a ConflictUnresolved."""

    name = "vote"

    def __init__(self, *, require_majority: bool = True) -> None:
        self.require_majority = require_majority

    def output_model(self, cc, outputs, input_model, where, optional):
        models = [m for m in outputs.values() if m is not None]
        if not models:
            return None
        first = models[0]
        for m in models[1:]:
            cc.edge(m, "a voter", first, "the first voter", where)
        return first

    async def merge(self, ctx, env, scope, key, results):
        counts = Counter(payload_json(e.payload) for e in results.values())
        winner, votes = counts.most_common(1)[0]
        tied = sum(1 for c in counts.values() if c == votes) > 1
        majority = votes * 2 > len(results)
        resolution = f"vote: {votes}/{len(results)}"
        record_disagreements(ctx, key, results, resolution)
        if tied or (self.require_majority and not majority):
            raise ConflictUnresolved(
                f"no majority among {len(results)} branches (best {votes} vote(s))",
                candidates={lbl: dump_payload(e.payload) for lbl, e in results.items()},
                step=key)
        chosen = [lbl for lbl, e in results.items() if payload_json(e.payload) == winner]
        ctx.emit(ev.Decision, step=key, pattern="parallel.vote", chosen=tuple(chosen),
                 rejected=tuple(lbl for lbl in results if lbl not in chosen), reason=resolution)
        envs = list(results.values())
        winner_env = results[chosen[0]]
        return winner_env.bundle(winner_env.payload, sender="vote", key=key,
                                 extra=tuple(e for e in envs if e is not winner_env))

    def describe(self):
        return {"merge": self.name, "require_majority": self.require_majority}


class Judge(Merge):
    """A judge agent reads all candidates (and the input) and returns the output."""

    name = "judge"

    def __init__(self, agent: str) -> None:
        self.agent = agent

    def output_model(self, cc, outputs, input_model, where, optional):
        judge = cc.agent(self.agent, f"{where}/{self.agent}", role="judge")
        if judge is None:
            return None
        models = [m for m in outputs.values() if m is not None]
        cand = models[0] if models else Any
        offered = bundle("Candidates", (("input", input_model or Any, True),
                                        ("candidates", list[cand], True),  # type: ignore[valid-type]
                                        ("labels", list[str], True)))
        cc.edge(offered, "parallel candidates", judge.contract.input, repr(self.agent), where)
        return judge.contract.output

    async def merge(self, ctx, env, scope, key, results):
        record_disagreements(ctx, key, results, f"judge {self.agent!r}")
        payload = {
            "input": dump_payload(env.payload),
            "candidates": [dump_payload(e.payload) for e in results.values()],
            "labels": list(results),
        }
        envs = list(results.values())
        bundle_env = envs[0].bundle(payload, sender="parallel", key=key + "/candidates",
                                    recipient=self.agent, extra=tuple(envs[1:]))
        return await ctx.call(self.agent, bundle_env, key=f"{key}/{self.agent}",
                              ledger=scope.ledger)

    def bound(self, cc):
        return cc.bound_of(self.agent)

    def agents(self):
        return (self.agent,)

    def describe(self):
        return {"merge": self.name, "judge": self.agent}


def vote(*, require_majority: bool = True) -> Vote:
    """Majority vote merge."""
    return Vote(require_majority=require_majority)


def judge(agent: str) -> Judge:
    """Judge-agent merge."""
    return Judge(agent)


def record_disagreements(ctx: RunContext, key: str, results: Mapping[str, Envelope],
                         resolution: str) -> int:
    """Emit a Disagreement event per differing field (or for the whole value). Returns count."""
    if len(results) < 2:
        return 0
    dumped = {e.key or lbl: dump_payload(e.payload) for lbl, e in results.items()}
    values = list(dumped.values())
    count = 0
    if all(isinstance(v, dict) for v in values):
        fields = sorted({f for v in values for f in v})
        for f in fields:
            column = {src: json.dumps(v.get(f), sort_keys=True, default=str)
                      for src, v in dumped.items()}
            if len(set(column.values())) > 1:
                ctx.emit(ev.Disagreement, step=key, field=f, values=tuple(column.items()),
                         resolution=resolution)
                count += 1
    else:
        column = {src: json.dumps(v, sort_keys=True, default=str) for src, v in dumped.items()}
        if len(set(column.values())) > 1:
            ctx.emit(ev.Disagreement, step=key, field="(value)", values=tuple(column.items()),
                     resolution=resolution)
            count += 1
    return count


def _camel(where: str) -> str:
    parts = [p for p in where.replace("[", "_").replace("]", "").replace("/", "_").split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts if p.isidentifier()) or "Parallel"
