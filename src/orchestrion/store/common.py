"""CommonStore: the store methods whose rules do not depend on where rows live.

``update_run`` and ``decide_approval`` check their arguments, pick the time and
apply the approval rules (:mod:`~orchestrion.store.approvals`) the same way in every
store; a store only supplies the step that reads and writes its own rows.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from orchestrion.store import approvals
from orchestrion.store.base import UNSET, Store, _Unset, check_only_if, run_update
from orchestrion.store.errors import ApprovalExpired
from orchestrion.store.records import JSON, ApprovalRecord, RunRecord, RunStatus, utcnow

Verdict = Callable[[ApprovalRecord], tuple[ApprovalRecord, ApprovalExpired | None]]
"""What a decision turns a loaded request into; see :func:`approvals.decide`."""


class CommonStore(Store):
    """A :class:`Store` with the storage-independent methods written once."""

    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        output: JSON | _Unset = UNSET,
        error: dict[str, JSON] | _Unset | None = UNSET,
        usage: dict[str, JSON] | _Unset = UNSET,
        now: datetime | None = None,
        only_if: Collection[RunStatus] | None = None,
    ) -> RunRecord:
        fields = run_update(status, output, error, usage)
        expected = check_only_if(only_if)
        return await self._save_run_update(run_id, status, fields, now or utcnow(), expected)

    async def decide_approval(
        self,
        request_id: str,
        *,
        decision: str,
        by: str,
        action_hash: str,
        edited_action: JSON = None,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> ApprovalRecord:
        def verdict(current: ApprovalRecord) -> tuple[ApprovalRecord, ApprovalExpired | None]:
            return approvals.decide(
                current,
                decision=decision,
                by=by,
                action_hash=action_hash,
                edited_action=edited_action,
                reason=reason,
                now=now or utcnow(),
            )

        decided, error = await self._judge_approval(request_id, verdict)
        if error is not None:
            raise error  # after the store has journaled the expiry
        return decided

    @abc.abstractmethod
    async def _save_run_update(
        self,
        run_id: str,
        status: RunStatus,
        fields: dict[str, Any],
        now: datetime,
        only_if: tuple[str, ...] | None,
    ) -> RunRecord:
        """Write a checked update (``fields`` by record field name); return the stored run.

        With ``only_if`` (checked, non-empty or empty tuple), write only if the run's
        status is among them, atomically; the run is returned either way.
        """

    @abc.abstractmethod
    async def _judge_approval(
        self, request_id: str, verdict: Verdict
    ) -> tuple[ApprovalRecord, ApprovalExpired | None]:
        """Under the store's write lock: load the request, apply ``verdict``, durably save it.

        Returns what was saved and the error ``verdict`` gave (raised by the caller).
        """
