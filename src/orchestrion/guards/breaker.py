"""Circuit breaker: stop calling an agent (or a provider) that keeps failing.

Without one, a broken dependency fails every run that reaches it, after paying
for the steps before it and for every retry.  :class:`CircuitBreaker` counts the
consecutive failures of each target and, at ``failures``, *opens*: calls are
refused at once with :class:`~orchestrion.errors.CircuitOpen` (naming the target,
the failures and when it will probe again).  After ``reset_after_s`` it is
*half-open*: one probe call is let through; a success closes the circuit, a
failure opens it again for another ``reset_after_s``.

State lives on the breaker object, so one breaker shared by several workflows or
runs protects them all (the breaker instance is the sharing domain).

Which failures count (:func:`counts_against`): provider errors, step timeouts and
agent exceptions raised by the agent itself.  Not counted: contract violations
(an input that breaks a contract is its producer's fault; an output that does is
repaired or attributed, not a health problem), guards that tripped (budgets,
loops, capability checks, other open circuits) and failures of a delegate that
surface through the agent that called it (they count against the delegate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from orchestrion.errors import (
    AgentFailed,
    CircuitOpen,
    ContractViolation,
    GuardTripped,
    MalformedOutput,
    OutputTooLarge,
    ProviderError,
    RunError,
    ScriptExhausted,
    StepTimeout,
)

if TYPE_CHECKING:
    from orchestrion.runtime.context import RunContext

Scope = Literal["agent", "provider"]
State = Literal["closed", "open", "half-open"]


def counts_against(error: RunError, agent: str, scope: Scope = "agent") -> bool:
    """Whether ``error``, raised while ``agent`` ran, says ``agent`` (or its provider) is unwell."""
    if error.agent not in (None, agent):
        return False  # a delegate failed: it is counted at its own step
    if isinstance(error, GuardTripped | ContractViolation):
        return False
    if scope == "provider":
        # The provider answered; the model misbehaving is not an outage of the provider.
        if isinstance(error, MalformedOutput | OutputTooLarge | ScriptExhausted):
            return False
        if isinstance(error, AgentFailed):
            return bool(getattr(error, "retryable", False))  # connection-level faults only
    return isinstance(error, ProviderError | StepTimeout | AgentFailed)


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probe: str | None = None  # run id of the call let through while half-open
    probe_at: float = 0.0
    last_error: str = ""


class CircuitBreaker:
    """A StepGuard: open after ``failures`` consecutive failures, probe after ``reset_after_s``.

    ``scope="agent"`` keeps one circuit per agent name; ``scope="provider"`` one per
    provider (its type and model), shared by every agent on it; agents without a
    provider are not covered then.  ``counts`` overrides which errors count;
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        failures: int = 5,
        reset_after_s: float = 30.0,
        scope: Scope = "agent",
        counts: Callable[[RunError, str, Scope], bool] = counts_against,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("CircuitBreaker(failures=...) must be >= 1")
        if reset_after_s <= 0:
            raise ValueError("CircuitBreaker(reset_after_s=...) must be > 0")
        if scope not in ("agent", "provider"):
            raise ValueError("CircuitBreaker(scope=...) must be 'agent' or 'provider'")
        self.threshold = failures
        self.reset_after_s = reset_after_s
        self.scope: Scope = scope
        self.counts = counts
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failures={self.threshold}, reset_after_s={self.reset_after_s}, "
            f"scope={self.scope!r})"
        )

    # ------------------------------------------------------------------ inspection

    def state(self, target: str) -> State:
        """``closed``, ``open`` or ``half-open`` for an agent name or provider id."""
        c = self._circuits.get(target)
        if c is None or c.opened_at is None:
            return "closed"
        return "open" if self.clock() - c.opened_at < self.reset_after_s else "half-open"

    def failures(self, target: str) -> int:
        """Consecutive failures counted for ``target``."""
        c = self._circuits.get(target)
        return 0 if c is None else c.failures

    def reset(self, target: str | None = None) -> None:
        """Close one circuit (or all): after a fix is deployed, say."""
        if target is None:
            self._circuits.clear()
        else:
            self._circuits.pop(target, None)

    # ------------------------------------------------------------------ StepGuard hooks

    def before(self, ctx: RunContext, agent: str, key: str, payload: Any) -> None:
        """Refuse the call while the circuit is open; let one probe through when half-open."""
        target = self._target(ctx, agent)
        c = None if target is None else self._circuits.get(target)
        if c is None or c.opened_at is None or target is None:
            return
        now = self.clock()
        wait = c.opened_at + self.reset_after_s - now
        if wait <= 0 and (c.probe is None or now - c.probe_at >= self.reset_after_s):
            c.probe, c.probe_at = ctx.run_id, now  # half-open: this call is the probe
            return
        if wait <= 0:
            wait = c.probe_at + self.reset_after_s - now  # a probe is in flight
        raise CircuitOpen(
            target,
            scope=self.scope,
            failures=c.failures,
            threshold=self.threshold,
            retry_in_s=max(0.0, wait),
            last_error=c.last_error,
            step=key,
            agent=agent,
        )

    def failed(self, ctx: RunContext, agent: str, key: str, error: RunError) -> None:
        """Count a failure; open the circuit at the threshold or when the probe failed."""
        target = self._target(ctx, agent)
        if target is None or not self.counts(error, agent, self.scope):
            return
        c = self._circuits.setdefault(target, _Circuit())
        c.failures += 1
        c.last_error = f"{type(error).__name__}: {error.message}"[:200]
        probing = c.probe is not None
        if probing or (c.opened_at is None and c.failures >= self.threshold):
            c.opened_at, c.probe = self.clock(), None

    def succeeded(self, ctx: RunContext, agent: str, key: str, payload: Any, output: Any) -> None:
        """A success closes the circuit (a probe passed, or a call begun before it opened)."""
        target = self._target(ctx, agent)
        if target is not None and target in self._circuits:
            del self._circuits[target]

    def finished(self, ctx: RunContext) -> None:
        """A run that ended while holding the probe (cancelled, paused) releases it."""
        for c in self._circuits.values():
            if c.probe == ctx.run_id:
                c.probe = None

    # ------------------------------------------------------------------ helpers

    def _target(self, ctx: RunContext, agent: str) -> str | None:
        if self.scope == "agent":
            return agent
        provider = getattr(ctx.registry.agent(agent), "provider", None)
        model = getattr(provider, "model", None)
        return None if model is None else f"{type(provider).__name__}:{model}"
