"""Handoff: transfer of control among a declared set of agents, bounded and typed.

The OpenAI-Agents / Swarm style of delegation, with the two holes of the usual
implementations closed:

* a transfer goes only to an agent *declared* in the handoff set; a target outside
  it is a typed :class:`~orchestrion.errors.UnknownAgent` naming the caller, the
  step and the declared names (LangGraph silently ignores a ``goto`` to a node that
  does not exist).  The declared set is the plan fixed before any untrusted data
  arrives, so a transfer chosen by a tainted agent still stays inside it;
* the number of transfers is bounded by ``max_handoffs``; ping-pong between two
  agents or a long chain ends with :class:`~orchestrion.errors.LoopBoundReached`.

Protocol.  Every agent's output model has a field ``handoff_to: str | None``
(the name is ``field=``) and, ideally, a ``note`` for the next agent.  Turn ``t``
runs one agent at key ``handoff[t]/<agent>``.  When its ``handoff_to`` is None (or
an empty string, which models often write for "no value") that output is the
handoff's result.  Otherwise the target receives the handoff's *original* input,
dumped, plus two fields::

    {**original_input, "handoff_from": "<caller>", "handoff_note": "<its note or None>"}

validated into the target's input model (declare ``handoff_from`` / ``handoff_note``
on it to read them; Pydantic ignores them otherwise).  A non-object input (a
``RootModel`` such as ``Text``) travels as ``{"input": ..., "handoff_from": ...,
"handoff_note": ...}``.  Every transfer emits a ``Decision`` event.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, RootModel, create_model

from orchestrion.contracts.contract import dump_payload
from orchestrion.cost.bounds import Bound, worst_of
from orchestrion.errors import LoopBoundReached, UnknownAgent
from orchestrion.guards.budget import Budget
from orchestrion.patterns.base import CheckContext, Node, bundle
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Handoff(Node):
    """Run ``start``; each output may pass control to another declared agent.

    Keys: ``handoff[t]/<agent>`` for turn ``t``.  Cost bound:
    ``(max_handoffs + 1) x`` the worst agent's bound.
    """

    kind = "handoff"

    def __init__(
        self,
        start: str,
        agents: Sequence[str],
        *,
        max_handoffs: int | None,
        field: str = "handoff_to",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if isinstance(agents, str):
            raise TypeError("handoff(agents=...) takes a list of agent names, not one string")
        if not agents:
            raise ValueError("handoff() needs at least one agent")
        self.start = start
        self.names = list(dict.fromkeys(agents))  # declared set, order kept, duplicates dropped
        self.max_handoffs = max_handoffs
        self.field = field

    @property
    def bounded(self) -> bool:
        """True when ``max_handoffs`` is a usable bound (an int >= 0)."""
        return self.max_handoffs is not None and self.max_handoffs >= 0

    # ------------------------------------------------------------------ running

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        # An unusable bound never gets here through Workflow (check() refuses it); a
        # node run directly then allows no transfer at all rather than an endless loop.
        n = self.max_handoffs
        limit = n if n is not None and n >= 0 else 0
        current, incoming, turn = self.start, env, 0
        caller: str | None = None  # who handed control to ``current``, named if it is unknown
        path = [current]
        while True:
            key = scope.enter(f"{self.label}[{turn}]").key(current)
            out = await ctx.call(current, incoming, key=key, ledger=scope.ledger, caller=caller)
            target = _target_name(getattr(out.payload, self.field, None))
            if target is None:
                return out
            self._admit(ctx, key, current, target)
            if turn == limit:
                raise self._exhausted(ctx, key, current, [*path, target], limit)
            note = _note_of(out.payload)
            ctx.emit(
                ev.Decision,
                step=key,
                pattern=self.kind,
                chosen=(target,),
                rejected=self._others(target),
                reason=note or "",
            )
            # Provenance: the original input and the caller's output both reach the target.
            incoming = env.bundle(
                _handoff_payload(env.payload, current, note),
                sender=current,
                key=key,
                recipient=target,
                extra=(out,),
            )
            caller, current, turn = current, target, turn + 1
            path.append(current)

    def _admit(self, ctx: RunContext, key: str, caller: str, target: str) -> None:
        """Refuse a transfer to an agent outside the declared set, naming everything."""
        if target in self.names:
            return
        ctx.emit(
            ev.Decision,
            step=key,
            pattern=self.kind,
            chosen=(),
            rejected=tuple(self.names),
            reason=f"unknown handoff target {target!r}",
        )
        raise UnknownAgent(
            target,
            known=self.names,
            caller=caller,
            step=key,
            hint=f"declare {target!r} in handoff(agents=[...]), or constrain the "
            f"{self.field!r} field of {caller!r} to the declared names",
        )

    def _exhausted(
        self, ctx: RunContext, key: str, caller: str, path: list[str], limit: int
    ) -> LoopBoundReached:
        """The bound error for a transfer past ``max_handoffs``, tripped on the event log."""
        err = LoopBoundReached(
            f"handoff {' -> '.join(path)} (max_handoffs={limit})",
            limit,
            step=key,
            agent=caller,
            hint="raise max_handoffs, or tell the agents when to answer instead of handing "
            "off (agents passing control back and forth usually means none owns the task)",
        )
        ctx.trip(err)
        return err

    def _others(self, target: str) -> tuple[str, ...]:
        return tuple(n for n in self.names if n != target)

    # ------------------------------------------------------------------ static

    def check(
        self, cc: CheckContext, input_model: type[BaseModel] | None, where: str
    ) -> type[BaseModel] | None:
        here = f"{where}/{self.label}"
        self._check_declaration(cc, here)
        members = dict.fromkeys([self.start, *self.names])
        resolved = {
            n: a
            for n in members
            if (a := cc.agent(n, f"{here}/{n}", role=self._role(n))) is not None
        }
        targets: set[str] = set()
        for name, agent in resolved.items():
            targets |= self._check_field(cc, name, agent.contract.output, f"{here}/{name}")
        inputs = {n: a.contract.input for n, a in resolved.items()}
        self._check_inputs(cc, input_model, inputs, targets, here)
        return self._result_model(cc, {n: a.contract.output for n, a in resolved.items()}, here)

    def _role(self, name: str) -> str:
        return "handoff agent" if name in self.names else "handoff start"

    def _check_declaration(self, cc: CheckContext, here: str) -> None:
        """The loop needs a bound, and the start must be one of the declared agents."""
        if not self.bounded:
            cc.problem(
                "unbounded-loop",
                here,
                f"handoff has no usable bound on transfers (max_handoffs={self.max_handoffs!r})",
                "pass max_handoffs=N with N >= 0; every loop needs a bound",
            )
        if self.start not in self.names:
            cc.problem(
                "handoff-start",
                here,
                f"start agent {self.start!r} is not in the declared agents {self.names}",
                f"add {self.start!r} to agents=[...]",
            )

    def _check_field(
        self, cc: CheckContext, name: str, out: type[BaseModel], where: str
    ) -> set[str]:
        """Check the handoff field of ``name``'s output; return the declared agents it can name.

        The field must exist, allow None (else the agent can never answer), and, when
        it is a ``Literal`` or ``Enum``, name only declared agents.
        """
        info = out.model_fields.get(self.field)
        if info is None:
            cc.problem(
                "handoff-field",
                where,
                f"handoff agent {name!r} output {out.__name__} has no field {self.field!r}",
                f"add `{self.field}: str | None = None` (and ideally a `note: str`) "
                "to the output model",
            )
            return set()
        if not _allows_none(info.annotation):
            cc.problem(
                "handoff-field",
                where,
                f"field {self.field!r} of {out.__name__} cannot be None, so {name!r} can "
                "never answer without handing off",
                f"declare it as `{self.field}: str | None = None`",
            )
        targets = _finite_targets(info.annotation)
        if targets is None:
            return set(self.names)
        for target in sorted(targets - set(self.names)):
            cc.problem(
                "unknown-handoff-target",
                where,
                f"{name!r} can hand off to {target!r}, which is not a declared agent",
                f"declared agents: {', '.join(self.names)}",
            )
        return targets & set(self.names)

    def _check_inputs(
        self,
        cc: CheckContext,
        input_model: type[BaseModel] | None,
        inputs: dict[str, type[BaseModel]],
        targets: set[str],
        here: str,
    ) -> None:
        """The start gets the input itself; every possible target gets the handoff input."""
        before = len(cc.problems)
        if self.start in inputs:
            cc.edge(input_model, "handoff input", inputs[self.start], repr(self.start), here)
        start_failed = len(cc.problems) > before
        offered = None if input_model is None else handoff_input_model(input_model)
        for name in self.names:
            if name not in targets or name not in inputs:
                continue
            if name == self.start and start_failed:
                continue  # the same gaps again under another producer name is only noise
            cc.edge(offered, "handoff input", inputs[name], repr(name), here)

    def _result_model(
        self, cc: CheckContext, outputs: dict[str, type[BaseModel]], here: str
    ) -> type[BaseModel] | None:
        """Any agent may give the result, so every output must satisfy the start's."""
        if not outputs:
            return None
        ref = self.start if self.start in outputs else next(iter(outputs))
        for name, model in outputs.items():
            if name != ref:
                cc.edge(
                    model,
                    f"output of {name!r}",
                    outputs[ref],
                    f"output of {ref!r} (handoff result)",
                    here,
                )
        return cc.produced(outputs[ref], f"handoff {self.label!r}")

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        if registry.has_agent(self.start):
            return registry.agent(self.start).contract.input
        return None

    def bound(self, cc: CheckContext) -> Bound:
        worst = worst_of([cc.bound_of(n) for n in self.agents()])
        if not self.bounded or self.max_handoffs is None:
            # Unbounded (check() reports it): say so in every dimension that can.
            return Bound(
                calls=worst.calls, requests=worst.requests, tokens=None, usd=None, seconds=None
            )
        return worst.times(self.max_handoffs + 1)

    def children(self) -> Sequence[Node]:
        return ()

    def _describe(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "agents": list(self.names),
            "max_handoffs": self.max_handoffs,
            "field": self.field,
        }

    def agents(self) -> Iterable[str]:
        yield from dict.fromkeys([self.start, *self.names])


