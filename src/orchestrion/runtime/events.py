"""Typed events: the record of everything that happened in a run.

Events are small slots dataclasses with a per-run gapless ``seq``.  The run
context emits them; subscribers (the journal, a tracer, the CLI) receive them in
order.  ``event_to_dict`` gives the JSON form the store persists.

Events are values: immutable by convention, never modified after they are emitted.
They are not ``frozen=True`` because a run emits two per step and a frozen
dataclass's ``__init__`` costs about three times a plain one; ``unsafe_hash=True``
keeps them hashable and comparable by value, as frozen ones were.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(slots=True, unsafe_hash=True)
class Event:
    """Base of all events: its sequence number in the run and its time (epoch seconds)."""

    kind: ClassVar[str] = "event"
    seq: int
    at: float


@dataclass(slots=True, unsafe_hash=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run.started"
    run_id: str
    workflow: str
    trace_id: str


@dataclass(slots=True, unsafe_hash=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run.finished"
    status: str
    error: str | None = None
    step: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step.started"
    step: str
    agent: str
    attempt: int
    target: str = "agent"  # "agent" or "tool"


@dataclass(slots=True, unsafe_hash=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step.finished"
    step: str
    agent: str
    attempt: int
    duration_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    target: str = "agent"


@dataclass(slots=True, unsafe_hash=True)
class StepFailed(Event):
    kind: ClassVar[str] = "step.failed"
    step: str
    agent: str
    attempt: int
    error_type: str
    message: str
    will_retry: bool = False
    target: str = "agent"


@dataclass(slots=True, unsafe_hash=True)
class StepReplayed(Event):
    """A completed step was taken from the journal: no call, no cost."""

    kind: ClassVar[str] = "step.replayed"
    step: str
    agent: str


@dataclass(slots=True, unsafe_hash=True)
class ContractViolated(Event):
    kind: ClassVar[str] = "contract.violated"
    step: str
    agent: str
    direction: str
    errors: tuple[str, ...]
    repairing: bool


@dataclass(slots=True, unsafe_hash=True)
class Decision(Event):
    """A pattern chose: a route branch, a plan, a handoff target, a winner."""

    kind: ClassVar[str] = "decision"
    step: str
    pattern: str
    chosen: tuple[str, ...]
    rejected: tuple[str, ...] = ()
    reason: str = ""


@dataclass(slots=True, unsafe_hash=True)
class Disagreement(Event):
    """Parallel branches produced different answers; ``values`` maps source step to value."""

    kind: ClassVar[str] = "disagreement"
    step: str
    field: str
    values: tuple[tuple[str, str], ...]
    resolution: str


@dataclass(slots=True, unsafe_hash=True)
class GuardTrippedEvent(Event):
    kind: ClassVar[str] = "guard.tripped"
    step: str
    guard: str
    message: str
    limit: Any = None
    measured: Any = None


@dataclass(slots=True, unsafe_hash=True)
class ApprovalRequested(Event):
    kind: ClassVar[str] = "approval.requested"
    step: str
    request_id: str
    prompt: str


@dataclass(slots=True, unsafe_hash=True)
class ApprovalDecided(Event):
    kind: ClassVar[str] = "approval.decided"
    step: str
    request_id: str
    decision: str
    by: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class Alert(Event):
    """HITL level 3: something a supervisor should look at; the run goes on."""

    kind: ClassVar[str] = "alert"
    step: str
    reason: str
    suppressed: int = 0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        RunFinished,
        StepStarted,
        StepFinished,
        StepFailed,
        StepReplayed,
        ContractViolated,
        Decision,
        Disagreement,
        GuardTrippedEvent,
        ApprovalRequested,
        ApprovalDecided,
        Alert,
    )
}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def event_to_dict(event: Event) -> dict[str, Any]:
    """JSON-able dict of an event, with its ``kind``."""
    data: dict[str, Any] = {"kind": event.kind}
    for name in _field_names(type(event)):
        value = getattr(event, name)
        data[name] = list(value) if isinstance(value, tuple) else value
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`."""
    cls = EVENT_TYPES[data["kind"]]
    kwargs = {}
    for name in _field_names(cls):
        value = data.get(name)
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[name] = value
    return cls(**kwargs)  # type: ignore[arg-type]
