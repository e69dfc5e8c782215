"""Debate (group chat): participants argue in bounded rounds, then a judge decides.

Round ``r`` runs every participant concurrently at key ``debate[r]/<participant>``
(a repeated agent gets a suffixed label, ``critic``, ``critic_2``, as in
``parallel``).  Each receives a typed turn, not a growing transcript::

    {"input": <debate input>, "round": r,
     "positions": [{"agent": <label>, "output": <output>}, ...]}   # previous round only

Round 0 gets ``positions=[]``.  Context stays bounded: whatever the number of
rounds, a participant reads at most one position per participant.  After each
round the differences between positions are recorded as ``Disagreement`` events
with the step that produced each value; when all positions are identical and
``stop_on_consensus`` is set, the debate stops early (a ``Decision`` event with
reason ``"consensus"``).  The judge then gets ``{"input": ..., "positions": [...]}``
(the last round) at key ``debate/<judge>``; its output is the debate's output.

A failing participant fails the debate with :class:`BranchesFailed`, which keeps
the round's other positions; a budget running out mid-round is raised as the
:class:`BudgetExceeded` itself.  Cost bound: ``rounds x`` (participants' cost
summed, latency of the slowest) plus the judge.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from orchestrion.contracts.contract import dump_payload, payload_json
from orchestrion.cost.bounds import Bound, concurrently
from orchestrion.guards.budget import Budget
from orchestrion.patterns.base import CheckContext, Node, bundle, field_model, labels_of
from orchestrion.patterns.fanout import fan_out
from orchestrion.patterns.merge import record_disagreements
from orchestrion.patterns.step import Step
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import RunContext
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.scope import Scope
from orchestrion.security.envelope import Envelope


class Debate(Node):
    """Bounded rounds of concurrent participants over typed positions, then a judge."""

    kind = "debate"

    def __init__(
        self,
        participants: Sequence[str],
        *,
        rounds: int | None,
        judge: str,
        stop_on_consensus: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if isinstance(participants, str):
            raise TypeError("debate() takes a list of participant names, not one string")
        if not participants:
            raise ValueError("debate() needs at least one participant")
        self.participants = list(participants)
        self.labels = labels_of([Step(p) for p in self.participants])
        self.rounds = rounds
        self.judge = judge
        self.stop_on_consensus = stop_on_consensus

    @property
    def bounded(self) -> bool:
        """True when ``rounds`` is a usable bound (an int >= 1)."""
        return self.rounds is not None and self.rounds >= 1

    # ------------------------------------------------------------------ running

    async def run(self, ctx: RunContext, env: Envelope, scope: Scope) -> Envelope:
        # check() refuses an unusable bound; run directly, it gets a single round.
        rounds = self.rounds if self.rounds is not None and self.rounds >= 1 else 1
        positions: dict[str, Envelope] = {}
        for r in range(rounds):
            positions = await self._round(ctx, env, scope, r, positions)
            last = r + 1 == rounds
            if self._settled(ctx, scope.key(f"{self.label}[{r}]"), r, positions, last=last):
                break
        return await self._verdict(ctx, env, scope, positions)

    async def _round(
        self, ctx: RunContext, env: Envelope, scope: Scope, r: int, previous: Mapping[str, Envelope]
    ) -> dict[str, Envelope]:
        """One round: every participant sees the input and the previous round's positions."""
        where = scope.key(f"{self.label}[{r}]")
        inner = scope.enter(f"{self.label}[{r}]")
        payload = {"input": dump_payload(env.payload), "round": r, "positions": entries(previous)}
        turn = env.bundle(payload, sender=self.kind, key=where, extra=tuple(previous.values()))
        calls = {
            lbl: ctx.call(agent, turn, key=inner.key(lbl), ledger=scope.ledger)
            for lbl, agent in zip(self.labels, self.participants, strict=True)
        }
        ok, _ = await fan_out(calls, step=where)
        return ok

    def _settled(
        self, ctx: RunContext, key: str, r: int, positions: Mapping[str, Envelope], *, last: bool
    ) -> bool:
        """Record round ``r``'s disagreements; True when the debate stops early on consensus."""
        next_step = f"judge {self.judge!r}" if last else f"round {r + 1}"
        record_disagreements(ctx, key, positions, f"debate round {r}: on to {next_step}")
        agreed = len({payload_json(e.payload) for e in positions.values()}) == 1
        if last or not (agreed and self.stop_on_consensus):
            return False  # running out of rounds is not a decision; stopping early is
        ctx.emit(
            ev.Decision,
            step=key,
            pattern=self.kind,
            chosen=tuple(positions),
            rejected=(),
            reason="consensus",
        )
        return True

    async def _verdict(
        self, ctx: RunContext, env: Envelope, scope: Scope, positions: Mapping[str, Envelope]
    ) -> Envelope:
        where = scope.key(self.label)
        payload = {"input": dump_payload(env.payload), "positions": entries(positions)}
        verdict = env.bundle(
            payload,
            sender=self.kind,
            key=where,
            recipient=self.judge,
            extra=tuple(positions.values()),
        )
        key = scope.enter(self.label).key(self.judge)
        return await ctx.call(self.judge, verdict, key=key, ledger=scope.ledger)

    # ------------------------------------------------------------------ static

    def check(
        self, cc: CheckContext, input_model: type[BaseModel] | None, where: str
    ) -> type[BaseModel] | None:
        here = f"{where}/{self.label}"
        if not self.bounded:
            cc.problem(
                "unbounded-loop",
                here,
                f"debate has no usable bound on rounds (rounds={self.rounds!r})",
                "pass rounds=N with N >= 1; every loop needs a bound",
            )
        resolved = {
            lbl: a
            for lbl, name in zip(self.labels, self.participants, strict=True)
            if (a := cc.agent(name, f"{here}/{lbl}", role="participant")) is not None
        }
        positions = entries_model("Position", [a.contract.output for a in resolved.values()])
        subject = input_model or Any
        turn = bundle(
            "Turn",
            (("input", subject, True), ("round", int, True), ("positions", positions, True)),
        )
        for lbl, agent in resolved.items():
            cc.edge(turn, "debate turn", agent.contract.input, repr(agent.name), f"{here}/{lbl}")
        judge = cc.agent(self.judge, f"{here}/{self.judge}", role="judge")
        if judge is None:
            return None
        verdict = bundle("Verdict", (("input", subject, True), ("positions", positions, True)))
        cc.edge(verdict, "debate positions", judge.contract.input, repr(self.judge), here)
        return cc.produced(judge.contract.output, repr(self.judge))

    def entry(self, registry: Registry) -> type[BaseModel] | None:
        """The model of the ``input`` field of the first participant's turn, if declared."""
        first = self.participants[0]
        if not registry.has_agent(first):
            return None
        subject = field_model(registry.agent(first).contract.input, "input")
        return subject if isinstance(subject, type) and issubclass(subject, BaseModel) else None

    def bound(self, cc: CheckContext) -> Bound:
        one_round = concurrently([cc.bound_of(p) for p in self.participants])
        if self.rounds is None or self.rounds < 1:
            # Unbounded (check() reports it): say so in every dimension that can.
            return Bound(
                calls=one_round.calls,
                requests=one_round.requests,
                tokens=None,
                usd=None,
                seconds=None,
            )
        return one_round.times(self.rounds).then(cc.bound_of(self.judge))

    def children(self) -> Sequence[Node]:
        return ()

    def _describe(self) -> dict[str, Any]:
        return {
            "participants": dict(zip(self.labels, self.participants, strict=True)),
            "rounds": self.rounds,
            "judge": self.judge,
            "stop_on_consensus": self.stop_on_consensus,
        }

    def agents(self) -> Iterable[str]:
        yield from dict.fromkeys([*self.participants, self.judge])


