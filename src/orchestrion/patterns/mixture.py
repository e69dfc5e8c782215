"""Mixture-of-Agents (MoA): layers of proposers refine each other, an aggregator answers.

Layer 0 proposers receive the mixture's input itself.  A proposer of layer
``k > 0`` receives the input and every proposal of layer ``k - 1``::

    {"input": <mixture input>, "proposals": [{"agent": <label>, "output": <output>}, ...]}

All proposers of a layer run concurrently at keys ``mixture[k.i]/<agent>`` (layer
``k``, position ``i``); ``agent`` in a proposal is the proposer's name, suffixed
(``drafter_2``) when a layer lists the same agent twice.  The aggregator receives
the same shape with the last layer's proposals at key ``mixture/<aggregator>`` and
its output is the mixture's output.

MoA is expensive by design, and the bound says so: the sum over layers of every
proposer's cost (latency of the slowest per layer) plus the aggregator.  A failing
proposer fails the mixture with :class:`BranchesFailed` (the layer's other
proposals kept); a budget running out is raised as the :class:`BudgetExceeded`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from orchestrion.contracts.contract import dump_payload
from orchestrion.cost.bounds import Bound, concurrently, sequence
from orchestrion.guards.budget import Budget
from orchestrion.patterns.base import CheckContext, Node, bundle, labels_of
from orchestrion.patterns.debate import entries, entries_model
from orchestrion.patterns.fanout import fan_out
from orchestrion.patterns.step import Step
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Mixture(Node):
    """Layers of concurrent proposers, each reading the previous layer, then an aggregator."""

    kind = "mixture"

    def __init__(self, layers: Sequence[Sequence[str]], *, aggregator: str, **kw: Any) -> None:
        super().__init__(**kw)
        if isinstance(layers, str) or any(isinstance(layer, str) for layer in layers):
            raise TypeError(
                "mixture() takes a list of layers, each a list of agent names: "
                'mixture([["a", "b"], ["c"]], aggregator="d")'
            )
        if not layers or not all(layers):
            raise ValueError("mixture() needs at least one layer, and no layer may be empty")
        self.layers = [list(layer) for layer in layers]
        self.labels = [labels_of([Step(a) for a in layer]) for layer in self.layers]
        self.aggregator = aggregator

    # ------------------------------------------------------------------ running

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        proposals: dict[str, Envelope] = {}
        for k in range(len(self.layers)):
            # Layer 0 reads the input itself; later layers read it with the proposals.
            incoming = env if k == 0 else self._references(env, scope, f"[{k}]", proposals)
            proposals = await self._layer(ctx, incoming, scope, k)
        references = self._references(env, scope, "", proposals, recipient=self.aggregator)
        key = scope.enter(self.label).key(self.aggregator)
        return await ctx.call(self.aggregator, references, key=key, ledger=scope.ledger)

    async def _layer(
        self, ctx: RunContext, incoming: Envelope, scope: Scope, k: int
    ) -> dict[str, Envelope]:
        """Every proposer of layer ``k`` on the same incoming envelope, concurrently."""
        calls = {
            lbl: ctx.call(
                agent,
                incoming,
                key=scope.enter(f"{self.label}[{k}.{i}]").key(agent),
                ledger=scope.ledger,
            )
            for i, (lbl, agent) in enumerate(zip(self.labels[k], self.layers[k], strict=True))
        }
        ok, _ = await fan_out(calls, step=scope.key(f"{self.label}[{k}]"))
        return ok

    def _references(
        self,
        env: Envelope,
        scope: Scope,
        segment: str,
        proposals: Mapping[str, Envelope],
        recipient: str | None = None,
    ) -> Envelope:
        """The input plus the proposals, with every proposal as a provenance source."""
        payload = {"input": dump_payload(env.payload), "proposals": entries(proposals)}
        return env.bundle(
            payload,
            sender=self.kind,
            key=scope.key(self.label + segment),
            recipient=recipient,
            extra=tuple(proposals.values()),
        )

    # ------------------------------------------------------------------ static

    def check(
        self, cc: CheckContext, input_model: type[BaseModel] | None, where: str
    ) -> type[BaseModel] | None:
        here = f"{where}/{self.label}"
        offered: type[BaseModel] | None = input_model
        offered_name = "mixture input"
        for k, layer in enumerate(self.layers):
            outputs: list[type[BaseModel]] = []
            for i, name in enumerate(layer):
                at = f"{here}[{k}.{i}]"
                agent = cc.agent(name, f"{at}/{name}", role="proposer")
                if agent is not None:
                    cc.edge(offered, offered_name, agent.contract.input, repr(name), at)
                    outputs.append(agent.contract.output)
            offered = self._references_model(input_model, outputs)
            offered_name = f"proposals of layer {k} {layer}"
        aggregator = cc.agent(self.aggregator, f"{here}/{self.aggregator}", role="aggregator")
        if aggregator is None:
            return None
        cc.edge(offered, offered_name, aggregator.contract.input, repr(self.aggregator), here)
        return cc.produced(aggregator.contract.output, repr(self.aggregator))

    @staticmethod
    def _references_model(
        input_model: type[BaseModel] | None, outputs: Sequence[type[BaseModel]]
    ) -> type[BaseModel]:
        """``References(input, proposals: list[Proposal])`` for one layer's outputs."""
        proposals = entries_model("Proposal", outputs)
        return bundle(
            "References", (("input", input_model or Any, True), ("proposals", proposals, True))
        )

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        first = self.layers[0][0]
        return registry.agent(first).contract.input if registry.has_agent(first) else None

    def bound(self, cc: CheckContext) -> Bound:
        per_layer = [concurrently([cc.bound_of(a) for a in layer]) for layer in self.layers]
        return sequence(per_layer).then(cc.bound_of(self.aggregator))

    def children(self) -> Sequence[Node]:
        return ()

    def _describe(self) -> dict[str, Any]:
        return {"layers": [list(layer) for layer in self.layers], "aggregator": self.aggregator}

    def agents(self) -> Iterable[str]:
        yield from dict.fromkeys([*(a for layer in self.layers for a in layer), self.aggregator])


def mixture(
    layers: Sequence[Sequence[str]],
    *,
    aggregator: str,
    name: str | None = None,
    budget: Budget | None = None,
    timeout_s: float | None = None,
) -> Mixture:
    """``mixture([["gpt", "claude", "llama"], ["gpt", "claude"]], aggregator="chair")``."""
    return Mixture(layers, aggregator=aggregator, name=name, budget=budget, timeout_s=timeout_s)
