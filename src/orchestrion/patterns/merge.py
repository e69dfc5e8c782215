"""Merge policies for parallel fan-out: collect, majority vote, judge agent, escalate.

Every policy records disagreements between branches as events, field by field
for structured outputs, with the step that produced each value.  Text is compared
through a pluggable similarity (:mod:`orchestrion.guards.conflicts`), so answers
that say the same thing in other words vote together and are not reported as a
conflict; the default is exact comparison.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrion.agents.human import request_id_for
from orchestrion.contracts.contract import coerce, dump_payload, format_validation_errors
from orchestrion.cost.bounds import ZERO_BOUND, Bound
from orchestrion.errors import ApprovalRequired, ConflictUnresolved, ContractViolation
from orchestrion.guards.conflicts import Similarity, clusters, similarity_name
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
    """Majority vote. No strict majority is a ConflictUnresolved, or goes to ``fallback``.

    With a ``similarity``, answers whose text scores at least ``threshold`` vote
    together (structured outputs agree when every field does); the winner is the
    first answer of the largest group.
    """

    name = "vote"

    def __init__(self, *, require_majority: bool = True, similarity: Similarity | None = None,
                 threshold: float = 0.85, fallback: Merge | None = None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("vote(threshold=...) must be within [0, 1]")
        self.require_majority = require_majority
        self.similarity = similarity
        self.threshold = threshold
        self.fallback = fallback

    def output_model(self, cc, outputs, input_model, where, optional):
        first = _common_model(cc, outputs, where)
        if self.fallback is not None:
            other = self.fallback.output_model(cc, outputs, input_model, where, optional)
            cc.edge(other, f"the {self.fallback.name} fallback", first, "the vote", where)
        return first

    async def merge(self, ctx, env, scope, key, results):
        groups = clusters({lbl: e.payload for lbl, e in results.items()}, self.similarity,
                          self.threshold)
        votes = len(groups[0])
        tied = len(groups) > 1 and len(groups[1]) == votes
        majority = votes * 2 > len(results)
        how = "" if self.similarity is None else (
            f" ({similarity_name(self.similarity, self.threshold)})")
        resolution = f"vote: {votes}/{len(results)}{how}"
        if tied or (self.require_majority and not majority):
            if self.fallback is not None:
                return await self.fallback.merge(ctx, env, scope, key, results)
            record_disagreements(ctx, key, results, resolution, self.similarity, self.threshold)
            raise ConflictUnresolved(
                f"no majority among {len(results)} branches (best {votes} vote(s))",
                candidates={lbl: dump_payload(e.payload) for lbl, e in results.items()},
                step=key)
        record_disagreements(ctx, key, results, resolution, self.similarity, self.threshold)
        chosen = groups[0]
        ctx.emit(ev.Decision, step=key, pattern="parallel.vote", chosen=tuple(chosen),
                 rejected=tuple(lbl for lbl in results if lbl not in chosen), reason=resolution)
        return _pick(results, chosen[0], sender="vote", key=key)

    def bound(self, cc):
        return ZERO_BOUND if self.fallback is None else self.fallback.bound(cc)

    def agents(self):
        return () if self.fallback is None else self.fallback.agents()

    def describe(self):
        data: dict[str, Any] = {"merge": self.name, "require_majority": self.require_majority}
        if self.similarity is not None:
            data["similarity"] = similarity_name(self.similarity, self.threshold)
        if self.fallback is not None:
            data["fallback"] = self.fallback.describe()
        return data


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


class Escalate(Merge):
    """Let a human settle a conflict: the run pauses with the candidates and their sources.

    When all branches agree (under ``similarity``) their answer is taken and no one
    is asked.  Otherwise the disagreements are recorded and a request is added to
    the run's pending list at step ``<parallel>/escalate``; the run pauses.  Re-run
    with ``answers={step: answer}`` where ``answer`` is a branch label (or
    ``{"choose": label}``) to take that branch's output, or ``{"output": value}``
    to give the output directly (validated against the branches' output model).
    """

    name = "escalate"

    def __init__(self, prompt: str = "", *, similarity: Similarity | None = None,
                 threshold: float = 0.85) -> None:
        self.prompt = prompt or "The parallel branches disagree: choose the right answer."
        self.similarity = similarity
        self.threshold = threshold

    def output_model(self, cc, outputs, input_model, where, optional):
        return _common_model(cc, outputs, where)

    async def merge(self, ctx, env, scope, key, results):
        groups = clusters({lbl: e.payload for lbl, e in results.items()}, self.similarity,
                          self.threshold)
        if len(groups) == 1:
            ctx.emit(ev.Decision, step=key, pattern="parallel.escalate", chosen=tuple(results),
                     rejected=(), reason="all branches agree")
            return _pick(results, groups[0][0], sender="escalate", key=key)
        step = f"{key}/escalate"
        record_disagreements(ctx, key, results, f"escalated to a human at {step}",
                             self.similarity, self.threshold)
        if step in ctx.answers:
            return self._decided(ctx, key, step, results, ctx.answers[step])
        request_id = request_id_for(ctx.run_id, step)
        ctx.pending.append(self._request(request_id, step, results))
        ctx.emit(ev.ApprovalRequested, step=step, request_id=request_id, prompt=self.prompt)
        raise ApprovalRequired(request_id, step=step, prompt=self.prompt)

    def _request(self, request_id: str, step: str, results: Mapping[str, Envelope]) -> dict:
        """The pending request, in the shape the human agent uses, with every candidate."""
        labels = list(results)
        first = next(iter(results.values())).payload
        schema = type(first).model_json_schema() if isinstance(first, BaseModel) else {}
        return {
            "request_id": request_id,
            "step": step,
            "agent": "human",
            "prompt": self.prompt,
            "payload": {"candidates": {lbl: {"source": e.key, "output": dump_payload(e.payload)}
                                       for lbl, e in results.items()}},
            "answer_schema": {"anyOf": [
                {"type": "string", "enum": labels},
                {"type": "object", "properties": {"choose": {"enum": labels}},
                 "required": ["choose"]},
                {"type": "object", "properties": {"output": schema}, "required": ["output"]},
            ]},
        }

    def _decided(self, ctx: RunContext, key: str, step: str, results: Mapping[str, Envelope],
                 answer: Any) -> Envelope:
        """The human's answer: a branch label, ``{"choose": label}`` or ``{"output": value}``."""
        if isinstance(answer, dict) and "output" in answer:
            first = next(iter(results.values()))
            value = answer["output"]
            if isinstance(first.payload, BaseModel):
                try:
                    value = coerce(type(first.payload), value)
                except ValidationError as exc:
                    raise ContractViolation("the human's answer does not match the output model",
                                            errors=format_validation_errors(exc), step=step,
                                            agent="human") from None
            ctx.emit(ev.Decision, step=key, pattern="parallel.escalate", chosen=("human",),
                     rejected=tuple(results), reason="output given by a human")
            envs = tuple(results.values())
            return envs[0].bundle(value, sender="human", key=step, extra=envs[1:])
        label = answer.get("choose") if isinstance(answer, dict) else answer
        if not isinstance(label, str) or label not in results:
            raise ContractViolation("the human's answer names no branch",
                                    errors=[f"expected one of {list(results)}, got {answer!r}"],
                                    step=step, agent="human")
        ctx.emit(ev.Decision, step=key, pattern="parallel.escalate", chosen=(label,),
                 rejected=tuple(lbl for lbl in results if lbl != label), reason="chosen by a human")
        return _pick(results, label, sender="escalate", key=key)

    def describe(self):
        return {"merge": self.name, "prompt": self.prompt,
                "similarity": similarity_name(self.similarity, self.threshold)}


def vote(*, require_majority: bool = True, similarity: Similarity | None = None,
         threshold: float = 0.85, fallback: Merge | None = None) -> Vote:
    """Majority vote merge; ``similarity`` groups near-equal text answers, ``fallback``
    (a judge or escalate) decides when there is no majority."""
    return Vote(require_majority=require_majority, similarity=similarity, threshold=threshold,
                fallback=fallback)


def judge(agent: str) -> Judge:
    """Judge-agent merge."""
    return Judge(agent)


def escalate(prompt: str = "", *, similarity: Similarity | None = None,
             threshold: float = 0.85) -> Escalate:
    """Human merge: on a conflict the run pauses and a person picks (or writes) the answer."""
    return Escalate(prompt, similarity=similarity, threshold=threshold)


def record_disagreements(ctx: RunContext, key: str, results: Mapping[str, Envelope],
                         resolution: str, similarity: Similarity | None = None,
                         threshold: float = 1.0) -> int:
    """Emit a Disagreement event per differing field (or for the whole value). Returns count.

    Values that agree under ``similarity`` (default: exact) are not a disagreement.
    """
    if len(results) < 2:
        return 0
    dumped = {e.key or lbl: dump_payload(e.payload) for lbl, e in results.items()}
    values = list(dumped.values())
    count = 0
    if all(isinstance(v, dict) for v in values):
        fields = sorted({f for v in values for f in v})
        columns = {f: {src: v.get(f) for src, v in dumped.items()} for f in fields}
    else:
        columns = {"(value)": dumped}
    for f, column in columns.items():
        if len(clusters(column, similarity, threshold)) > 1:
            shown = {src: json.dumps(v, sort_keys=True, default=str) for src, v in column.items()}
            ctx.emit(ev.Disagreement, step=key, field=f, values=tuple(shown.items()),
                     resolution=resolution)
            count += 1
    return count


def _common_model(cc: CheckContext, outputs: Mapping[str, type[BaseModel] | None],
                  where: str) -> type[BaseModel] | None:
    """The first branch's output model; every other branch must satisfy it."""
    models = [m for m in outputs.values() if m is not None]
    if not models:
        return None
    first = models[0]
    for m in models[1:]:
        cc.edge(m, "a voter", first, "the first voter", where)
    return first


def _pick(results: Mapping[str, Envelope], label: str, *, sender: str, key: str) -> Envelope:
    """Branch ``label``'s output, with every branch as a provenance source."""
    winner = results[label]
    others = tuple(e for e in results.values() if e is not winner)
    return winner.bundle(winner.payload, sender=sender, key=key, extra=others)


def _camel(where: str) -> str:
    parts = [p for p in where.replace("[", "_").replace("]", "").replace("/", "_").split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts if p.isidentifier()) or "Parallel"
