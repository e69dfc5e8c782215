"""Orchestrate (orchestrator-workers): a planner splits the work, workers do it, a synthesizer
combines the results.

The planner agent returns a :class:`Plan` (its output model must be structurally
compatible with it): a list of :class:`Task` items, each naming a worker and the
input for it.  Orchestrator hallucination (delegating to an agent that does not
exist, or with an input the worker cannot take) is stopped *before any worker
starts*: the plan is checked at the choke point against the registry, the
declared ``workers`` and ``max_workers``, and a bad plan goes back to the
planner with the problems (at most ``max_replans`` times).  A plan still invalid
after that is a typed :class:`PlanInvalid` (also when progress detection sees the
planner return the plan it was just told is wrong), unless a ``fallback`` agent is
declared: it then gets the orchestrate input and its output is the result (key
``orchestrate[fallback]/<agent>``; a ``Decision`` event says why).

Keys: ``orchestrate/<planner>``, ``orchestrate[i]/<worker>`` (task index),
``orchestrate[synthesis]/<synthesizer>``.  Worker failures follow parallel's
``on_error``: ``"fail"`` raises :class:`BranchesFailed` with the finished
results, ``"keep"`` drops the failed tasks.  Without a synthesizer the output is
an :class:`OrchestrateResult`.

Cost bound: the planner with ``max_replans`` repairs, then ``max_workers`` times
the worst worker (``concurrency`` at a time), then the synthesizer.
"""

from __future__ import annotations

import asyncio
import functools
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel, ValidationError, create_model

from orchestrion.contracts.contract import Check, coerce, dump_payload, format_validation_errors
from orchestrion.cost.bounds import Bound, concurrently, sequence, worst_of
from orchestrion.errors import (
    ContractViolation,
    LoopDetected,
    PlanInvalid,
)
from orchestrion.guards.budget import Budget
from orchestrion.patterns.base import CheckContext, Node, bundle
from orchestrion.patterns.fanout import fan_out
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope

OnError = Literal["fail", "keep"]


class Task(BaseModel):
    """One unit of delegated work: which worker runs it, with which input."""

    agent: str
    input: dict[str, Any]
    id: str | None = None


class Plan(BaseModel):
    """What a planner returns: the tasks to run (concurrently) and why."""

    tasks: list[Task]
    reason: str = ""


class TaskResult(BaseModel):
    """One finished task: the worker, the task id, and the worker's output."""

    agent: str
    id: str | None = None
    output: Any


class OrchestrateResult(BaseModel):
    """The output of an orchestrate node without a synthesizer: results in plan order."""

    results: list[TaskResult]


