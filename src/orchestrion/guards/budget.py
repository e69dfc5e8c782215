"""Hierarchical budgets: reserved before each call, settled after.

A :class:`Budget` is a declared limit (usd, tokens, calls, seconds).  A
:class:`Ledger` is the live account for one scope (the run, a branch, an agent);
it has a parent, and a reservation must fit in every ancestor.  Reserving before
the call means a call that *would* cross a limit never starts; settling after
records what was really spent (a provider may exceed its estimate, which is then
reported with the measured value).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrion.cost.usage import Usage
from orchestrion.errors import BudgetExceeded


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Limits for a scope. ``None`` means no limit in that dimension.

    ``seconds`` is wall time from the scope's start; ``calls`` counts agent and
    tool invocations including retries and repairs.
    """

    usd: float | None = None
    tokens: int | None = None
    calls: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("usd", "tokens", "calls", "seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Budget.{name} must be >= 0, got {value}")

    @property
    def unlimited(self) -> bool:
        return self.usd is None and self.tokens is None and self.calls is None and (
            self.seconds is None
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a call reserved; handed back to :meth:`Ledger.settle`."""

    ledger: Ledger
    usd: float
    tokens: int


class Ledger:
    """The live account of one budget scope."""

    __slots__ = (
        "_reserved_tokens",
        "_reserved_usd",
        "budget",
        "calls",
        "parent",
        "scope",
        "spent",
        "started",
    )

    def __init__(self, budget: Budget | None, *, scope: str = "run",
                 parent: Ledger | None = None) -> None:
        self.budget = budget if budget is not None and not budget.unlimited else None
        self.scope = scope
        self.parent = parent
        self.spent = Usage()
        self.calls = 0
        self.started = time.monotonic()
        self._reserved_usd = 0.0
        self._reserved_tokens = 0

    def child(self, budget: Budget | None, scope: str) -> Ledger:
        """A sub-budget whose spending also counts against this one."""
        return Ledger(budget, scope=scope, parent=self)

    # ------------------------------------------------------------------ calls

    def count_call(self, *, step: str, agent: str) -> None:
        """Count one agent/tool invocation, refusing it if a calls limit is reached."""
        node: Ledger | None = self
        while node is not None:
            b = node.budget
            if b is not None:
                if b.calls is not None and node.calls + 1 > b.calls:
                    raise BudgetExceeded("calls", limit=b.calls, measured=node.calls + 1,
                                         scope=node.scope, step=step, agent=agent,
                                         before_call=True)
                node._check_time(step, agent)
            node = node.parent
        node = self
        while node is not None:
            node.calls += 1
            node = node.parent

    def _check_time(self, step: str, agent: str) -> None:
        b = self.budget
        if b is not None and b.seconds is not None:
            elapsed = time.monotonic() - self.started
            if elapsed > b.seconds:
                raise BudgetExceeded("seconds", limit=b.seconds, measured=elapsed,
                                     scope=self.scope, step=step, agent=agent)

    # ------------------------------------------------------------------ model spend

    def reserve(self, *, usd: float, tokens: int, step: str, agent: str) -> Reservation:
        """Reserve an estimate in this scope and all ancestors, or raise BudgetExceeded."""
        node: Ledger | None = self
        while node is not None:
            b = node.budget
            if b is not None:
                if b.tokens is not None:
                    projected = node.spent.tokens + node._reserved_tokens + tokens
                    if projected > b.tokens:
                        raise BudgetExceeded("tokens", limit=b.tokens, measured=projected,
                                             scope=node.scope, step=step, agent=agent,
                                             before_call=True)
                if b.usd is not None:
                    projected_usd = node.spent.usd + node._reserved_usd + usd
                    if projected_usd > b.usd + 1e-12:
                        raise BudgetExceeded("usd", limit=b.usd, measured=projected_usd,
                                             scope=node.scope, step=step, agent=agent,
                                             before_call=True)
                node._check_time(step, agent)
            node = node.parent
        node = self
        while node is not None:
            node._reserved_usd += usd
            node._reserved_tokens += tokens
            node = node.parent
        return Reservation(self, usd, tokens)

    def settle(self, reservation: Reservation | None, actual: Usage, *, step: str,
               agent: str) -> None:
        """Release a reservation and record the actual spend; raise if a limit is now crossed.

        The spend is recorded before raising, so reports stay truthful.
        """
        over: BudgetExceeded | None = None
        node: Ledger | None = self
        while node is not None:
            if reservation is not None:
                node._reserved_usd -= reservation.usd
                node._reserved_tokens -= reservation.tokens
            node.spent = node.spent + actual
            b = node.budget
            if b is not None and over is None:
                if b.tokens is not None and node.spent.tokens > b.tokens:
                    over = BudgetExceeded("tokens", limit=b.tokens, measured=node.spent.tokens,
                                          scope=node.scope, step=step, agent=agent)
                elif b.usd is not None and node.spent.usd > b.usd + 1e-12:
                    over = BudgetExceeded("usd", limit=b.usd, measured=node.spent.usd,
                                          scope=node.scope, step=step, agent=agent)
            node = node.parent
        if over is not None:
            raise over

    def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose call spent nothing (it failed or was cancelled)."""
        node: Ledger | None = self
        while node is not None:
            node._reserved_usd -= reservation.usd
            node._reserved_tokens -= reservation.tokens
            node = node.parent

    def remaining(self) -> Budget:
        """What is left in this scope (ancestors not considered)."""
        b = self.budget
        if b is None:
            return Budget()
        return Budget(
            usd=None if b.usd is None else max(0.0, b.usd - self.spent.usd),
            tokens=None if b.tokens is None else max(0, b.tokens - self.spent.tokens),
            calls=None if b.calls is None else max(0, b.calls - self.calls),
            seconds=None if b.seconds is None
            else max(0.0, b.seconds - (time.monotonic() - self.started)),
        )
