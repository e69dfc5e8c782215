"""The rules of an approval request, shared by every store.

A store loads the request under its write lock, asks :func:`decide` what the
decision turns it into, and persists that only if the request is still pending.
So every store enforces the same contract: single use, bound to the action by
hash, and expired once its deadline has passed.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from orchestrion.store.codec import action_hash as hash_action
from orchestrion.store.errors import (
    ApprovalExpired,
    ApprovalHashMismatch,
    ApprovalNotPending,
    InvalidDecision,
    InvalidRecord,
)
from orchestrion.store.records import DECISIONS, ApprovalRecord


def check_new(approval: ApprovalRecord) -> None:
    """Refuse to journal a request that is not fresh or whose hash does not bind its action."""
    if approval.status != "pending" or approval.decided_at or approval.decided_by:
        raise InvalidRecord(
            f"approval request {approval.request_id!r} is created as {approval.status!r}",
            hint="create requests as pending and record the verdict with decide_approval()",
        )
    expected = hash_action(approval.action)
    if approval.action_hash != expected:
        raise ApprovalHashMismatch(approval.request_id, expected=expected, got=approval.action_hash)


def decide(
    current: ApprovalRecord,
    *,
    decision: str,
    by: str,
    action_hash: str,
    edited_action: Any,
    reason: str | None,
    now: datetime,
) -> tuple[ApprovalRecord, ApprovalExpired | None]:
    """What ``decision`` turns ``current`` into.

    Returns the record to persist and, when the request has expired, the error to
    raise *after* persisting it (so the expiry is journaled).  Raises without
    changing anything when the request was already decided, the decision was made
    on another action, or the decision itself is malformed.
    """
    _check_verdict(current.request_id, decision, by, edited_action)
    if current.status != "pending":
        raise ApprovalNotPending(current.request_id, current.status, by=current.decided_by)
    if current.expires_at is not None and now >= current.expires_at:
        expired = dataclasses.replace(current, status="expired", decided_at=now)
        return expired, ApprovalExpired(current.request_id, current.expires_at)
    if action_hash != current.action_hash:
        raise ApprovalHashMismatch(
            current.request_id, expected=current.action_hash, got=action_hash
        )
    decided = dataclasses.replace(
        current,
        status=decision,  # type: ignore[arg-type]  # checked against DECISIONS above
        decided_at=now,
        decided_by=by,
        edited_action=edited_action,
        reason=reason,
    )
    return decided, None


def _check_verdict(request_id: str, decision: str, by: str, edited_action: Any) -> None:
    if decision not in DECISIONS:
        raise InvalidDecision(
            f"decision {decision!r} on approval request {request_id!r} is not one of "
            f"{sorted(DECISIONS)}",
            hint="approve, reject or edit; the request is still pending",
        )
    if not by:
        raise InvalidDecision(
            f"decision on approval request {request_id!r} names no decider",
            hint="pass by=<who decided> so the journal can say who made the decision",
        )
    if (decision == "edited") != (edited_action is not None):
        raise InvalidDecision(
            f"decision {decision!r} on approval request {request_id!r} "
            + ("needs an edited_action" if decision == "edited" else "cannot carry an edit"),
            hint="pass edited_action only with decision='edited'; the request is still pending",
        )
