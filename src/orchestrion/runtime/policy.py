"""Policy: the limits a workflow runs under, declared once, enforced by the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrion.guards.budget import Budget
from orchestrion.guards.retry import Retry
from orchestrion.hitl.levels import AUTONOMOUS, Hitl
from orchestrion.runtime.hooks import StepGuard


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Run-wide defaults; agents may override ``step_timeout_s``, ``retry`` and ``max_repairs``.

    Defaults are tight and explainable: a step gets 120 s, a run 15 minutes and
    at most 500 agent/tool calls; transient faults are retried twice; a contract
    violation gets one repair attempt with the error fed back to its producer.
    """

    budget: Budget = field(default_factory=lambda: Budget(calls=500))
    step_timeout_s: float | None = 120.0
    run_timeout_s: float | None = 900.0
    retry: Retry = field(default_factory=Retry)
    max_repairs: int = 1
    signing_key: bytes | None = None
    guards: tuple[StepGuard, ...] = ()
    hitl: Hitl = AUTONOMOUS

    def __post_init__(self) -> None:
        if self.max_repairs < 0:
            raise ValueError("Policy.max_repairs must be >= 0")
        for name in ("step_timeout_s", "run_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Policy.{name} must be > 0 or None")
