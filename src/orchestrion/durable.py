"""Runner: durable runs on a journal. Every accepted run is journaled before it is
acknowledged; a run that crashes, is killed or waits days for a human resumes
without repeating or paying again for any completed step.

::

    async with open_store("sqlite:///journal.db") as store:
        runner = Runner(store)
        result = await runner.run(workflow, ticket, ref="myapp.flows:support")
        ...                                   # the process dies, or the run pauses
        result = await runner.resume(result.run_id, workflow)
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrion.contracts.contract import dump_payload
from orchestrion.cost.usage import Usage
from orchestrion.errors import DefinitionChanged, RunError, RunNotResumable
from orchestrion.hitl.gate import HitlGate
from orchestrion.runtime.errorcodec import error_from_dict, error_to_dict
from orchestrion.runtime.events import EVENT_TYPES, StepStarted, event_from_dict
from orchestrion.runtime.journal import CancelPoller, StoreJournal, journaled_step
from orchestrion.runtime.result import RunResult
from orchestrion.runtime.run import execute, new_id, validate_input
from orchestrion.store import ApprovalExpired, ApprovalRecord, RunRecord, Store, utcnow
from orchestrion.workflow import Workflow


class Runner:
    """Runs workflows durably on ``store`` (SQLite by default, Postgres, or memory)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._live: dict[str, StoreJournal] = {}
        # One cancel watcher for all live runs: one status read per 0.25 s, not one per run.
        self._cancels = CancelPoller(store, StoreJournal.CANCEL_POLL_S)

    async def run(self, workflow: Workflow, input: Any, *, run_id: str | None = None,
                  deps: Any = None, ref: str | None = None, tainted: bool = False) -> RunResult:
        """Journal a new run, then execute it. Bad input raises before anything is journaled."""
        record = await self._accept(workflow, input, run_id=run_id, ref=ref)
        return await self._execute(workflow, record, deps=deps, tainted=tainted, fresh=True)

    async def submit(self, workflow: Workflow, input: Any, *, run_id: str | None = None,
                     ref: str | None = None) -> str:
        """Accept a run: validate, check, journal durably, and return its id (not started)."""
        return (await self._accept(workflow, input, run_id=run_id, ref=ref)).run_id

    async def _accept(self, workflow: Workflow, input: Any, *, run_id: str | None,
                      ref: str | None) -> RunRecord:
        workflow.ensure_checked()
        payload = validate_input(workflow, input)
        record = RunRecord(
            run_id=run_id or new_id("run"), workflow=workflow.name,
            definition_hash=workflow.definition_hash(), input=dump_payload(payload),
            trace_id=uuid.uuid4().hex, metadata={"ref": ref} if ref else {})
        await self.store.create_run(record)
        return record

    async def resume(self, run_id: str, workflow: Workflow, *, deps: Any = None,
                     force: bool = False) -> RunResult:
        """Re-enter a paused, interrupted or failed run: completed steps replay from the
        journal (no call, no cost), in-flight steps run again, non-idempotent in-flight
        steps need a human's confirmation."""
        record = await self.store.get_run(run_id)
        if record.status in ("succeeded", "cancelled"):
            # A failed run may resume (say with a raised budget): finished steps replay.
            raise RunNotResumable(f"run {run_id} already {record.status}",
                                  hint="paused, interrupted and failed runs resume; "
                                  "`orchestrion show RUN` shows this one's result")
        if run_id in self._live:
            raise RunNotResumable(f"run {run_id} is running in this process",
                                  hint="wait for it, or cancel it first")
        current = workflow.definition_hash()
        if record.definition_hash != current and not force:
            raise DefinitionChanged(run_id, record.definition_hash, current)
        return await self._execute(workflow, record, deps=deps)

    async def decide(self, request_id: str, *, decision: str, by: str,
                     edited: Any = None, reason: str | None = None) -> ApprovalRecord:
        """Approve, reject or edit a pending request (single use, bound to its action hash)."""
        request = await self.store.get_approval(request_id)
        return await self.store.decide_approval(
            request_id, decision=decision, by=by, action_hash=request.action_hash,
            edited_action=edited, reason=reason)

    async def expire_overdue(self, workflow_of: Callable[[RunRecord], Workflow], *,
                             now: datetime | None = None) -> list[RunResult]:
        """End the wait of paused runs whose approval requests are past their expiry.

        A wait on a human is bounded like any other wait: each overdue request is
        journaled as expired and its run resumed, so it fails at the step that waited
        (ApprovalRejected, reason "expired") with its partial results kept.  Call it
        periodically (``orchestrion expire``); ``workflow_of`` maps a run to its workflow.
        """
        now = now or utcnow()
        finished = []
        for run in await self.store.list_runs(status="paused", limit=10_000):
            pending = await self.store.pending_approvals(run.run_id)
            overdue = [a for a in pending if a.is_expired(now)]
            # A paused run with nothing pending had its expiry journaled by a sweep that
            # failed before resuming it: it is picked up again here, never stranded.
            if pending and not overdue:
                continue
            workflow = workflow_of(run)  # before journaling anything: a bad ref changes nothing
            for request in overdue:
                # A decision past the deadline is refused, and the expiry journaled.
                with contextlib.suppress(ApprovalExpired):
                    await self.store.decide_approval(
                        request.request_id, decision="rejected", by="orchestrion:expiry",
                        action_hash=request.action_hash, reason="expired", now=now)
            finished.append(await self.resume(run.run_id, workflow))
        return finished

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run cooperatively: no new call starts; the journal stays consistent."""
        record = await self.store.get_run(run_id)
        if record.finished:
            raise RunNotResumable(f"run {run_id} already {record.status}",
                                  hint="a finished run cannot be cancelled")
        # Compare-and-set: the run's own final write may land between the read above
        # and this one; a run that finished meanwhile is not cancelled.
        stored = await self.store.update_run(
            run_id, status="cancelled", only_if=("running", "paused"))
        if stored.status != "cancelled":
            raise RunNotResumable(f"run {run_id} already {stored.status}",
                                  hint="a finished run cannot be cancelled")
        live = self._live.get(run_id)
        if live is not None:
            live.cancel()
        return stored

    async def result(self, run_id: str) -> RunResult:
        """The journaled run as a RunResult (typed error, steps, events), for show/explain."""
        run = await self.store.get_run(run_id)
        stored = await self.store.steps(run_id)
        events = tuple(event_from_dict({"kind": e.kind, "seq": e.seq, "at": e.at.timestamp(),
                                        **e.data})
                       for e in await self.store.events(run_id) if e.kind in EVENT_TYPES)
        steps = tuple(journaled_step(st) for st in stored)
        by_agent: dict[str, Usage] = {}
        calls: dict[str, int] = {}
        for e in events:
            if isinstance(e, StepStarted) and e.target == "agent":
                calls[e.agent] = calls.get(e.agent, 0) + 1
        for st in steps:
            if st.usage:
                by_agent[st.agent] = by_agent.get(st.agent, Usage()) + st.usage
        pending = tuple({"request_id": a.request_id, "step": a.step_key, **a.action}
                        for a in await self.store.pending_approvals(run_id))
        return RunResult(
            run_id=run.run_id, trace_id=run.trace_id, workflow=run.workflow,
            status=run.status, output=run.output,
            error=None if run.error is None else error_from_dict(run.error),
            usage=Usage.from_dict(run.usage or {}), usage_by_agent=by_agent,
            calls_by_agent=calls, steps=steps, events=events, pending=pending)

    async def _execute(self, workflow: Workflow, record: RunRecord, *, deps: Any = None,
                       tainted: bool = False, fresh: bool = False) -> RunResult:
        run_id = record.run_id
        if fresh:  # just created: nothing to replay, no events yet; skip the reads
            journal = StoreJournal(self.store, run_id, completed={}, begun={},
                                   poller=self._cancels)
            seq_start = 0
        else:
            journal = await StoreJournal.open(self.store, run_id, poller=self._cancels)
            seq_start = await self.store.last_event_seq(run_id)
        self._live[run_id] = journal
        try:
            result = await execute(
                workflow, record.input, run_id=run_id, deps=deps, tainted=tainted,
                journal=journal, checkpoint=HitlGate(self.store, workflow.policy.hitl),
                listeners=[journal.listen], seq_start=seq_start,
                trace_id=record.trace_id)
            await journal.record_failures(list(result.steps))
            await journal.close()
            final: dict[str, Any] = {
                "output": dump_payload(result.output),
                "error": None if result.error is None else error_to_dict(result.error),
                "usage": {**result.usage.to_dict(), "calls": result.calls}}
            # Compare-and-set: never overwrite a cancel that landed meanwhile.
            stored = await self.store.update_run(
                run_id, status=result.status, only_if=("running", "paused", "failed"), **final)
            if stored.status == "cancelled" and result.status != "cancelled":
                # Cancelled meanwhile: still journal what the run did and what it cost.
                await self.store.update_run(
                    run_id, status="cancelled", only_if=["cancelled"], **final)
                result = dataclasses.replace(result, status="cancelled")
        except Exception as exc:
            # A store or runtime fault after the flow ran: never leave the run looking live.
            # (A cancelled task is different: the run stays "running", i.e. resumable.)
            failure = RunError(f"internal error: {type(exc).__name__}: {exc}",
                               hint="resume the run once the cause is fixed")
            with contextlib.suppress(Exception):  # the store itself may be what failed
                await self.store.update_run(run_id, status="failed",
                                            error=error_to_dict(failure),
                                            only_if=("running", "paused"))
            raise
        finally:
            self._live.pop(run_id, None)
            self._cancels.unwatch(journal)
        return result

