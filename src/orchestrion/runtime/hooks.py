"""StepGuard: the protocol of guards the choke point consults around every agent step.

Guards are declared on the :class:`Policy` (``Policy(guards=(...))``) and may keep
state across runs (a circuit breaker) or per run (progress detection, keyed by
``ctx.run_id`` and dropped in :meth:`StepGuard.finished`).  A guard stops a run by
raising a :class:`~orchestrion.errors.GuardTripped` subclass; the choke point
records the trip as an event and attributes it to the step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrion.errors import RunError
    from orchestrion.runtime.context import RunContext


class StepGuard(Protocol):
    """Hooks around one agent step. Every method must be cheap: it runs on every step."""

    def before(self, ctx: RunContext, agent: str, key: str, payload: Any) -> None:
        """Before the first attempt; raise GuardTripped to refuse the call (breaker open)."""

    def failed(self, ctx: RunContext, agent: str, key: str, error: RunError) -> None:
        """After each failed attempt (retries included)."""

    def succeeded(self, ctx: RunContext, agent: str, key: str, payload: Any, output: Any) -> None:
        """After a valid output; raise GuardTripped to stop the run (no progress)."""

    def finished(self, ctx: RunContext) -> None:
        """When the run ends, whatever its status: drop per-run state."""

    # Optional hooks, called only on guards that define them (progress detection does):
    #   rejected(ctx, agent, key, raw_output, errors)  after each output that failed its
    #       contract (a planner repeating the plan it was told is wrong makes no progress)
    #   tool_used(ctx, agent, key, tool, args, output)  after each tool call