class Orchestrate(Node):
    """Plan, validate the plan, run the workers concurrently, then synthesize."""

    kind = "orchestrate"

    def __init__(
        self,
        planner: str,
        *,
        workers: Sequence[str],
        synthesizer: str | None = None,
        max_workers: int,
        concurrency: int = 4,
        max_replans: int = 1,
        on_error: OnError = "fail",
        fallback: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if isinstance(workers, str):
            raise TypeError("workers must be a sequence of agent names, not one string")
        if not workers:
            raise ValueError("orchestrate() needs at least one worker")
        if on_error not in ("fail", "keep"):
            raise ValueError("on_error must be 'fail' or 'keep'")
        self.planner = planner
        self.workers = tuple(dict.fromkeys(workers))
        self.synthesizer = synthesizer
        self.max_workers = max_workers
        self.concurrency = concurrency
        self.max_replans = max_replans
        self.on_error = on_error
        self.fallback = fallback

    # ------------------------------------------------------------------ running

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        try:
            planned, plan = await self._plan(ctx, env, scope)
        except PlanInvalid as err:
            if self.fallback is None:
                raise
            return await self._fall_back(ctx, env, scope, err)
        done = await self._run_workers(ctx, planned, plan, scope)
        if self.synthesizer is None:
            return self._collect(ctx.registry, planned, done, scope)
        return await self._synthesize(ctx, env, planned, done, scope)

    async def _plan(self, ctx: RunContext, env: Envelope, scope: Scope) -> tuple[Envelope, Plan]:
        """Call the planner with the plan check; a plan still invalid becomes PlanInvalid."""
        key = scope.enter(self.label).key(self.planner)
        gate = _PlanGate(self, ctx.registry)
        try:
            planned = await ctx.call(
                self.planner,
                env,
                key=key,
                ledger=scope.ledger,
                checks=[gate.check],
                max_repairs=max(0, self.max_replans),
            )
            plan = _as_plan(planned.payload)
        except ContractViolation as err:
            if err.direction != "output" or err.step != key:
                raise  # a bad *input* to the planner is its producer's fault, not the plan's
            raise self._rejected(ctx, key, gate.problems_of(err.errors)) from err
        except LoopDetected as err:
            if err.step != key:
                raise
            # Progress detection saw the planner repeat a rejected plan: it is still this
            # plan's problem, so callers and the fallback see one error type.
            problems = [*gate.last, "the planner returned the same rejected plan again"]
            raise self._rejected(ctx, key, problems) from err
        except ValidationError as exc:
            # Only reachable when the planner step is replayed from a journal (no check ran).
            raise self._rejected(ctx, key, format_validation_errors(exc)) from None
        used = tuple(dict.fromkeys(t.agent for t in plan.tasks))
        ctx.emit(
            ev.Decision,
            step=key,
            pattern=self.kind,
            chosen=used,
            rejected=tuple(w for w in self.workers if w not in used),
            reason=plan.reason,
        )
        return planned, plan

    async def _fall_back(
        self, ctx: RunContext, env: Envelope, scope: Scope, err: PlanInvalid
    ) -> Envelope:
        """No valid plan: the declared fallback agent handles the input itself."""
        assert self.fallback is not None
        ctx.emit(
            ev.Decision,
            step=err.step or scope.key(self.label),
            pattern=self.kind,
            chosen=(self.fallback,),
            rejected=(self.planner,),
            reason="plan rejected (" + "; ".join(err.problems) + f"); fallback {self.fallback!r}",
        )
        key = scope.enter(f"{self.label}[fallback]").key(self.fallback)
        return await ctx.call(self.fallback, env, key=key, ledger=scope.ledger)

    def _rejected(self, ctx: RunContext, key: str, problems: Sequence[str]) -> PlanInvalid:
        ctx.emit(
            ev.Decision,
            step=key,
            pattern=self.kind,
            chosen=(),
            rejected=self.workers,
            reason="plan rejected: " + "; ".join(problems),
        )
        return PlanInvalid(problems, step=key, agent=self.planner)

    async def _run_workers(
        self, ctx: RunContext, planned: Envelope, plan: Plan, scope: Scope
    ) -> list[tuple[Task, Envelope]]:
        """Run every task (``concurrency`` at a time); failures follow ``on_error``."""
        sem = asyncio.Semaphore(max(1, self.concurrency))
        keys = [scope.enter(f"{self.label}[{i}]").key(t.agent) for i, t in enumerate(plan.tasks)]

        async def work(task: Task, key: str) -> Envelope:
            # Provenance: the task input was written by the planner at its step.
            env = planned.bundle(
                task.input, sender=self.planner, key=planned.key, recipient=task.agent
            )
            async with sem:
                return await ctx.call(
                    task.agent, env, key=key, ledger=scope.ledger, caller=self.planner
                )

        here = scope.key(self.label)
        by_key = dict(zip(keys, plan.tasks, strict=True))
        ok, failures = await fan_out(
            {k: work(t, k) for t, k in zip(plan.tasks, keys, strict=True)},
            step=here,
            on_error=self.on_error,
        )
        if failures:
            ctx.emit(
                ev.Decision,
                step=here,
                pattern=self.kind,
                chosen=tuple(ok),
                rejected=tuple(failures),
                reason="on_error='keep': failed tasks dropped",
            )
        done = [(by_key[k], e) for k, e in ok.items()]
        return done

    def _collect(
        self, registry: Registry, planned: Envelope, done: list[tuple[Task, Envelope]], scope: Scope
    ) -> Envelope:
        _, result_model = _result_models(self._worker_outputs(registry))
        result = result_model.model_validate(
            {"results": [{"agent": t.agent, "id": t.id, "output": e.payload} for t, e in done]}
        )
        return planned.bundle(
            result, sender=self.kind, key=scope.key(self.label), extra=tuple(e for _, e in done)
        )

    async def _synthesize(
        self,
        ctx: RunContext,
        env: Envelope,
        planned: Envelope,
        done: list[tuple[Task, Envelope]],
        scope: Scope,
    ) -> Envelope:
        assert self.synthesizer is not None
        payload = {
            "input": dump_payload(env.payload),
            "results": [
                {"agent": t.agent, "id": t.id, "output": dump_payload(e.payload)} for t, e in done
            ],
        }
        offered = planned.bundle(
            payload,
            sender=self.kind,
            key=scope.key(self.label),
            recipient=self.synthesizer,
            extra=tuple(e for _, e in done),
        )
        key = scope.enter(f"{self.label}[synthesis]").key(self.synthesizer)
        return await ctx.call(self.synthesizer, offered, key=key, ledger=scope.ledger)

    # ------------------------------------------------------------------ plan validation

    def plan_problems(self, value: Any, registry: Registry) -> list[str]:
        """Every reason ``value`` is not a plan this node may run (empty when it is)."""
        try:
            plan = _as_plan(value)
        except ValidationError as exc:
            return [f"not a plan: {e}" for e in format_validation_errors(exc)]
        problems: list[str] = []
        n = len(plan.tasks)
        if n < 1:
            problems.append("the plan has no tasks; give at least 1")
        elif n > self.max_workers:
            problems.append(f"the plan has {n} tasks; at most {self.max_workers} are allowed")
        for i, task in enumerate(plan.tasks):
            problems.extend(self._task_problems(i, task, registry))
        repeated = sorted(i for i, c in Counter(t.id for t in plan.tasks if t.id).items() if c > 1)
        if repeated:
            problems.append(f"task ids must be unique; repeated: {', '.join(repeated)}")
        return problems

    def _task_problems(self, i: int, task: Task, registry: Registry) -> list[str]:
        where = f"task {i}" + (f" ({task.id})" if task.id else "")
        if task.agent not in self.workers:
            return [
                f"{where}: unknown agent {task.agent!r}; allowed workers: {', '.join(self.workers)}"
            ]
        if not registry.has_agent(task.agent):
            return [f"{where}: worker {task.agent!r} is not registered"]
        model = registry.agent(task.agent).contract.input
        try:
            coerce(model, task.input)
        except ValidationError as exc:
            errors = "; ".join(format_validation_errors(exc))
            return [f"{where}: input for {task.agent!r} does not match {model.__name__} [{errors}]"]
        return []

    # ------------------------------------------------------------------ static

    def check(
        self, cc: CheckContext, input_model: type[BaseModel] | None, where: str
    ) -> type[BaseModel] | None:
        here = f"{where}/{self.label}"
        self._check_limits(cc, here)
        planner = cc.agent(self.planner, f"{here}/{self.planner}", role="planner")
        if planner is not None:
            cc.edge(
                input_model, "orchestrate input", planner.contract.input, repr(self.planner), here
            )
            cc.edge(planner.contract.output, repr(self.planner), Plan, "Plan", here)
        for i, name in enumerate(self.workers):
            cc.agent(name, f"{here}[{i}]/{name}", role="worker")
        item, result = _result_models(self._worker_outputs(cc.registry))
        out = self._check_output(cc, input_model, here, item, result)
        self._check_fallback(cc, input_model, out, here)
        return out

    def _check_output(
        self,
        cc: CheckContext,
        input_model: type[BaseModel] | None,
        here: str,
        item: type[TaskResult],
        result: type[OrchestrateResult],
    ) -> type[BaseModel] | None:
        if self.synthesizer is None:
            return cc.produced(result, f"orchestrate {self.label!r}")
        synth_where = f"{here}[synthesis]/{self.synthesizer}"
        synth = cc.agent(self.synthesizer, synth_where, role="synthesizer")
        if synth is None:
            return None
        results = list[item]  # type: ignore[valid-type]
        offered = bundle(
            "Synthesis", (("input", input_model or Any, True), ("results", results, True))
        )
        cc.edge(
            offered,
            "orchestrate results",
            synth.contract.input,
            repr(self.synthesizer),
            synth_where,
        )
        return cc.produced(synth.contract.output, repr(self.synthesizer))

    def _check_fallback(
        self,
        cc: CheckContext,
        input_model: type[BaseModel] | None,
        output: type[BaseModel] | None,
        here: str,
    ) -> None:
        """The fallback takes the orchestrate input and must give what the node gives."""
        if self.fallback is None:
            return
        where = f"{here}[fallback]/{self.fallback}"
        agent = cc.agent(self.fallback, where, role="fallback")
        if agent is None:
            return
        cc.edge(input_model, "orchestrate input", agent.contract.input, repr(self.fallback), where)
        cc.edge(
            agent.contract.output, repr(self.fallback), output, "the orchestrate output", where
        )

    def _check_limits(self, cc: CheckContext, here: str) -> None:
        if not isinstance(self.max_workers, int) or self.max_workers < 1:
            cc.problem(
                "unbounded",
                here,
                f"orchestrate {self.label!r} has max_workers={self.max_workers!r}; "
                "the number of delegated tasks must be bounded by at least 1",
                "pass max_workers=N with N >= 1",
            )
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            cc.problem(
                "invalid-limit",
                here,
                f"orchestrate {self.label!r} has concurrency={self.concurrency!r}",
                "pass concurrency=N with N >= 1",
            )
        if not isinstance(self.max_replans, int) or self.max_replans < 0:
            cc.problem(
                "invalid-limit",
                here,
                f"orchestrate {self.label!r} has max_replans={self.max_replans!r}",
                "pass max_replans=N with N >= 0",
            )

    def _worker_outputs(self, registry: Registry) -> tuple[type[BaseModel], ...] | None:
        """The workers' output models, deduplicated; None if any worker is unknown."""
        if not all(registry.has_agent(w) for w in self.workers):
            return None
        return tuple(dict.fromkeys(registry.agent(w).contract.output for w in self.workers))

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        if registry.has_agent(self.planner):
            return registry.agent(self.planner).contract.input
        return None

    def bound(self, cc: CheckContext) -> Bound:
        planner = cc.bound_of(self.planner, repairs=max(0, self.max_replans))
        worst = worst_of([cc.bound_of(w) for w in self.workers])
        planned = _fan_out(worst, self.max_workers, self.concurrency)
        if self.synthesizer is not None:
            planned = planned.then(cc.bound_of(self.synthesizer))
        if self.fallback is not None:
            planned = worst_of([planned, cc.bound_of(self.fallback)])
        return planner.then(planned)

    def children(self) -> Sequence[Node]:
        return ()

    def _describe(self) -> dict[str, Any]:
        return {
            "planner": self.planner,
            "workers": list(self.workers),
            "synthesizer": self.synthesizer,
            "max_workers": self.max_workers,
            "concurrency": self.concurrency,
            "max_replans": self.max_replans,
            "on_error": self.on_error,
            "fallback": self.fallback,
        }

    def agents(self) -> Iterable[str]:
        yield self.planner
        yield from self.workers
        if self.synthesizer is not None:
            yield self.synthesizer
        if self.fallback is not None:
            yield self.fallback


class _PlanGate:
    """The plan check handed to the choke point; remembers the problems it last reported.

    The choke point turns a failed check into one message (``"plan: a; b"``); the gate
    keeps the list so that :class:`PlanInvalid` carries one problem per entry.
    """

    def __init__(self, node: Orchestrate, registry: Registry) -> None:
        self.node = node
        self.registry = registry
        self.last: list[str] = []
        self.check = Check("plan", self._verdict)

    def _verdict(self, value: Any) -> str | None:
        self.last = self.node.plan_problems(value, self.registry)
        return "; ".join(self.last) if self.last else None

    def problems_of(self, errors: Sequence[str]) -> list[str]:
        """The plan problems behind ``errors``, or the errors themselves (schema errors)."""
        rendered = f"{self.check.name}: " + "; ".join(self.last)
        if self.last and rendered in errors:
            return list(self.last)
        return list(errors)


def _as_plan(value: Any) -> Plan:
    """``value`` (the planner's output model, a dict or JSON) as a Plan; ValidationError if not."""
    return cast(Plan, coerce(Plan, value))


@functools.lru_cache(maxsize=256)
def _result_models(
    outputs: tuple[type[BaseModel], ...] | None,
) -> tuple[type[TaskResult], type[OrchestrateResult]]:
    """TaskResult / OrchestrateResult with ``output`` typed as the union of the workers'
    outputs, so a synthesizer or a later step can be checked against real types."""
    if not outputs:
        return TaskResult, OrchestrateResult
    union = functools.reduce(operator.or_, outputs)
    item = create_model("TaskResult", __base__=TaskResult, output=(union, ...))
    results = list[item]  # type: ignore[valid-type]
    result = create_model("OrchestrateResult", __base__=OrchestrateResult, results=(results, ...))
    return item, result


def _fan_out(worst: Bound, max_workers: int, concurrency: int) -> Bound:
    """``max_workers`` runs of ``worst``: cost adds up, latency is one wave per
    ``concurrency`` tasks."""
    n = max_workers if isinstance(max_workers, int) and max_workers > 0 else 0
    width = max(1, concurrency) if isinstance(concurrency, int) else 1
    waves = [concurrently([worst] * width)] * (n // width)
    if n % width:
        waves.append(concurrently([worst] * (n % width)))
    return sequence(waves)


def orchestrate(
    planner: str,
    *,
    workers: Sequence[str],
    synthesizer: str | None = None,
    max_workers: int,
    concurrency: int = 4,
    max_replans: int = 1,
    on_error: OnError = "fail",
    fallback: str | None = None,
    name: str | None = None,
    budget: Budget | None = None,
    timeout_s: float | None = None,
) -> Orchestrate:
    """``orchestrate("planner", workers=["search", "calc"], synthesizer="writer",
    max_workers=5)``: a planner delegates up to ``max_workers`` tasks to the workers.

    The planner's output must fit :class:`Plan`; each plan is validated against the
    registry, ``workers`` and ``max_workers`` before any worker starts, and re-asked
    with the problems at most ``max_replans`` times.  The synthesizer receives
    ``{"input": ..., "results": [{"agent", "id", "output"}, ...]}``.  ``fallback``
    names an agent that handles the input itself when no valid plan comes.
    """
    return Orchestrate(
        planner,
        workers=workers,
        synthesizer=synthesizer,
        max_workers=max_workers,
        concurrency=concurrency,
        max_replans=max_replans,
        on_error=on_error,
        fallback=fallback,
        name=name,
        budget=budget,
        timeout_s=timeout_s,
    )
