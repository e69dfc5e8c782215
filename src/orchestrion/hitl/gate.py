"""HitlGate: approvals as data, enforced at the choke point.

Every request a human sees is an :class:`~orchestrion.store.ApprovalRecord` in the
journal: the exact proposed action (agent, step, input or output), bound by its
hash, single use, with an optional expiry.  The request id is derived from the run,
the step, the kind of request and the action's hash, so a resumed run finds the
decision made for *this* proposal; a changed proposal is a new request.

Decisions: ``approved`` (go on as proposed), ``edited`` (go on with the human's
version, validated against the contract like any producer's output) or
``rejected`` (the run fails with :class:`ApprovalRejected`, partial results kept).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from orchestrion.contracts.contract import dump_payload
from orchestrion.errors import AgentFailed, ApprovalRejected, ApprovalRequired, RunError
from orchestrion.hitl.levels import Hitl
from orchestrion.runtime import events as ev
from orchestrion.store import ApprovalRecord, Store, UnknownApproval, action_hash, utcnow

if TYPE_CHECKING:
    from orchestrion.agents.base import AgentLike
    from orchestrion.runtime.context import RunContext

_APPROVE = object()  # the decision said: go on with the proposal as it is


def _basis(agent: str, payload: Any) -> str:
    return action_hash({"agent": agent, "input": dump_payload(payload)})


def request_id(run_id: str, key: str, kind: str, digest: str) -> str:
    """Deterministic id of the request of ``kind`` at step ``key`` for one exact action."""
    text = f"{run_id}|{key}|{kind}|{digest}"
    return "apr_" + hashlib.sha256(text.encode()).hexdigest()[:20]


class HitlGate:
    """The Checkpoint the durable runner installs: levels 0-4 over a store."""

    def __init__(self, store: Store, hitl: Hitl) -> None:
        self.store = store
        self.hitl = hitl
        self.alerts: dict[str, int] = {}

    # ------------------------------------------------------------------ Checkpoint protocol

    async def before(self, ctx: RunContext, key: str, agent: AgentLike, payload: Any) -> Any:
        h = self.hitl
        gate = h.gate(agent.name, key, "before") if h.level in (1, 2, 3) else None
        if h.level == 4 or gate is not None:
            prompt = gate.prompt if gate and gate.prompt else f"run {agent.name} on this input?"
            if h.level == 3:
                self._alert(ctx, key, f"checkpoint before {agent.name}")
                return payload
            verdict = await self.ask(ctx, key, agent.name, "before", prompt,
                                     {"agent": agent.name, "input": dump_payload(payload)})
            return payload if verdict is _APPROVE else verdict
        return payload

    async def after(self, ctx: RunContext, key: str, agent: AgentLike, payload: Any,
                    output: Any) -> Any:
        h = self.hitl
        if h.level == 0 or h.level == 4:
            return output
        gate = h.gate(agent.name, key, "after")
        low = self._low_confidence(output) if h.level in (2, 3) else None
        if gate is None and low is None:
            return output
        reason = (gate.prompt or f"accept the output of {agent.name}?") if gate else low or ""
        if h.level == 3:
            self._alert(ctx, key, reason)
            return output
        action = {"agent": agent.name, "input": dump_payload(payload),
                  "output": dump_payload(output)}
        verdict = await self.ask(ctx, key, agent.name, "after", reason, action,
                                 basis=_basis(agent.name, payload))
        return output if verdict is _APPROVE else verdict

    async def on_failure(self, ctx: RunContext, key: str, agent: AgentLike, payload: Any,
                         error: RunError) -> Any | None:
        h = self.hitl
        if h.level == 3:
            self._alert(ctx, key, f"{agent.name} failed: {error.message}")
        if h.level not in (2, 4):
            return None
        action = {"agent": agent.name, "input": dump_payload(payload),
                  "error": {"type": type(error).__name__, "message": error.message}}
        verdict = await self.ask(ctx, key, agent.name, "failure",
                                 f"{agent.name} failed; supply its output to go on", action,
                                 basis=_basis(agent.name, payload))
        if verdict is _APPROVE:
            return None  # the human accepts the failure: it stands
        return verdict

    async def resolved(self, ctx: RunContext, key: str, agent: AgentLike,
                       payload: Any) -> Any | None:
        """After a pause on a step's output (or failure), the human's decision, without
        running the agent again: approved output, edited output, or the typed refusal."""
        if self.hitl.level not in (1, 2, 4):
            return None
        basis = _basis(agent.name, payload)
        for kind in ("after", "failure"):
            rid = request_id(ctx.run_id, key, kind, basis)
            try:
                record = await self.store.get_approval(rid)
            except UnknownApproval:
                continue
            verdict = self._verdict(ctx, record, key, agent.name)
            if verdict is _APPROVE:
                if kind == "failure":
                    error = record.action.get("error", {})
                    raise AgentFailed(f"failure accepted by {record.decided_by}: "
                                      f"{error.get('message', '')}", step=key, agent=agent.name)
                return record.action.get("output")
            return verdict
        return None

    async def confirm_rerun(self, ctx: RunContext, key: str, agent: AgentLike,
                            payload: Any) -> None:
        action = {"agent": agent.name, "input": dump_payload(payload), "interrupted": True}
        await self.ask(ctx, key, agent.name, "rerun",
                       f"{agent.name} has side effects and was interrupted mid-step; it may "
                       "have run. Approve to run it again, reject to stop the run.", action)

    # ------------------------------------------------------------------ human agents

    async def ask_human(self, ctx: RunContext, key: str, agent: str, prompt: str,
                        payload: Any, schema: dict[str, Any]) -> Any:
        """A human agent's answer: the edited action of an approved request."""
        action = {"agent": agent, "input": dump_payload(payload), "answer_schema": schema}
        verdict = await self.ask(ctx, key, agent, "answer", prompt, action)
        if verdict is _APPROVE:
            raise ApprovalRejected("(answer)", reason="approved without an answer", by=None,
                                   step=key, agent=agent)
        return verdict

    # ------------------------------------------------------------------ the request cycle

    async def ask(self, ctx: RunContext, key: str, agent: str, kind: str, prompt: str,
                  action: dict[str, Any], *, basis: str | None = None) -> Any:
        """Return _APPROVE or the edited action; raise ApprovalRequired / ApprovalRejected.

        The request id comes from ``basis`` when given (requests about a step's
        output are found again from its input, before the agent runs), else from
        the proposal itself (a changed proposal is a new request).
        """
        proposal = {"kind": kind, "prompt": prompt, **action}
        digest = action_hash(proposal)
        rid = request_id(ctx.run_id, key, kind, basis or digest)
        try:
            record = await self.store.get_approval(rid)
        except UnknownApproval:
            expires = (utcnow() + timedelta(seconds=self.hitl.expires_after_s)
                       if self.hitl.expires_after_s is not None else None)
            record = ApprovalRecord(request_id=rid, run_id=ctx.run_id, step_key=key,
                                    action=proposal, action_hash=digest, expires_at=expires)
            await self.store.create_approval(record)
        return self._verdict(ctx, record, key, agent)

    def _verdict(self, ctx: RunContext, record: ApprovalRecord, key: str, agent: str) -> Any:
        """_APPROVE or the edit of a decided request; a pending one pauses the run."""
        rid = record.request_id
        if record.status == "approved":
            return _APPROVE
        if record.status == "edited":
            return record.edited_action
        if record.status == "rejected":
            raise ApprovalRejected(rid, reason=f"rejected ({record.reason or 'no reason given'})",
                                   by=record.decided_by, step=key, agent=agent)
        if record.status == "expired" or record.is_expired(utcnow()):
            raise ApprovalRejected(rid, reason="expired", by=None, step=key, agent=agent)
        prompt = str(record.action.get("prompt", ""))
        ctx.pending.append({"request_id": rid, "step": key, **record.action})
        ctx.emit(ev.ApprovalRequested, step=key, request_id=rid, prompt=prompt)
        raise ApprovalRequired(rid, step=key, prompt=prompt)

    # ------------------------------------------------------------------ helpers

    def _low_confidence(self, output: Any) -> str | None:
        value = getattr(output, self.hitl.confidence_field, None)
        if isinstance(value, int | float) and value < self.hitl.threshold:
            return f"confidence {value:g} below {self.hitl.threshold:g}"
        return None

    def _alert(self, ctx: RunContext, key: str, reason: str) -> None:
        sent = self.alerts.get(ctx.run_id, 0)
        self.alerts[ctx.run_id] = sent + 1
        if sent < self.hitl.alert_budget:
            ctx.emit(ev.Alert, step=key, reason=reason)
        elif sent == self.hitl.alert_budget:
            ctx.emit(ev.Alert, step=key, reason="alert budget reached; further alerts of this "
                     "run are suppressed", suppressed=1)
