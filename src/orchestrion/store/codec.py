"""How records become rows and rows become records, the same way in every store.

Each table has one column order (``*_COLUMNS``).  ``*_row`` encodes a record into
a tuple in that order (payloads as compact JSON text, timestamps through a
:class:`TimeCodec`); ``*_from_row`` decodes it back, turning any damage into a
:class:`~orchestrion.store.errors.CorruptRecord` that names the row and column.
The memory store keeps these very tuples, so all stores agree on what survives a
round trip: JSON values, with tuples read back as lists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrion.store.errors import CorruptRecord, PayloadNotJSON
from orchestrion.store.records import ApprovalRecord, EventRecord, RunRecord, StepRecord

RUN_COLUMNS = (
    "run_id", "workflow", "definition_hash", "status", "input", "output", "error",
    "trace_id", "usage", "parent_run_id", "metadata", "created_at", "updated_at",
)  # fmt: skip
STEP_COLUMNS = (
    "run_id", "step_key", "attempt", "status", "agent", "input", "output", "usage",
    "cost_usd", "started_at", "finished_at", "provenance", "error", "idempotency_key",
)  # fmt: skip
EVENT_COLUMNS = ("run_id", "seq", "kind", "at", "data")
APPROVAL_COLUMNS = (
    "request_id", "run_id", "step_key", "action", "action_hash", "status", "created_at",
    "expires_at", "decided_at", "decided_by", "edited_action", "reason",
)  # fmt: skip

# One encoder, built once: json.dumps() with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_CANONICAL = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
)


def dump_json(value: Any, where: str) -> str:
    """Compact JSON text for ``value``; :class:`PayloadNotJSON` names ``where`` if it is not."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:  # unknown type, NaN/inf, circular reference
        raise PayloadNotJSON(where, str(exc)) from None


def action_hash(action: Any) -> str:
    """The hash that binds an approval decision to one exact action: sha256 of canonical JSON.

    Key order does not matter; any change of a value does.
    """
    try:
        text = _CANONICAL.encode(action)
    except (TypeError, ValueError) as exc:
        raise PayloadNotJSON("approval action", str(exc)) from None
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class TimeCodec(Protocol):
    """How a store's driver represents timestamps."""

    def dump(self, value: datetime) -> Any: ...

    def load(self, value: Any) -> datetime: ...


class IsoTime:
    """Timestamps as fixed-width ISO-8601 text in UTC, which sorts chronologically."""

    def dump(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def load(self, value: Any) -> datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("has no time zone")
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


class NativeTime:
    """Timestamps handed to and from a driver that knows ``timestamptz`` (psycopg)."""

    def dump(self, value: datetime) -> datetime:
        return value

    def load(self, value: Any) -> datetime:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"is not an aware timestamp: {value!r}")
        return value.astimezone(UTC)


ISO_TIME = IsoTime()
NATIVE_TIME = NativeTime()


class _Decoder:
    """Decodes the cells of one row; any failure becomes a CorruptRecord naming the cell."""

    __slots__ = ("key", "table", "time")

    def __init__(self, table: str, key: str, time: TimeCodec) -> None:
        self.table = table
        self.key = key
        self.time = time

    def corrupt(self, column: str, detail: str) -> CorruptRecord:
        return CorruptRecord(self.table, self.key, column, detail)

    def json(self, column: str, text: Any) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise self.corrupt(column, f"is not valid JSON ({exc})") from None

    def obj(self, column: str, text: Any, *, nullable: bool = False) -> Any:
        value = self.json(column, text)
        if isinstance(value, dict) or (nullable and value is None):
            return value
        raise self.corrupt(column, f"should hold a JSON object, holds {type(value).__name__}")

    def ts(self, column: str, value: Any) -> datetime:
        try:
            return self.time.load(value)
        except (TypeError, ValueError) as exc:
            raise self.corrupt(column, f"is not a timestamp ({exc})") from None

    def ts_opt(self, column: str, value: Any) -> datetime | None:
        return None if value is None else self.ts(column, value)


def _build(dec: _Decoder, cls: type[Any], **fields: Any) -> Any:
    # The record constructors only reject an unknown status; name that column.
    try:
        return cls(**fields)
    except ValueError as exc:
        raise dec.corrupt("status", str(exc)) from None


def _opt(time: TimeCodec, value: datetime | None) -> Any:
    return None if value is None else time.dump(value)


# ----------------------------------------------------------------------------- runs


def run_row(run: RunRecord, time: TimeCodec) -> tuple[Any, ...]:
    """Encode a run in :data:`RUN_COLUMNS` order."""
    where = f"run {run.run_id!r}"
    return (
        run.run_id, run.workflow, run.definition_hash, run.status,
        dump_json(run.input, f"{where} input"), dump_json(run.output, f"{where} output"),
        dump_json(run.error, f"{where} error"), run.trace_id,
        dump_json(run.usage, f"{where} usage"), run.parent_run_id,
        dump_json(run.metadata, f"{where} metadata"),
        time.dump(run.created_at), time.dump(run.updated_at),
    )  # fmt: skip


