"""The shape every pattern shares: run, check itself, bound its own cost.

A flow is a tree of :class:`Node` objects.  Each node

* runs: ``run(ctx, env, scope) -> Envelope`` (children get ``scope.enter(segment)``),
* checks itself against a registry before any run: ``check(cc, input_model, where)``
  returns the node's output model (or None when unknown) and reports problems,
* bounds its cost and latency from its structure: ``bound(cc)``.

A node may carry a sub-budget and a timeout (``budget=``, ``timeout_s=``) that
apply to its whole subtree.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar

from pydantic import BaseModel, create_model

from orchestrion.agents.base import AgentLike
from orchestrion.cost.bounds import Bound
from orchestrion.errors import AgentFailed, BudgetExceeded, Problem, StepTimeout
from orchestrion.guards.budget import Budget
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.policy import Policy
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class CheckContext:
    """Collects problems while a flow checks itself against a registry and a policy."""

    def __init__(self, registry: Registry, policy: Policy) -> None:
        self.registry = registry
        self.policy = policy
        self.problems: list[Problem] = []
        self._producers: dict[type[BaseModel], str] = {}

    def produced(self, model: type[BaseModel] | None, producer: str) -> type[BaseModel] | None:
        """Remember who produces ``model`` so edge problems can name both ends."""
        if model is not None:
            self._producers[model] = producer
        return model

    def producer_of(self, model: type[BaseModel] | None, default: str) -> str:
        return self._producers.get(model, default) if model is not None else default

    def problem(self, code: str, where: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(code, where.lstrip("/") or "(root)", message, hint))

    def agent(self, name: str, where: str, *, role: str = "agent") -> AgentLike | None:
        """The agent named ``name``, or None after reporting it as unresolved."""
        if self.registry.has_agent(name):
            return self.registry.agent(name)
        known = ", ".join(sorted(self.registry.agent_names)) or "(none)"
        self.problem("unknown-agent", where, f"{role} {name!r} is not in the registry",
                     f"known agents: {known}")
        return None

    def edge(self, producer: type[BaseModel] | None, producer_name: str,
             consumer: type[BaseModel] | None, consumer_name: str, where: str) -> None:
        """Report every way ``producer``'s output fails ``consumer``'s input."""
        if producer is None or consumer is None or producer is consumer:
            return
        from orchestrion.contracts.compat import incompatibilities

        if producer_name == "its input":  # generic: name the agent that produced it, if known
            producer_name = self.producer_of(producer, producer_name)
        for inc in incompatibilities(producer, consumer):
            self.problem(
                "type-mismatch", where,
                f"{producer_name} ({producer.__name__}) -> {consumer_name} "
                f"({consumer.__name__}): {inc}",
                "make the producer's output model satisfy the consumer's input model",
            )

    def bound_of(self, name: str, *, repairs: int | None = None) -> Bound:
        """Worst-case bound of one invocation of agent ``name`` including retries and repairs.

        ``repairs`` overrides the agent's and the policy's repair count, for callers
        that pass ``max_repairs=`` to the choke point (an orchestrator's re-plans).
        """
        if not self.registry.has_agent(name):
            return Bound(calls=1, tokens=None, usd=None, seconds=None)
        agent = self.registry.agent(name)
        timeout = getattr(agent, "timeout_s", None) or self.policy.step_timeout_s
        retry = getattr(agent, "retry", None) or self.policy.retry
        if repairs is None:
            repairs = getattr(agent, "max_repairs", None)
            repairs = self.policy.max_repairs if repairs is None else repairs
        bound_fn = getattr(agent, "bound", None)
        one = bound_fn(timeout_s=timeout) if bound_fn else Bound(calls=1, seconds=timeout)
        return one.times(retry.max_attempts + repairs)


class Node(ABC):
    """Base of every pattern node."""

    kind: ClassVar[str] = "node"

    def __init__(self, *, name: str | None = None, budget: Budget | None = None,
                 timeout_s: float | None = None) -> None:
        self.label = name or self.kind
        self.budget = budget
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ running

    async def execute(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        """Run this node under its own sub-budget and timeout, if it declares them."""
        if self.budget is None and self.timeout_s is None:
            return await self.run(ctx, env, scope)
        where = scope.key(self.label)
        inner = scope.with_budget(self.budget, where)
        limit, from_budget = self.timeout_s, False
        if self.budget is not None and self.budget.seconds is not None and (
            limit is None or self.budget.seconds < limit
        ):
            limit, from_budget = self.budget.seconds, True
        if limit is None:
            return await self.run(ctx, env, inner)
        try:
            async with asyncio.timeout(limit):
                return await self.run(ctx, env, inner)
        except TimeoutError:
            step, agent = ctx.last_cancelled(scope.prefix)
            err: BudgetExceeded | StepTimeout
            if from_budget:
                err = BudgetExceeded("seconds", limit=limit, measured=limit, scope=where,
                                     step=step or where, agent=agent)
                ctx.trip(err)
            else:
                err = StepTimeout(limit, scope=f"{self.kind} {where}", step=step or where,
                                  agent=agent)
            raise err from None

    @abstractmethod
    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        """Run the node on ``env``; children run in ``scope.enter(segment)``."""

    # ------------------------------------------------------------------ static

    @abstractmethod
    def check(self, cc: CheckContext, input_model: type[BaseModel] | None,
              where: str) -> type[BaseModel] | None:
        """Report problems; return the output model (None when it cannot be known)."""

    @abstractmethod
    def entry(self, registry: Registry) -> type[BaseModel] | None:
        """The input model this node expects (from its first agent), if known."""

    @abstractmethod
    def bound(self, cc: CheckContext) -> Bound:
        """Worst-case cost and latency of this node, from its structure."""

    @abstractmethod
    def children(self) -> Sequence[Node]:
        """Child nodes (for walking the tree)."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: what the definition hash covers and what the CLI draws."""
        data: dict[str, Any] = {"kind": self.kind, "name": self.label}
        data.update(self._describe())
        if self.budget is not None:
            data["budget"] = repr(self.budget)
        if self.timeout_s is not None:
            data["timeout_s"] = self.timeout_s
        return data

    def _describe(self) -> dict[str, Any]:
        return {"children": [c.describe() for c in self.children()]}

    def agents(self) -> Iterable[str]:
        """Every agent name this subtree may call."""
        for child in self.children():
            yield from child.agents()


Flow = Node | str


def as_node(flow: Flow) -> Node:
    """A node from a node or an agent name."""
    if isinstance(flow, Node):
        return flow
    if isinstance(flow, str):
        from orchestrion.patterns.step import Step

        return Step(flow)
    raise TypeError(f"expected a pattern node or an agent name, got {flow!r}")


def call_user(fn: Any, value: Any, *, step: str, name: str) -> Any:
    """Call a user callable (a classifier function, a stop condition) as part of a step.

    Its exceptions become :class:`AgentFailed` at ``step`` so they end the run
    with a located, typed error instead of escaping it.
    """
    try:
        return fn(value)
    except Exception as exc:
        raise AgentFailed(f"{name} raised {type(exc).__name__}: {exc}", step=step, agent=name,
                          cause=exc) from exc


def field_model(model: type[BaseModel] | None, field: str) -> Any:
    """The annotation of ``field`` on ``model``, or None."""
    if model is None:
        return None
    info = model.model_fields.get(field)
    return None if info is None else info.annotation


@lru_cache(maxsize=512)
def bundle(name: str, fields: tuple[tuple[str, Any, bool], ...]) -> type[BaseModel]:
    """A cached dynamic model: ``fields`` are (name, annotation, required)."""
    spec: dict[str, Any] = {
        fname: (ann, ... if required else None) for fname, ann, required in fields
    }
    return create_model(name, **spec)


def labels_of(children: Sequence[Node] | Mapping[str, Node]) -> list[str]:
    """Labels for branches: mapping keys, else agent names (deduplicated), else branch_i."""
    if isinstance(children, Mapping):
        return list(children)
    from orchestrion.patterns.step import Step

    labels: list[str] = []
    for i, child in enumerate(children):
        base = child.agent if isinstance(child, Step) else f"branch_{i}"
        label = base
        n = 2
        while label in labels:
            label = f"{base}_{n}"
            n += 1
        labels.append(label)
    return labels
