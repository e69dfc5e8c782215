"""Typed journal errors: every way a store can refuse, each saying what to do next.

All of them are :class:`~orchestrion.errors.StoreError`, so ``except StoreError``
catches any journal problem.  None of them loses data: a refused write changes
nothing (ApprovalExpired alone records the expiry it found), and a refused read
leaves the journal as it was.

::

    StoreError
    ├── StoreUnavailable         the journal cannot be opened or reached
    ├── SchemaTooNew             written by a newer orchestrion
    ├── CorruptRecord            a row no longer decodes
    ├── UnknownRun
    ├── UnknownApproval
    ├── DuplicateRecord          a run or approval id is already journaled
    ├── PayloadNotJSON           a payload cannot be journaled as JSON
    ├── EventSequenceError       an event batch would leave a gap or a duplicate
    ├── ApprovalNotPending       already decided (single use) or expired
    │   └── ApprovalExpired      decided after its expiry; now marked expired
    ├── ApprovalHashMismatch     the decision was made on another action
    ├── InvalidRecord            a record that cannot be journaled as given
    └── InvalidDecision          a decision that cannot be applied as given
"""

from __future__ import annotations

from datetime import datetime

from orchestrion.errors import StoreError


class StoreUnavailable(StoreError):
    """The journal cannot be opened or reached (bad path, server down, not open)."""


class SchemaTooNew(StoreError):
    """The journal was written by a newer orchestrion; it is left untouched."""

    def __init__(self, found: int, supported: int, *, where: str) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"journal {where} has schema version {found}, this orchestrion supports "
            f"up to {supported}",
            hint="upgrade orchestrion to a release that knows this schema, or point the "
            "store at another journal; nothing was changed",
        )


class CorruptRecord(StoreError):
    """A journal row no longer decodes (invalid JSON, unknown status, bad timestamp)."""

    def __init__(self, table: str, key: str, column: str, detail: str) -> None:
        self.table = table
        self.key = key
        self.column = column
        self.detail = detail
        super().__init__(
            f"corrupt journal row {table}[{key}]: column {column!r} {detail}",
            hint="restore that row from a backup or repair it by hand; the row was not "
            "changed and other rows are unaffected",
        )


class UnknownRun(StoreError):
    """No run with this id is journaled."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"no run {run_id!r} in the journal",
            hint="check the run id (list runs to see the known ones) and that the store "
            "points at the journal the run was started with",
        )


class UnknownApproval(StoreError):
    """No approval request with this id is journaled."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"no approval request {request_id!r} in the journal",
            hint="list the run's pending approvals to get a current request id",
        )


class DuplicateRecord(StoreError):
    """A run or approval with this id is already journaled; nothing was overwritten."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(
            f"{kind} {key!r} is already journaled",
            hint=f"use a fresh {kind} id, or read the existing {kind} instead of creating it",
        )


class PayloadNotJSON(StoreError):
    """A payload handed to the store is not a JSON value; nothing was written."""

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        super().__init__(
            f"{where} cannot be journaled as JSON: {detail}",
            hint="hand the store JSON values only; serialize Pydantic models with "
            "model.model_dump(mode='json') first",
        )


class EventSequenceError(StoreError):
    """An event batch does not continue the run's log exactly; nothing was written."""

    def __init__(self, run_id: str, *, expected: int, got: int) -> None:
        self.run_id = run_id
        self.expected = expected
        self.got = got
        kind = "duplicate" if got < expected else "gap"
        super().__init__(
            f"event seq {got} for run {run_id!r} would leave a {kind}: the next seq is {expected}",
            hint="number events from last_event_seq(run_id) + 1 and let a single writer "
            "append each run's events",
        )


class ApprovalNotPending(StoreError):
    """The approval request was already decided (requests are single use) or expired."""

    def __init__(
        self,
        request_id: str,
        status: str,
        *,
        by: str | None = None,
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.status = status
        who = f" by {by!r}" if by else ""
        super().__init__(
            message or f"approval request {request_id!r} is already {status}{who}",
            hint=hint
            or "a request can be decided once; read the run's pending approvals for a "
            "current request",
        )


class ApprovalExpired(ApprovalNotPending):
    """A decision arrived after the request's expiry; the request is now marked expired."""

    def __init__(self, request_id: str, expires_at: datetime) -> None:
        self.expires_at = expires_at
        super().__init__(
            request_id,
            "expired",
            message=f"approval request {request_id!r} expired at {expires_at.isoformat()}",
            hint="resume the run to ask again, or give the request a longer expiry",
        )


class ApprovalHashMismatch(StoreError):
    """The decision was made on an action other than the one journaled with the request."""

    def __init__(self, request_id: str, *, expected: str, got: str) -> None:
        self.request_id = request_id
        self.expected = expected
        self.got = got
        super().__init__(
            f"approval request {request_id!r} binds action {expected}, the decision was "
            f"made on {got}",
            hint="reload the request and decide on the action it shows; the request is "
            "still pending",
        )


class InvalidRecord(StoreError):
    """A record that cannot be journaled as given (wrong run id, not a fresh request)."""


class InvalidDecision(StoreError):
    """A decision that cannot be applied as given (unknown verdict, missing edit)."""
