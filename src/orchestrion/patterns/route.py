"""Route: a classifier (agent or function) picks one branch for the input.

The classifier's output has a label field (``field``, default ``"label"``);
its ``reason`` field, if any, is recorded on the decision event.  An unknown
label goes to ``default`` when declared, else it is a typed :class:`RouteError`.
The chosen branch receives the route's own input, not the classifier's output.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from orchestrion.cost.bounds import Bound, worst_of
from orchestrion.errors import RouteError
from orchestrion.patterns.base import (
    CheckContext,
    Flow,
    Node,
    as_node,
    call_user,
    field_model,
)
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Route(Node):
    """Classify, then run exactly one branch.

    Keys: ``route/<classifier>`` and ``route[label]/...``.
    """

    kind = "route"

    def __init__(self, classifier: str | Callable[[Any], str], branches: Mapping[str, Flow], *,
                 default: str | None = None, field: str = "label", **kw) -> None:
        super().__init__(**kw)
        if not branches:
            raise ValueError("route() needs at least one branch")
        if default is not None and default not in branches:
            raise ValueError(f"route default {default!r} is not one of the branches")
        self.classifier = classifier
        self.branches = {label: as_node(flow) for label, flow in branches.items()}
        self.default = default
        self.field = field

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        inner = scope.enter(self.label)
        key = inner.key(self._classifier_name)
        reason = ""
        if isinstance(self.classifier, str):
            decided = await ctx.call(self.classifier, env, key=key, ledger=scope.ledger)
            label = _label_value(getattr(decided.payload, self.field))
            reason = str(getattr(decided.payload, "reason", "") or "")
        else:
            label = _label_value(call_user(self.classifier, env.payload, step=key,
                                           name=self._classifier_name))
        chosen = label
        if label not in self.branches:
            if self.default is None:
                err = RouteError(label, labels=self.branches, step=key,
                                 agent=self._classifier_name)
                ctx.emit(ev.Decision, step=key, pattern=self.kind, chosen=(),
                         rejected=tuple(self.branches), reason=f"unknown label {label!r}")
                raise err
            chosen = self.default
            reason = f"label {label!r} has no branch; default {self.default!r}. {reason}".strip()
        ctx.emit(ev.Decision, step=key, pattern=self.kind, chosen=(chosen,),
                 rejected=tuple(lbl for lbl in self.branches if lbl != chosen), reason=reason)
        node = self.branches[chosen]
        # The branch receives the route's own input; the decision is on the event log.
        return await node.execute(ctx, env, scope.enter(f"{self.label}[{chosen}]"))

    @property
    def _classifier_name(self) -> str:
        c = self.classifier
        return c if isinstance(c, str) else getattr(c, "__name__", "classifier")

    # ------------------------------------------------------------------ static

    def check(self, cc: CheckContext, input_model: type[BaseModel] | None,
              where: str) -> type[BaseModel] | None:
        here = f"{where}/{self.label}"
        labels: set[str] | None = None
        if isinstance(self.classifier, str):
            agent = cc.agent(self.classifier, f"{here}/{self.classifier}", role="classifier")
            if agent is not None:
                cc.edge(input_model, "route input", agent.contract.input,
                        repr(self.classifier), here)
                out = agent.contract.output
                if self.field not in out.model_fields:
                    cc.problem("route-field", here,
                               f"classifier {self.classifier!r} output {out.__name__} has no "
                               f"field {self.field!r}",
                               f"add a {self.field!r} field or pass field=...")
                else:
                    labels = _finite_labels(field_model(out, self.field))
        if labels is not None:
            for lbl in sorted(labels - set(self.branches)):
                if self.default is None:
                    cc.problem("unrouted-label", here,
                               f"classifier can return {lbl!r} but no branch handles it",
                               "add a branch or declare default=...")
            for lbl in sorted(set(self.branches) - labels):
                if lbl != self.default:
                    cc.problem("unreachable-branch", f"{here}[{lbl}]",
                               f"branch {lbl!r} can never be chosen: the classifier returns "
                               f"only {sorted(labels)}",
                               "remove the branch or add the label to the classifier's output")
        outputs: list[tuple[str, type[BaseModel] | None]] = []
        for lbl, node in self.branches.items():
            outputs.append((lbl, node.check(cc, input_model, f"{here}[{lbl}]")))
        known = [(lbl, m) for lbl, m in outputs if m is not None]
        if not known:
            return None
        first_label, first = known[0]
        for lbl, m in known[1:]:
            cc.edge(m, f"branch {lbl!r}", first, f"branch {first_label!r} (route output)", here)
        return first

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        if isinstance(self.classifier, str) and registry.has_agent(self.classifier):
            return registry.agent(self.classifier).contract.input
        return next(iter(self.branches.values())).entry(registry)

    def bound(self, cc: CheckContext) -> Bound:
        branch = worst_of([n.bound(cc) for n in self.branches.values()])
        if isinstance(self.classifier, str):
            return cc.bound_of(self.classifier).then(branch)
        return branch

    def children(self) -> Sequence[Node]:
        return list(self.branches.values())

    def _describe(self) -> dict:
        return {"classifier": self._classifier_name, "default": self.default,
                "branches": {k: v.describe() for k, v in self.branches.items()}}

    def agents(self):
        if isinstance(self.classifier, str):
            yield self.classifier
        yield from super().agents()


def _label_value(value: Any) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value)


def _finite_labels(annotation: Any) -> set[str] | None:
    """The finite set of labels an annotation allows (Literal, Enum), else None."""
    if annotation is None:
        return None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {str(m.value) for m in annotation}
    if typing.get_origin(annotation) is Literal:
        return {str(a) for a in typing.get_args(annotation)}
    return None


def route(classifier: str | Callable[[Any], str], branches: Mapping[str, Flow], *,
          default: str | None = None, field: str = "label", name: str | None = None,
          budget=None, timeout_s=None) -> Route:
    """``route("triage", {"billing": "billing_agent", "tech": chain(...)}, default="general")``."""
    return Route(classifier, branches, default=default, field=field, name=name, budget=budget,
                 timeout_s=timeout_s)
