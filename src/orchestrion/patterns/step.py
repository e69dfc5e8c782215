"""Step: the leaf of every flow, one call of one agent through the choke point."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from orchestrion.cost.bounds import Bound
from orchestrion.patterns.base import CheckContext, Node
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Step(Node):
    """Call agent ``agent`` with the incoming payload; its key is ``<scope>/<agent>``."""

    kind = "step"

    def __init__(self, agent: str, **kw) -> None:
        super().__init__(name=kw.pop("name", None) or agent, **kw)
        self.agent = agent

    async def execute(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        if self.budget is None and self.timeout_s is None and type(self).run is _run:
            # Node.execute then Step.run, inlined: one coroutine frame less per step.
            key = scope.prefix + self.agent
            agent = ctx.registry.agent(self.agent, step=key)
            return await ctx.invoke(agent, env, key=key, ledger=scope.ledger)
        return await Node.execute(self, ctx, env, scope)

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        # ctx.call(...) inlined (one coroutine frame less per step): the same registry
        # lookup (UnknownAgent naming the step), then the choke point.
        key = scope.prefix + self.agent
        agent = ctx.registry.agent(self.agent, step=key)
        return await ctx.invoke(agent, env, key=key, ledger=scope.ledger)

    def check(self, cc: CheckContext, input_model: type[BaseModel] | None,
              where: str) -> type[BaseModel] | None:
        where = f"{where}/{self.agent}"
        agent = cc.agent(self.agent, where)
        if agent is None:
            return None
        cc.edge(input_model, "its input", agent.contract.input, repr(self.agent), where)
        return cc.produced(agent.contract.output, repr(self.agent))

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        return registry.agent(self.agent).contract.input if registry.has_agent(self.agent) else None

    def bound(self, cc: CheckContext) -> Bound:
        return cc.bound_of(self.agent)

    def children(self) -> Sequence[Node]:
        return ()

    def _describe(self) -> dict:
        return {"agent": self.agent}

    def agents(self) -> Iterable[str]:
        yield self.agent


_run = Step.run


def step(agent: str, **kw) -> Step:
    """A leaf calling ``agent`` (a plain agent name works the same inside patterns)."""
    return Step(agent, **kw)
