"""StepRecord: what the runtime keeps about each agent or tool invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrion.cost.usage import Usage


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a run: its key, target, outcome, payloads, usage and provenance."""

    key: str
    agent: str
    status: str  # "succeeded" | "failed" | "replayed"
    attempts: int
    input: Any
    output: Any = None
    usage: Usage = Usage()
    started_at: float = 0.0
    duration_s: float = 0.0
    target: str = "agent"
    error: str | None = None
    error_type: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "replayed")