def run_from_row(row: Sequence[Any], time: TimeCodec) -> RunRecord:
    """Decode a row in :data:`RUN_COLUMNS` order."""
    d = _Decoder("runs", str(row[0]), time)
    return _build(
        d, RunRecord,
        run_id=row[0], workflow=row[1], definition_hash=row[2], status=row[3],
        input=d.json("input", row[4]), output=d.json("output", row[5]),
        error=d.obj("error", row[6], nullable=True), trace_id=row[7],
        usage=d.obj("usage", row[8]), parent_run_id=row[9],
        metadata=d.obj("metadata", row[10]),
        created_at=d.ts("created_at", row[11]), updated_at=d.ts("updated_at", row[12]),
    )  # fmt: skip


def run_changes(
    run_id: str, status: str, fields: Mapping[str, Any], now: datetime, time: TimeCodec
) -> dict[str, Any]:
    """Encode an ``update_run`` by column: status, ``updated_at`` and the given payloads."""
    changes: dict[str, Any] = {"status": status, "updated_at": time.dump(now)}
    for name, value in fields.items():
        changes[name] = dump_json(value, f"run {run_id!r} {name}")
    return changes


# ---------------------------------------------------------------------------- steps


def step_row(step: StepRecord, time: TimeCodec) -> tuple[Any, ...]:
    """Encode a step in :data:`STEP_COLUMNS` order."""
    where = f"step {step.key!r} of run {step.run_id!r}"
    return (
        step.run_id, step.key, step.attempt, step.status, step.agent,
        dump_json(step.input, f"{where} input"), dump_json(step.output, f"{where} output"),
        dump_json(step.usage, f"{where} usage"), float(step.cost_usd),
        time.dump(step.started_at), _opt(time, step.finished_at),
        dump_json(step.provenance, f"{where} provenance"),
        dump_json(step.error, f"{where} error"), step.idempotency_key,
    )  # fmt: skip


def step_from_row(row: Sequence[Any], time: TimeCodec) -> StepRecord:
    """Decode a row in :data:`STEP_COLUMNS` order."""
    d = _Decoder("steps", f"{row[0]}/{row[1]}#{row[2]}", time)
    return _build(
        d, StepRecord,
        run_id=row[0], key=row[1], attempt=row[2], status=row[3], agent=row[4],
        input=d.json("input", row[5]), output=d.json("output", row[6]),
        usage=d.obj("usage", row[7]), cost_usd=row[8],
        started_at=d.ts("started_at", row[9]), finished_at=d.ts_opt("finished_at", row[10]),
        provenance=d.obj("provenance", row[11]), error=d.obj("error", row[12], nullable=True),
        idempotency_key=row[13],
    )  # fmt: skip


# --------------------------------------------------------------------------- events


def event_row(event: EventRecord, time: TimeCodec) -> tuple[Any, ...]:
    """Encode an event in :data:`EVENT_COLUMNS` order."""
    where = f"event {event.seq} ({event.kind}) of run {event.run_id!r}"
    return (event.run_id, event.seq, event.kind, time.dump(event.at), dump_json(event.data, where))


def event_from_row(row: Sequence[Any], time: TimeCodec) -> EventRecord:
    """Decode a row in :data:`EVENT_COLUMNS` order."""
    d = _Decoder("events", f"{row[0]}#{row[1]}", time)
    return EventRecord(
        run_id=row[0], seq=row[1], kind=row[2], at=d.ts("at", row[3]), data=d.obj("data", row[4])
    )


# ------------------------------------------------------------------------ approvals


def approval_row(approval: ApprovalRecord, time: TimeCodec) -> tuple[Any, ...]:
    """Encode an approval request in :data:`APPROVAL_COLUMNS` order."""
    where = f"approval {approval.request_id!r}"
    return (
        approval.request_id, approval.run_id, approval.step_key,
        dump_json(approval.action, f"{where} action"), approval.action_hash, approval.status,
        time.dump(approval.created_at), _opt(time, approval.expires_at),
        _opt(time, approval.decided_at), approval.decided_by,
        dump_json(approval.edited_action, f"{where} edited action"), approval.reason,
    )  # fmt: skip


def approval_from_row(row: Sequence[Any], time: TimeCodec) -> ApprovalRecord:
    """Decode a row in :data:`APPROVAL_COLUMNS` order."""
    d = _Decoder("approvals", str(row[0]), time)
    return _build(
        d, ApprovalRecord,
        request_id=row[0], run_id=row[1], step_key=row[2], action=d.json("action", row[3]),
        action_hash=row[4], status=row[5], created_at=d.ts("created_at", row[6]),
        expires_at=d.ts_opt("expires_at", row[7]), decided_at=d.ts_opt("decided_at", row[8]),
        decided_by=row[9], edited_action=d.json("edited_action", row[10]), reason=row[11],
    )  # fmt: skip
