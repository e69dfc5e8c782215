"""The journal's records: runs, steps, events and approval requests.

Records are frozen value objects that every store reads and writes alike.  Their
payloads (``input``, ``output``, ``data``, ``action``, ...) are JSON values: the
runtime serializes Pydantic models before it hands them over, so what comes back
from a store compares equal to what went in.  Timestamps are timezone-aware; stores
return them in UTC.  Fields are keyword-only so call sites stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

RunStatus = Literal["running", "paused", "succeeded", "failed", "cancelled"]
StepStatus = Literal["started", "succeeded", "failed"]
ApprovalStatus = Literal["pending", "approved", "rejected", "edited", "expired"]
Decision = Literal["approved", "rejected", "edited"]

RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
STEP_STATUSES: frozenset[str] = frozenset(get_args(StepStatus))
APPROVAL_STATUSES: frozenset[str] = frozenset(get_args(ApprovalStatus))
DECISIONS: frozenset[str] = frozenset(get_args(Decision))

JSON = Any
"""A JSON value: ``None``, bool, int, float, str, list of JSON or dict of str to JSON."""


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _check(kind: str, status: str, allowed: frozenset[str], *stamps: datetime | None) -> None:
    # Cheap invariants only: these run for every record a store builds from a row.
    if status not in allowed:
        raise ValueError(f"{kind} status {status!r} is not one of {sorted(allowed)}")
    for stamp in stamps:
        if stamp is not None and stamp.tzinfo is None:
            raise ValueError(f"{kind} timestamps must be timezone-aware, got {stamp!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One execution of a workflow for one input.

    ``definition_hash`` pins the workflow definition the run started with, so a
    resume can refuse to replay a journal against a changed flow.
    """

    run_id: str
    workflow: str
    definition_hash: str
    input: JSON
    trace_id: str
    status: RunStatus = "running"
    output: JSON = None
    error: dict[str, JSON] | None = None
    usage: dict[str, JSON] = field(default_factory=dict)
    parent_run_id: str | None = None
    metadata: dict[str, JSON] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        _check("run", self.status, RUN_STATUSES, self.created_at, self.updated_at)

    @property
    def finished(self) -> bool:
        """True once the run succeeded, failed or was cancelled."""
        return self.status in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """One attempt of one agent or tool call, keyed by its deterministic step key.

    A step is usually recorded twice: ``started`` before the call and ``succeeded``
    or ``failed`` after it; both writes land on the same ``(run_id, key, attempt)``.
    """

    run_id: str
    key: str
    attempt: int
    agent: str
    input: JSON
    status: StepStatus = "started"
    output: JSON = None
    usage: dict[str, JSON] = field(default_factory=dict)
    cost_usd: float = 0.0
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    provenance: dict[str, JSON] = field(default_factory=dict)
    error: dict[str, JSON] | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        _check("step", self.status, STEP_STATUSES, self.started_at, self.finished_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """One entry of a run's event log; ``seq`` counts 1, 2, 3, ... without gaps."""

    run_id: str
    seq: int
    kind: str
    data: dict[str, JSON] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"event timestamps must be timezone-aware, got {self.at!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRecord:
    """A request for a human decision on one exact proposed action.

    ``action_hash`` (see :func:`orchestrion.store.codec.action_hash`) binds the
    decision to the action the human saw; a request is decided at most once.
    ``decided_at`` is when it was decided, or found expired (then ``decided_by``
    stays ``None``).
    """

    request_id: str
    run_id: str
    step_key: str
    action: JSON
    action_hash: str
    status: ApprovalStatus = "pending"
    created_at: datetime = field(default_factory=utcnow)
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    edited_action: JSON = None
    reason: str | None = None

    def __post_init__(self) -> None:
        _check(
            "approval",
            self.status,
            APPROVAL_STATUSES,
            self.created_at,
            self.expires_at,
            self.decided_at,
        )

    def is_expired(self, now: datetime) -> bool:
        """True if the request has an expiry and ``now`` is at or past it."""
        return self.expires_at is not None and now >= self.expires_at
