"""StepRecord: what the runtime keeps about each agent or tool invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrion.cost.usage import ZERO, Usage


@dataclass(slots=True, unsafe_hash=True)
class StepRecord:
    """One step of a run: its key, target, outcome, payloads, usage and provenance.

    A value: immutable by convention, never modified once recorded (derive changed
    copies with ``dataclasses.replace``).  Not ``frozen=True`` because one is built
    per step and a frozen dataclass's ``__init__`` costs about three times a plain
    one; ``unsafe_hash=True`` keeps the hashing behaviour of the frozen class.
    """

    key: str
    agent: str
    status: str  # "succeeded" | "failed" | "replayed"
    attempts: int
    input: Any
    output: Any = None
    usage: Usage = ZERO
    started_at: float = 0.0
    duration_s: float = 0.0
    target: str = "agent"
    error: str | None = None
    error_type: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "replayed")
