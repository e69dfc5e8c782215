"""RunResult: what a run returns, succeeded or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrion.cost.usage import Usage
from orchestrion.errors import RunError
from orchestrion.runtime.events import Event
from orchestrion.runtime.records import StepRecord

Status = Literal["running", "succeeded", "failed", "paused", "cancelled"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one run.

    On failure ``error`` is a typed :class:`RunError` naming the step, the agent and
    the cause; the outputs of the steps that did finish stay in :attr:`partial`.
    A paused run lists its open human requests in ``pending``.
    """

    run_id: str
    trace_id: str
    workflow: str
    status: Status
    output: Any = None
    error: RunError | None = None
    usage: Usage = Usage()
    usage_by_agent: dict[str, Usage] = field(default_factory=dict)
    calls_by_agent: dict[str, int] = field(default_factory=dict)
    steps: tuple[StepRecord, ...] = ()
    events: tuple[Event, ...] = ()
    pending: tuple[dict[str, Any], ...] = ()
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def cost_usd(self) -> float:
        return self.usage.usd

    @property
    def calls(self) -> int:
        return sum(self.calls_by_agent.values())

    @property
    def partial(self) -> dict[str, Any]:
        """Outputs of every step that finished, by step key (kept when the run fails)."""
        return {s.key: s.output for s in self.steps if s.ok}

    def step(self, key: str) -> StepRecord:
        """The last record of step ``key``."""
        for rec in reversed(self.steps):
            if rec.key == key:
                return rec
        raise KeyError(f"no step {key!r} in run {self.run_id}; steps: "
                       f"{', '.join(s.key for s in self.steps)}")

    def events_of(self, kind: str) -> list[Event]:
        """Events of one kind, e.g. ``"decision"`` or ``"guard.tripped"``."""
        return [e for e in self.events if e.kind == kind]

    def unwrap(self) -> Any:
        """The output, or raise the run's error (a paused run raises RuntimeError)."""
        if self.status == "succeeded":
            return self.output
        if self.error is not None:
            raise self.error
        raise RuntimeError(f"run {self.run_id} is {self.status}, it has no output yet")