# --------------------------------------------------------------------------- shared helpers


def entries(results: Mapping[str, Envelope]) -> list[dict[str, Any]]:
    """Typed ``[{"agent": label, "output": dumped}]`` entries (positions, proposals)."""
    return [{"agent": lbl, "output": dump_payload(e.payload)} for lbl, e in results.items()]


def entries_model(name: str, outputs: Sequence[type[BaseModel]]) -> Any:
    """``list[name(agent: str, output: <union of the outputs>)]``, for the static check.

    A union, because each entry holds one of the producers' outputs; the consumer
    must accept every one of them.
    """
    distinct = list(dict.fromkeys(outputs))
    output: Any = functools.reduce(operator.or_, distinct) if distinct else Any
    entry = bundle(name, (("agent", str, True), ("output", output, True)))
    return list[entry]  # type: ignore[valid-type]


def debate(
    participants: Sequence[str],
    *,
    rounds: int | None,
    judge: str,
    stop_on_consensus: bool = True,
    name: str | None = None,
    budget: Budget | None = None,
    timeout_s: float | None = None,
) -> Debate:
    """``debate(["optimist", "skeptic"], rounds=3, judge="chair")``.

    ``rounds`` is required: ``None`` or a value below 1 is reported by
    ``Workflow.check()`` as an unbounded loop, and no run starts.
    """
    return Debate(
        participants,
        rounds=rounds,
        judge=judge,
        stop_on_consensus=stop_on_consensus,
        name=name,
        budget=budget,
        timeout_s=timeout_s,
    )
