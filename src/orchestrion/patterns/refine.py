"""Refine (evaluator-optimizer): a generator drafts, an evaluator reviews, until accepted.

Every round ``r`` (0-based) runs ``refine[r]/<generator>`` then
``refine[r]/<evaluator>``.  The loop is bounded: ``max_rounds`` is mandatory and
a refine without it (``None`` or < 1) fails the static check with
``unbounded-loop``, so no run starts.

* Round 0 the generator gets the refine input.  Later rounds it gets the input's
  fields plus ``feedback`` (the evaluation's ``feedback`` field, or the whole
  evaluation as JSON) and ``previous`` (the last draft), validated into its input
  model: declare optional ``feedback`` / ``previous`` fields on the generator's
  input model to see them (undeclared ones are dropped by validation).
* The evaluator gets ``{"input": ..., "draft": ..., "round": r}``.
* The loop stops when ``stop(evaluation)`` is true; by default when the
  evaluation's bool field ``accepted`` is true.

Each round is a ``decision`` event (``accept`` or ``revise``, reason = feedback).
When the bound is reached, a ``guard.tripped`` event is recorded and either
:class:`LoopBoundReached` is raised (``on_exhausted="fail"``; the drafts stay on
the run's step records) or the last draft is returned (``"last"``).

Cost bound: ``max_rounds`` x (generator + evaluator).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel

from orchestrion.contracts.contract import dump_payload, payload_json
from orchestrion.cost.bounds import Bound
from orchestrion.errors import LoopBoundReached
from orchestrion.guards.budget import Budget
from orchestrion.patterns.base import CheckContext, Node, bundle, call_user, field_model
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope

OnExhausted = Literal["fail", "last"]
StopFn = Callable[[Any], bool]

# Fields the generator sees from round 1 on, when its input model declares them.
FEEDBACK, PREVIOUS = "feedback", "previous"


class Refine(Node):
    """Generate, evaluate, revise with the feedback, at most ``max_rounds`` times."""

    kind = "refine"

    def __init__(
        self,
        generator: str,
        evaluator: str,
        *,
        max_rounds: int | None,
        stop: StopFn | None = None,
        on_exhausted: OnExhausted = "fail",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if generator == evaluator:
            raise ValueError(
                f"refine() needs two different agents, got {generator!r} twice: their step "
                "keys would collide; register the implementation under a second name"
            )
        if on_exhausted not in ("fail", "last"):
            raise ValueError("on_exhausted must be 'fail' or 'last'")
        if stop is not None and not callable(stop):
            raise TypeError(f"stop must be a callable of the evaluation, got {stop!r}")
        self.generator = generator
        self.evaluator = evaluator
        self.max_rounds = max_rounds
        self.stop = stop
        self.on_exhausted = on_exhausted

    # ------------------------------------------------------------------ running

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        rounds = self.max_rounds or 0  # the static check guarantees >= 1 before any run
        request, draft = env, env
        for r in range(rounds):
            draft, verdict, feedback, accepted = await self._round(ctx, env, request, scope, r)
            if accepted:
                return draft
            request = self._revision(ctx.registry, env, draft, verdict, feedback, scope, r)
        return self._exhausted(ctx, draft, scope)

    async def _round(
        self, ctx: RunContext, env: Envelope, request: Envelope, scope: Scope, r: int
    ) -> tuple[Envelope, Envelope, Any, bool]:
        """One draft and its review: (draft, evaluation, feedback, accepted)."""
        inner = scope.enter(f"{self.label}[{r}]")
        draft = await ctx.call(
            self.generator, request, key=inner.key(self.generator), ledger=scope.ledger
        )
        review = {
            "input": dump_payload(env.payload),
            "draft": dump_payload(draft.payload),
            "round": r,
        }
        offered = draft.bundle(review, sender=self.kind, key=inner.path, recipient=self.evaluator)
        key = inner.key(self.evaluator)
        verdict = await ctx.call(self.evaluator, offered, key=key, ledger=scope.ledger)
        accepted = self._accepted(verdict.payload, key)
        feedback = _feedback_of(verdict.payload)
        ctx.emit(
            ev.Decision,
            step=key,
            pattern=self.kind,
            chosen=("accept",) if accepted else ("revise",),
            rejected=("revise",) if accepted else ("accept",),
            reason=_as_text(feedback),
        )
        return draft, verdict, feedback, accepted

    def _accepted(self, evaluation: Any, step: str) -> bool:
        if self.stop is not None:
            return bool(call_user(self.stop, evaluation, step=step, name="refine stop condition"))
        return getattr(evaluation, "accepted", False) is True

    def _revision(
        self,
        registry: Registry,
        env: Envelope,
        draft: Envelope,
        verdict: Envelope,
        feedback: Any,
        scope: Scope,
        r: int,
    ) -> Envelope:
        """The generator's next input: the refine input plus feedback and previous draft."""
        base = dump_payload(env.payload)
        payload: dict[str, Any] = dict(base) if isinstance(base, dict) else {"input": base}
        extra = {FEEDBACK: feedback, PREVIOUS: dump_payload(draft.payload)}
        model = registry.agent(self.generator).contract.input
        for k in _revision_fields(model):  # type: ignore[arg-type]  # a class is hashable
            payload[k] = extra[k]
        key = scope.enter(f"{self.label}[{r}]").path
        return verdict.bundle(
            payload, sender=self.kind, key=key, recipient=self.generator, extra=(draft,)
        )

    def _exhausted(self, ctx: RunContext, draft: Envelope, scope: Scope) -> Envelope:
        """Record the tripped bound; fail, or hand on the last draft."""
        rounds = self.max_rounds or 0
        last = scope.enter(f"{self.label}[{rounds - 1}]").key(self.evaluator)
        err = LoopBoundReached(
            f"{self.kind} {scope.key(self.label)!r}",
            rounds,
            step=last,
            agent=self.evaluator,
            hint="raise max_rounds, relax the stop condition, or set on_exhausted='last'",
        )
        ctx.trip(err)
        if self.on_exhausted == "fail":
            raise err
        return draft

    # ------------------------------------------------------------------ static

    def check(
        self, cc: CheckContext, input_model: type[BaseModel] | None, where: str
    ) -> type[BaseModel] | None:
        here = f"{where}/{self.label}"
        if not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            cc.problem(
                "unbounded-loop",
                here,
                f"refine {self.label!r} has max_rounds={self.max_rounds!r}; every loop "
                "needs a bound of at least 1 round",
                "pass max_rounds=N (N >= 1), and on_exhausted='last' to keep the last "
                "draft when it is reached",
            )
        gen = cc.agent(self.generator, f"{here}/{self.generator}", role="generator")
        critic = cc.agent(self.evaluator, f"{here}/{self.evaluator}", role="evaluator")
        gen_in = gen.contract.input if gen else None
        gen_out = gen.contract.output if gen else None
        cc.edge(input_model, "refine input", gen_in, repr(self.generator), here)
        if critic is not None:
            review = bundle(
                "Review",
                (
                    ("input", input_model or Any, True),
                    ("draft", gen_out or Any, True),
                    ("round", int, True),
                ),
            )
            cc.edge(review, "refine review", critic.contract.input, repr(self.evaluator), here)
            self._check_stop(cc, critic.contract.output, here)
        if gen_in is not None and gen_out is not None:
            feedback = (field_model(critic.contract.output, FEEDBACK) if critic else None) or str
            self._check_revision(cc, gen_in, gen_out, feedback, here)
        return cc.produced(gen_out, repr(self.generator))

    def _check_stop(self, cc: CheckContext, evaluation: type[BaseModel], here: str) -> None:
        if self.stop is None and field_model(evaluation, "accepted") is not bool:
            cc.problem(
                "no-stop-condition",
                here,
                f"evaluator {self.evaluator!r} output {evaluation.__name__} has no bool "
                "field 'accepted' and no stop= function is given",
                "add 'accepted: bool' to the evaluator's output, or pass "
                "stop=lambda evaluation: ...",
            )

    def _check_revision(
        self,
        cc: CheckContext,
        gen_in: type[BaseModel],
        gen_out: type[BaseModel],
        feedback: Any,
        here: str,
    ) -> None:
        """Declared ``feedback`` / ``previous`` fields must accept what later rounds send."""
        wanted = tuple(
            (f, field_model(gen_in, f), False)
            for f in (FEEDBACK, PREVIOUS)
            if f in gen_in.model_fields
        )
        if not wanted:
            return
        given = {FEEDBACK: feedback, PREVIOUS: gen_out}
        offered = bundle("Revision", tuple((f, given[f], True) for f, _, _ in wanted))
        cc.edge(
            offered, "refine revision", bundle(gen_in.__name__, wanted), repr(self.generator), here
        )

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        if registry.has_agent(self.generator):
            return registry.agent(self.generator).contract.input
        return None

    def bound(self, cc: CheckContext) -> Bound:
        one_round = cc.bound_of(self.generator).then(cc.bound_of(self.evaluator))
        if not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            # Unbounded: say so in every dimension that can (the check fails the flow anyway).
            return Bound(one_round.calls, one_round.requests, None, None, None)
        return one_round.times(self.max_rounds)

    def children(self) -> Sequence[Node]:
        return ()

    def _describe(self) -> dict[str, Any]:
        stop = None if self.stop is None else getattr(self.stop, "__qualname__", repr(self.stop))
        return {
            "generator": self.generator,
            "evaluator": self.evaluator,
            "max_rounds": self.max_rounds,
            "stop": stop,
            "on_exhausted": self.on_exhausted,
        }

    def agents(self) -> Iterable[str]:
        yield self.generator
        yield self.evaluator