# --------------------------------------------------------------------------- helpers


@lru_cache(maxsize=256)
def handoff_input_model(input_model: type[BaseModel]) -> type[BaseModel]:
    """The model of what a handoff target receives when the handoff input is ``input_model``.

    Used by the static check, so that a target whose input forbids extra fields,
    or declares ``handoff_from`` with another type, is reported before any run.
    """
    extra: dict[str, Any] = {"handoff_from": (str, ...), "handoff_note": (str | None, None)}
    if issubclass(input_model, RootModel):
        return bundle(
            "HandoffInput",
            (
                ("input", input_model, True),
                ("handoff_from", str, True),
                ("handoff_note", str | None, False),
            ),
        )
    return create_model(f"{input_model.__name__}Handoff", __base__=input_model, **extra)


def _handoff_payload(original: Any, caller: str, note: str | None) -> dict[str, Any]:
    """What the next agent receives: the original input plus who handed off and why."""
    dumped = dump_payload(original)
    spreadable = isinstance(dumped, dict) and not isinstance(original, RootModel)
    base = dumped if spreadable else {"input": dumped}
    return {**base, "handoff_from": caller, "handoff_note": note}


def _target_name(value: Any) -> str | None:
    """The target named by a handoff field value; None (or "") means: this is the answer."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or value == "":
        return None
    return str(value)


def _note_of(payload: Any) -> str | None:
    note = getattr(payload, "note", None)
    return None if note is None else str(note)


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _allows_none(annotation: Any) -> bool:
    if annotation is Any or annotation is None or annotation is type(None):
        return True
    for arg in _union_args(annotation):
        if arg is type(None) or arg is Any:
            return True
        if typing.get_origin(arg) is Literal and None in typing.get_args(arg):
            return True
    return False


def _finite_targets(annotation: Any) -> set[str] | None:
    """The names a ``Literal`` / ``Enum`` (optionally nullable) field can hold, else None."""
    names: set[str] = set()
    for arg in _union_args(annotation):
        if arg is type(None):
            continue
        if typing.get_origin(arg) is Literal:
            names |= {str(a) for a in typing.get_args(arg) if a is not None and a != ""}
        elif isinstance(arg, type) and issubclass(arg, enum.Enum):
            names |= {str(m.value) for m in arg}
        else:
            return None
    return names


def handoff(
    start: str,
    agents: Sequence[str],
    *,
    max_handoffs: int | None,
    field: str = "handoff_to",
    name: str | None = None,
    budget: Budget | None = None,
    timeout_s: float | None = None,
) -> Handoff:
    """``handoff("triage", ["triage", "billing", "tech"], max_handoffs=3)``.

    ``max_handoffs`` is required: ``None`` or a negative value is reported by
    ``Workflow.check()`` as an unbounded loop, and no run starts.
    """
    return Handoff(
        start,
        agents,
        max_handoffs=max_handoffs,
        field=field,
        name=name,
        budget=budget,
        timeout_s=timeout_s,
    )
