"""Chain (prompt chaining): A's output is B's input, in sequence."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from orchestrion.cost.bounds import Bound, sequence
from orchestrion.patterns.base import CheckContext, Flow, Node, as_node
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Chain(Node):
    """Run children in order; each receives the previous one's output envelope.

    Keys: ``chain[i]/...``.  Cost bound: the sum of the children's.
    A failure stops the chain at the step that caused it; earlier outputs stay
    on the run result.
    """

    kind = "chain"

    def __init__(self, *steps: Flow, **kw) -> None:
        super().__init__(**kw)
        if not steps:
            raise ValueError("chain() needs at least one step")
        self.steps = [as_node(s) for s in steps]

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        label = self.label
        for i, node in enumerate(self.steps):
            child = scope.enter(f"{label}[{i}]")
            if node.budget is None and node.timeout_s is None and (
                type(node).execute is _execute
            ):  # what Node.execute would do, one coroutine frame less
                env = await node.run(ctx, env, child)
            else:
                env = await node.execute(ctx, env, child)
        return env

    def check(self, cc: CheckContext, input_model: type[BaseModel] | None,
              where: str) -> type[BaseModel] | None:
        model = input_model
        for i, node in enumerate(self.steps):
            model = node.check(cc, model, f"{where}/{self.label}[{i}]")
        return model

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        return self.steps[0].entry(registry)

    def bound(self, cc: CheckContext) -> Bound:
        return sequence([n.bound(cc) for n in self.steps])

    def children(self) -> Sequence[Node]:
        return self.steps


_execute = Node.execute


def chain(*steps: Flow, name: str | None = None, budget=None, timeout_s=None) -> Chain:
    """``chain("research", "write", "edit")``: sequential hand-offs."""
    return Chain(*steps, name=name, budget=budget, timeout_s=timeout_s)
