"""Parallel (fan-out): run branches concurrently on the same input, then merge.

Keys: ``parallel[i]/...`` (fan-out index).  Cost bound: the sum of the branches'
cost, the max of their latency, plus the merge.  A failing branch never cancels
the others: with ``on_error="fail"`` (default) the run fails with
:class:`BranchesFailed` carrying the finished branches' results; with
``on_error="keep"`` the merge proceeds with the branches that succeeded.
Approvals raised in several branches all surface; the run pauses once the
other branches have finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel

from orchestrion.cost.bounds import Bound, concurrently
from orchestrion.patterns.base import CheckContext, Flow, Node, as_node, labels_of
from orchestrion.patterns.fanout import fan_out
from orchestrion.patterns.merge import Collect, Merge
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Parallel(Node):
    """Fan out to branches, then merge (collect, vote or judge)."""

    kind = "parallel"

    def __init__(self, branches: Sequence[Flow] | Mapping[str, Flow], *,
                 merge: Merge | None = None, on_error: Literal["fail", "keep"] = "fail",
                 concurrency: int | None = None, **kw) -> None:
        super().__init__(**kw)
        if not branches:
            raise ValueError("parallel() needs at least one branch")
        if on_error not in ("fail", "keep"):
            raise ValueError("on_error must be 'fail' or 'keep'")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        nodes = ({k: as_node(v) for k, v in branches.items()} if isinstance(branches, Mapping)
                 else [as_node(b) for b in branches])
        self.labels = labels_of(nodes)
        bad = [lbl for lbl in self.labels if not lbl.isidentifier()]
        if bad:
            raise ValueError(f"branch labels must be identifiers, got {bad}")
        self.nodes = list(nodes.values()) if isinstance(nodes, Mapping) else nodes
        self.merger = merge or Collect()
        self.on_error = on_error
        self.concurrency = concurrency

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        label = self.label
        sem = asyncio.Semaphore(self.concurrency) if self.concurrency else None

        async def branch(i: int, node: Node) -> Envelope:
            child = scope.enter(f"{label}[{i}]")
            if sem is None:
                return await node.execute(ctx, env, child)
            async with sem:
                return await node.execute(ctx, env, child)

        key = scope.key(label)
        ok, failures = await fan_out(
            {lbl: branch(i, n) for i, (lbl, n) in enumerate(zip(self.labels, self.nodes,
                                                               strict=True))},
            step=key, on_error=self.on_error)
        if failures:
            ctx.emit(ev.Decision, step=key, pattern=self.kind, chosen=tuple(ok),
                     rejected=tuple(failures), reason="on_error='keep': failed branches dropped")
        return await self.merger.merge(ctx, env, scope, key, ok)

    # ------------------------------------------------------------------ static

    def check(self, cc: CheckContext, input_model: type[BaseModel] | None,
              where: str) -> type[BaseModel] | None:
        outputs = {lbl: node.check(cc, input_model, f"{where}/{self.label}[{i}]")
                   for i, (lbl, node) in enumerate(zip(self.labels, self.nodes, strict=True))}
        model = self.merger.output_model(cc, outputs, input_model, f"{where}/{self.label}",
                                         optional=self.on_error == "keep")
        if isinstance(self.merger, Collect):
            self.merger.bind(model)
        return model

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        return self.nodes[0].entry(registry)

    def bound(self, cc: CheckContext) -> Bound:
        return concurrently([n.bound(cc) for n in self.nodes]).then(self.merger.bound(cc))

    def children(self) -> Sequence[Node]:
        return self.nodes

    def _describe(self) -> dict:
        return {"branches": {lbl: n.describe() for lbl, n in zip(self.labels, self.nodes,
                                                                   strict=True)},
                "on_error": self.on_error, "concurrency": self.concurrency,
                **self.merger.describe()}

    def agents(self):
        yield from super().agents()
        yield from self.merger.agents()


def parallel(*branches: Flow, merge: Merge | None = None,
             on_error: Literal["fail", "keep"] = "fail", concurrency: int | None = None,
             name: str | None = None, budget=None, timeout_s=None,
             **named: Flow) -> Parallel:
    """``parallel("web", "docs", merge=vote())`` or ``parallel(web="search", docs="rag")``."""
    if branches and named:
        raise ValueError("pass branches either positionally or by name, not both")
    spec: Sequence[Flow] | Mapping[str, Flow] = named or list(branches)
    return Parallel(spec, merge=merge, on_error=on_error, concurrency=concurrency, name=name,
                    budget=budget, timeout_s=timeout_s)
