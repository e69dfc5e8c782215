"""Policy: the limits a workflow runs under, declared once, enforced by the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrion.guards.breaker import CircuitBreaker
from orchestrion.guards.budget import Budget
from orchestrion.guards.progress import ProgressGuard
from orchestrion.guards.retry import Retry
from orchestrion.hitl.levels import AUTONOMOUS, Hitl
from orchestrion.runtime.hooks import StepGuard


def default_guards() -> tuple[StepGuard, ...]:
    """Progress detection and a per-agent circuit breaker (5 failures in a row; probe after 30 s).

    One breaker per Policy object: the workflows that share a Policy share its circuits,
    keyed by agent name.  Pass ``guards=()`` to run without guards.
    """
    return (ProgressGuard(), CircuitBreaker(failures=5, reset_after_s=30.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Run-wide defaults; agents may override ``step_timeout_s``, ``retry`` and ``max_repairs``.

    Defaults are tight and explainable: a step gets 120 s, a run 15 minutes and
    at most 500 agent/tool calls; transient faults are retried twice; a contract
    violation gets one repair attempt with the error fed back to its producer; a loop
    that stops making progress is stopped, and an agent that failed 5 times in a row is
    refused for 30 s (``guards``).
    """

    budget: Budget = field(default_factory=lambda: Budget(calls=500))
    step_timeout_s: float | None = 120.0
    run_timeout_s: float | None = 900.0
    retry: Retry = field(default_factory=Retry)
    max_repairs: int = 1
    signing_key: bytes | None = None
    guards: tuple[StepGuard, ...] = field(default_factory=default_guards)
    hitl: Hitl = AUTONOMOUS

    def __post_init__(self) -> None:
        if self.max_repairs < 0:
            raise ValueError("Policy.max_repairs must be >= 0")
        for name in ("step_timeout_s", "run_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Policy.{name} must be > 0 or None")