@lru_cache(maxsize=512)
def _revision_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The revision fields to send to a generator whose input model is ``model``.

    A model that forbids extra fields would reject undeclared ones: leave them out.
    """
    forbids = model.model_config.get("extra") == "forbid"
    return tuple(k for k in (FEEDBACK, PREVIOUS) if not forbids or k in model.model_fields)


def _feedback_of(evaluation: Any) -> Any:
    """The evaluation's ``feedback`` field, else the whole evaluation as JSON text."""
    if isinstance(evaluation, BaseModel) and FEEDBACK in type(evaluation).model_fields:
        return dump_payload(getattr(evaluation, FEEDBACK))
    return payload_json(evaluation)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def refine(
    generator: str,
    evaluator: str,
    *,
    max_rounds: int | None,
    stop: StopFn | None = None,
    on_exhausted: OnExhausted = "fail",
    name: str | None = None,
    budget: Budget | None = None,
    timeout_s: float | None = None,
) -> Refine:
    """``refine("writer", "critic", max_rounds=3)``: draft, review, revise until accepted.

    ``stop(evaluation) -> bool`` replaces the default stop (the evaluation's
    ``accepted`` field).  ``on_exhausted="last"`` returns the last draft instead
    of failing with :class:`LoopBoundReached` when ``max_rounds`` is reached.
    """
    return Refine(
        generator,
        evaluator,
        max_rounds=max_rounds,
        stop=stop,
        on_exhausted=on_exhausted,
        name=name,
        budget=budget,
        timeout_s=timeout_s,
    )
