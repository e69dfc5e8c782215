"""The store conformance suite: what every Store implementation must do, identically.

Subclass :class:`StoreConformance` in a test module and provide two fixtures:
``store`` (an open store) and ``backend`` (see ``conftest.Backend``).  The suite
only talks to the :class:`~orchestrion.store.Store` protocol.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orchestrion.store import (
    SCHEMA_VERSION,
    ApprovalExpired,
    ApprovalHashMismatch,
    ApprovalNotPending,
    ApprovalRecord,
    DuplicateRecord,
    EventRecord,
    EventSequenceError,
    InvalidDecision,
    InvalidRecord,
    PayloadNotJSON,
    RunRecord,
    StepRecord,
    Store,
    StoreUnavailable,
    UnknownApproval,
    UnknownRun,
    action_hash,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_run(run_id: str = "run-1", **fields: Any) -> RunRecord:
    base: dict[str, Any] = {
        "workflow": "support",
        "definition_hash": "sha256:def",
        "input": {"question": "why?"},
        "trace_id": "trace-1",
        "created_at": T0,
        "updated_at": T0,
    }
    return RunRecord(run_id=run_id, **(base | fields))


def make_step(key: str = "chain[0]/writer", attempt: int = 1, **fields: Any) -> StepRecord:
    base: dict[str, Any] = {
        "run_id": "run-1",
        "agent": "writer",
        "input": {"topic": "x"},
        "started_at": T0,
    }
    return StepRecord(key=key, attempt=attempt, **(base | fields))


def make_events(first: int, count: int, run_id: str = "run-1") -> list[EventRecord]:
    return [
        EventRecord(run_id=run_id, seq=seq, kind="step.finished", data={"n": seq}, at=at(seq))
        for seq in range(first, first + count)
    ]


def make_approval(request_id: str = "req-1", **fields: Any) -> ApprovalRecord:
    action = fields.pop("action", {"tool": "send_email", "args": {"to": "a@b.c"}})
    base: dict[str, Any] = {"run_id": "run-1", "step_key": "chain[1]/mailer", "created_at": T0}
    return ApprovalRecord(
        request_id=request_id, action=action, action_hash=action_hash(action), **(base | fields)
    )


class RunsConformance:
    async def test_a_run_reads_back_equal(self, store: Store) -> None:
        run = make_run(
            usage={"input_tokens": 3, "usd": 0.25},
            metadata={"tenant": "acme", "tags": ["a", "b"]},
            parent_run_id="run-0",
        )
        await store.create_run(run)
        assert await store.get_run("run-1") == run

    async def test_creating_a_run_twice_is_refused_and_keeps_the_first(self, store: Store) -> None:
        await store.create_run(make_run(input={"v": 1}))
        with pytest.raises(DuplicateRecord):
            await store.create_run(make_run(input={"v": 2}))
        assert (await store.get_run("run-1")).input == {"v": 1}

    async def test_unknown_run_is_a_typed_error_everywhere(self, store: Store) -> None:
        calls = [
            store.get_run("nope"),
            store.update_run("nope", status="failed"),
            store.steps("nope"),
            store.completed_steps("nope"),
            store.record_step(make_step(run_id="nope")),
            store.events("nope"),
            store.last_event_seq("nope"),
            store.append_events("nope", make_events(1, 2, run_id="nope")),
            store.pending_approvals("nope"),
            store.create_approval(make_approval(run_id="nope")),
        ]
        for call in calls:
            with pytest.raises(UnknownRun) as info:
                await call
            assert info.value.run_id == "nope"

    async def test_update_sets_given_fields_and_keeps_the_rest(self, store: Store) -> None:
        await store.create_run(make_run(output=None, usage={"usd": 0.1}))
        paused = await store.update_run("run-1", status="paused", now=at(5))
        assert (paused.status, paused.usage, paused.updated_at) == ("paused", {"usd": 0.1}, at(5))
        done = await store.update_run(
            "run-1", status="succeeded", output={"answer": 42}, usage={"usd": 0.3}, now=at(9)
        )
        assert done.output == {"answer": 42} and done.usage == {"usd": 0.3}
        assert done.created_at == T0 and done.finished
        assert await store.get_run("run-1") == done

    async def test_update_can_record_and_clear_an_error(self, store: Store) -> None:
        await store.create_run(make_run())
        failed = await store.update_run("run-1", status="failed", error={"type": "Boom"})
        assert failed.error == {"type": "Boom"}
        resumed = await store.update_run("run-1", status="running", error=None)
        assert resumed.error is None

    async def test_update_refuses_an_unknown_status(self, store: Store) -> None:
        await store.create_run(make_run())
        with pytest.raises(InvalidRecord):
            await store.update_run("run-1", status="exploded")  # type: ignore[arg-type]
        assert (await store.get_run("run-1")).status == "running"

    async def test_update_returns_the_stored_run(self, store: Store) -> None:
        await store.create_run(make_run())
        updated = await store.update_run("run-1", status="paused", now=at(3))
        assert updated == await store.get_run("run-1")

    async def test_compare_and_set_applies_when_the_status_matches(self, store: Store) -> None:
        await store.create_run(make_run())
        done = await store.update_run(
            "run-1", status="succeeded", output={"a": 1}, now=at(4), only_if=("running", "paused")
        )
        assert (done.status, done.output, done.updated_at) == ("succeeded", {"a": 1}, at(4))
        assert await store.get_run("run-1") == done

    async def test_compare_and_set_changes_nothing_when_it_does_not(self, store: Store) -> None:
        await store.create_run(make_run(status="succeeded", output={"a": 1}))
        before = await store.get_run("run-1")
        after = await store.update_run(
            "run-1", status="cancelled", output={"b": 2}, error={"type": "X"}, now=at(7),
            only_if=("running", "paused"),
        )  # fmt: skip
        assert after == before == await store.get_run("run-1")
        assert await store.update_run("run-1", status="failed", only_if=()) == before

    async def test_compare_and_set_on_an_unknown_run_is_unknown_run(self, store: Store) -> None:
        with pytest.raises(UnknownRun) as info:
            await store.update_run("nope", status="cancelled", only_if=("running",))
        assert info.value.run_id == "nope"

    async def test_compare_and_set_refuses_unknown_statuses(self, store: Store) -> None:
        await store.create_run(make_run())
        for bad in (("exploded",), "running"):
            with pytest.raises(InvalidRecord):
                await store.update_run("run-1", status="paused", only_if=bad)  # type: ignore[arg-type]
        assert (await store.get_run("run-1")).status == "running"

    async def test_concurrent_compare_and_set_writers_exactly_one_wins(self, backend: Any) -> None:
        # Separate store instances on the same journal where the store is durable, so
        # the writers race through the database, not through one connection.
        stores = [backend.make() for _ in range(4 if backend.durable else 1)]
        for s in stores:
            await s.open()
        try:
            for i in range(5):
                run_id = f"race-{i}"
                await stores[0].create_run(make_run(run_id))
                statuses = ["succeeded", "cancelled", "failed", "paused"] * 2
                writers = [
                    (stores[n % len(stores)], status, at(n + 1))
                    for n, status in enumerate(statuses)
                ]
                results = await asyncio.gather(
                    *(
                        s.update_run(run_id, status=status, now=now, only_if=("running",))
                        for s, status, now in writers
                    )
                )
                final = await stores[0].get_run(run_id)
                winners = [w for w in writers if (w[1], w[2]) == (final.status, final.updated_at)]
                assert len(winners) == 1
                # Every writer, winner or not, gets the run as the winner left it.
                assert all(r == final for r in results)
        finally:
            for s in stores:
                await s.close()

    async def test_list_runs_newest_first_with_status_and_limit(self, store: Store) -> None:
        for i, status in enumerate(["running", "succeeded", "running", "failed"]):
            await store.create_run(make_run(f"run-{i}", status=status, created_at=at(i)))
        assert [r.run_id for r in await store.list_runs()] == ["run-3", "run-2", "run-1", "run-0"]
        running = await store.list_runs(status="running")
        assert [r.run_id for r in running] == ["run-2", "run-0"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["run-3", "run-2"]
        assert await store.list_runs(status="paused") == []

    async def test_list_runs_breaks_timestamp_ties_by_creation_order(self, store: Store) -> None:
        for i in range(3):
            await store.create_run(make_run(f"run-{i}"))
        assert [r.run_id for r in await store.list_runs()] == ["run-2", "run-1", "run-0"]


class StepsConformance:
    async def test_a_step_is_upserted_by_run_key_and_attempt(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.record_step(make_step())
        done = make_step(
            status="succeeded",
            output={"text": "hi"},
            usage={"input_tokens": 10, "output_tokens": 2},
            cost_usd=0.0125,
            finished_at=at(2),
            provenance={"producer": "writer", "tainted": False, "sources": ["user"]},
            idempotency_key="idem-1",
        )
        await store.record_step(done)
        assert await store.steps("run-1") == [done]

    async def test_steps_keep_the_order_they_were_first_recorded(self, store: Store) -> None:
        await store.create_run(make_run())
        for key in ["b", "a", "c"]:
            await store.record_step(make_step(key))
        await store.record_step(make_step("a", status="succeeded"))
        await store.record_step(make_step("b", attempt=2))
        assert [(s.key, s.attempt) for s in await store.steps("run-1")] == [
            ("b", 1), ("a", 1), ("c", 1), ("b", 2),
        ]  # fmt: skip

    async def test_completed_steps_is_the_latest_success_per_key(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.record_step(make_step("a", 1, status="failed", error={"type": "Timeout"}))
        await store.record_step(make_step("a", 2, status="succeeded", output="second"))
        await store.record_step(make_step("b", 1, status="succeeded", output="only"))
        await store.record_step(make_step("b", 3, status="succeeded", output="third"))
        await store.record_step(make_step("b", 2, status="succeeded", output="recorded last"))
        await store.record_step(make_step("c", 1))  # started, never finished
        done = await store.completed_steps("run-1")
        assert {k: (s.attempt, s.output) for k, s in done.items()} == {
            "a": (2, "second"),
            "b": (3, "third"),
        }

    async def test_a_run_without_steps_has_none(self, store: Store) -> None:
        await store.create_run(make_run())
        assert await store.steps("run-1") == []
        assert await store.completed_steps("run-1") == {}

    async def test_steps_of_runs_are_kept_apart(self, store: Store) -> None:
        await store.create_run(make_run("run-1"))
        await store.create_run(make_run("run-2"))
        await store.record_step(make_step("k", run_id="run-1", status="succeeded", output=1))
        await store.record_step(make_step("k", run_id="run-2", status="succeeded", output=2))
        assert (await store.completed_steps("run-2"))["k"].output == 2


class EventsConformance:
    async def test_events_append_and_read_back_in_order(self, store: Store) -> None:
        await store.create_run(make_run())
        assert await store.last_event_seq("run-1") == 0
        assert await store.append_events("run-1", make_events(1, 3)) == 3
        assert await store.append_events("run-1", make_events(4, 2)) == 5
        assert await store.events("run-1") == make_events(1, 5)
        assert [e.seq for e in await store.events("run-1", after_seq=3)] == [4, 5]
        assert [e.seq for e in await store.events("run-1", after_seq=1, limit=2)] == [2, 3]
        assert await store.events("run-1", after_seq=5) == []
        assert await store.last_event_seq("run-1") == 5

    async def test_a_gap_or_duplicate_is_refused_and_writes_nothing(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.append_events("run-1", make_events(1, 2))
        for bad, expected, got in [
            (make_events(4, 1), 3, 4),  # gap
            (make_events(2, 2), 3, 2),  # duplicate
            ([*make_events(3, 1), *make_events(5, 1)], 4, 5),  # gap inside the batch
        ]:
            with pytest.raises(EventSequenceError) as info:
                await store.append_events("run-1", bad)
            assert (info.value.expected, info.value.got) == (expected, got)
        assert [e.seq for e in await store.events("run-1")] == [1, 2]

    async def test_an_event_of_another_run_is_refused(self, store: Store) -> None:
        await store.create_run(make_run("run-1"))
        with pytest.raises(InvalidRecord):
            await store.append_events("run-1", make_events(1, 1, run_id="run-2"))
        assert await store.last_event_seq("run-1") == 0

    async def test_an_empty_batch_changes_nothing(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.append_events("run-1", make_events(1, 2))
        assert await store.append_events("run-1", []) == 2

    async def test_racing_appenders_never_leave_a_gap(self, store: Store) -> None:
        await store.create_run(make_run())

        async def appender(worker: int) -> int:
            appended = 0
            for _ in range(20):
                last = await store.last_event_seq("run-1")
                batch = [EventRecord(run_id="run-1", seq=last + 1, kind="tick", data={"w": worker})]
                try:
                    await store.append_events("run-1", batch)
                    appended += 1
                except EventSequenceError:
                    pass  # lost the race: another appender took that seq
            return appended

        counts = await asyncio.gather(*(appender(w) for w in range(4)))
        seqs = [e.seq for e in await store.events("run-1")]
        assert seqs == list(range(1, sum(counts) + 1))


class StepWithEventsConformance:
    """``record_step(step, events)``: a step and the events up to it in one commit."""

    async def test_a_step_and_its_events_land_together(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.append_events("run-1", make_events(1, 2))
        step = make_step(status="succeeded", output={"text": "hi"}, finished_at=at(2))
        await store.record_step(step, make_events(3, 3))
        assert await store.steps("run-1") == [step]
        assert await store.events("run-1") == make_events(1, 5)
        assert await store.last_event_seq("run-1") == 5

    async def test_a_bad_event_batch_writes_neither_events_nor_step(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.append_events("run-1", make_events(1, 2))
        await store.record_step(make_step("a"))
        for bad, expected, got in [
            (make_events(4, 1), 3, 4),  # gap
            (make_events(2, 2), 3, 2),  # duplicate
            ([*make_events(3, 1), *make_events(5, 1)], 4, 5),  # gap inside the batch
        ]:
            with pytest.raises(EventSequenceError) as info:
                await store.record_step(make_step("b"), bad)
            assert (info.value.expected, info.value.got) == (expected, got)
            # nor does it replace an attempt already journaled
            with pytest.raises(EventSequenceError):
                await store.record_step(make_step("a", status="succeeded", output=1), bad)
        with pytest.raises(InvalidRecord):
            await store.record_step(make_step("b"), make_events(3, 1, run_id="run-2"))
        assert [(s.key, s.status) for s in await store.steps("run-1")] == [("a", "started")]
        assert [e.seq for e in await store.events("run-1")] == [1, 2]

    async def test_record_step_with_events_of_an_unknown_run(self, store: Store) -> None:
        with pytest.raises(UnknownRun):
            await store.record_step(make_step(run_id="nope"), make_events(1, 1, run_id="nope"))
        with pytest.raises(UnknownRun):
            await store.record_step(make_step(run_id="nope"), make_events(2, 1, run_id="nope"))

    async def test_no_events_records_the_step_as_before(self, store: Store) -> None:
        await store.create_run(make_run())
        await store.append_events("run-1", make_events(1, 2))
        await store.record_step(make_step("a"), ())
        done = make_step("a", status="succeeded", output="x", finished_at=at(1))
        await store.record_step(done, [])
        assert await store.steps("run-1") == [done]
        assert await store.last_event_seq("run-1") == 2
        with pytest.raises(UnknownRun):
            await store.record_step(make_step(run_id="nope"), ())

    async def test_racing_step_writers_never_leave_a_gap(self, store: Store) -> None:
        await store.create_run(make_run())

        async def writer(worker: int) -> int:
            written = 0
            for i in range(15):
                last = await store.last_event_seq("run-1")
                batch = [
                    EventRecord(run_id="run-1", seq=last + n, kind="tick", data={"w": worker})
                    for n in (1, 2)
                ]
                try:
                    await store.record_step(make_step(f"w{worker}-{i}"), batch)
                    written += 1
                except EventSequenceError:
                    pass  # lost the race: neither the step nor the events landed
            return written

        counts = await asyncio.gather(*(writer(w) for w in range(4)))
        assert [e.seq for e in await store.events("run-1")] == list(range(1, 2 * sum(counts) + 1))
        assert len(await store.steps("run-1")) == sum(counts)

    async def test_group_committed_neighbours_survive_a_refused_batch(self, store: Store) -> None:
        await store.create_run(make_run())
        good = [store.record_step(make_step(f"k{i}")) for i in range(3)]
        bad = store.record_step(make_step("bad"), make_events(7, 1))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        assert isinstance(results[-1], EventSequenceError)
        assert sorted(s.key for s in await store.steps("run-1")) == ["k0", "k1", "k2"]


class RunStatusesConformance:
    async def test_statuses_of_many_runs_in_one_read(self, store: Store) -> None:
        for i in range(3):
            await store.create_run(make_run(f"run-{i}"))
        await store.update_run("run-1", status="cancelled")
        assert await store.run_statuses(["run-0", "run-1", "nope", "run-1"]) == {
            "run-0": "running", "run-1": "cancelled",
        }  # fmt: skip
        assert await store.run_statuses([]) == {}

    async def test_statuses_of_more_runs_than_one_statement_binds(self, store: Store) -> None:
        ids = [f"run-{i}" for i in range(1200)]
        for run_id in ids[:3]:
            await store.create_run(make_run(run_id))
        assert await store.run_statuses(ids) == dict.fromkeys(ids[:3], "running")


class ApprovalsConformance:
    async def _pending(self, store: Store, **fields: Any) -> ApprovalRecord:
        await store.create_run(make_run())
        approval = make_approval(**fields)
        await store.create_approval(approval)
        return approval

    async def test_a_request_reads_back_and_is_pending(self, store: Store) -> None:
        approval = await self._pending(store, expires_at=at(60))
        assert await store.get_approval("req-1") == approval
        assert await store.pending_approvals("run-1") == [approval]

    async def test_pending_requests_are_listed_oldest_first(self, store: Store) -> None:
        await self._pending(store)
        for request_id, created in [("req-0", T0), ("req-3", at(-1)), ("req-2", T0)]:
            await store.create_approval(make_approval(request_id, created_at=created))
        pending = await store.pending_approvals("run-1")
        assert [a.request_id for a in pending] == ["req-3", "req-1", "req-0", "req-2"]

    async def test_approving_records_who_and_when_and_is_single_use(self, store: Store) -> None:
        approval = await self._pending(store)
        decided = await store.decide_approval(
            "req-1", decision="approved", by="alice", action_hash=approval.action_hash, now=at(5)
        )
        assert (decided.status, decided.decided_by, decided.decided_at) == (
            "approved", "alice", at(5),
        )  # fmt: skip
        assert await store.get_approval("req-1") == decided
        assert await store.pending_approvals("run-1") == []
        with pytest.raises(ApprovalNotPending) as info:
            await store.decide_approval(
                "req-1", decision="rejected", by="bob", action_hash=approval.action_hash
            )
        assert info.value.status == "approved"
        assert (await store.get_approval("req-1")).decided_by == "alice"

    async def test_rejecting_and_editing_are_journaled(self, store: Store) -> None:
        approval = await self._pending(store)
        await store.create_approval(make_approval("req-2"))
        rejected = await store.decide_approval(
            "req-1", decision="rejected", by="bob", action_hash=approval.action_hash,
            reason="wrong recipient",
        )  # fmt: skip
        assert (rejected.status, rejected.reason) == ("rejected", "wrong recipient")
        edit = {"tool": "send_email", "args": {"to": "ops@b.c"}}
        edited = await store.decide_approval(
            "req-2", decision="edited", by="carol", action_hash=approval.action_hash,
            edited_action=edit,
        )  # fmt: skip
        assert (edited.status, edited.edited_action) == ("edited", edit)
        assert await store.get_approval("req-2") == edited

    async def test_a_stale_hash_is_refused_and_leaves_it_pending(self, store: Store) -> None:
        await self._pending(store)
        stale = action_hash({"tool": "send_email", "args": {"to": "someone@else"}})
        with pytest.raises(ApprovalHashMismatch):
            await store.decide_approval("req-1", decision="approved", by="eve", action_hash=stale)
        assert (await store.get_approval("req-1")).status == "pending"

    async def test_a_late_decision_marks_it_expired(self, store: Store) -> None:
        approval = await self._pending(store, expires_at=at(60))
        with pytest.raises(ApprovalExpired):
            await store.decide_approval(
                "req-1", decision="approved", by="alice", action_hash=approval.action_hash,
                now=at(61),
            )  # fmt: skip
        assert (await store.get_approval("req-1")).status == "expired"
        assert await store.pending_approvals("run-1") == []
        with pytest.raises(ApprovalNotPending):
            await store.decide_approval(
                "req-1", decision="approved", by="alice", action_hash=approval.action_hash,
                now=at(10),
            )  # fmt: skip

    async def test_a_decision_before_expiry_counts(self, store: Store) -> None:
        approval = await self._pending(store, expires_at=at(60))
        decided = await store.decide_approval(
            "req-1", decision="approved", by="alice", action_hash=approval.action_hash,
            now=at(59),
        )  # fmt: skip
        assert decided.status == "approved"

    async def test_malformed_decisions_are_refused(self, store: Store) -> None:
        approval = await self._pending(store)
        h = approval.action_hash
        bad: list[dict[str, Any]] = [
            {"decision": "maybe", "by": "a", "action_hash": h},
            {"decision": "approved", "by": "", "action_hash": h},
            {"decision": "edited", "by": "a", "action_hash": h},
            {"decision": "approved", "by": "a", "action_hash": h, "edited_action": {"x": 1}},
        ]
        for kwargs in bad:
            with pytest.raises(InvalidDecision):
                await store.decide_approval("req-1", **kwargs)
        assert (await store.get_approval("req-1")).status == "pending"

    async def test_creating_requests_is_checked(self, store: Store) -> None:
        await self._pending(store)
        with pytest.raises(DuplicateRecord):
            await store.create_approval(make_approval())
        forged = make_approval("req-2")
        with pytest.raises(ApprovalHashMismatch):
            await store.create_approval(
                ApprovalRecord(**{**_fields(forged), "action_hash": action_hash("other")})
            )
        with pytest.raises(InvalidRecord):
            await store.create_approval(make_approval("req-3", status="approved"))
        with pytest.raises(UnknownApproval):
            await store.get_approval("req-2")

    async def test_unknown_request_is_a_typed_error(self, store: Store) -> None:
        with pytest.raises(UnknownApproval):
            await store.get_approval("nope")
        with pytest.raises(UnknownApproval):
            await store.decide_approval("nope", decision="approved", by="a", action_hash="x")

    async def test_racing_deciders_get_exactly_one_decision(self, store: Store) -> None:
        approval = await self._pending(store)

        async def decide(who: str) -> str:
            try:
                await store.decide_approval(
                    "req-1", decision="approved", by=who, action_hash=approval.action_hash
                )
                return who
            except ApprovalNotPending:
                return ""

        winners = [w for w in await asyncio.gather(*(decide(f"u{i}") for i in range(6))) if w]
        assert len(winners) == 1
        assert (await store.get_approval("req-1")).decided_by == winners[0]


class PayloadsConformance:
    async def test_json_payloads_round_trip(self, store: Store) -> None:
        payload = {
            "unicode": "héllo ✓ 日本 \U0001f600",
            "escapes": 'quote" backslash\\ nul\u0000 newline\n',
            "numbers": [0, -1, 2**62, 1.5, 1e20, -0.25],
            "nested": {"a": [{"b": None}, True, False]},
            "empty": [{}, [], ""],
        }
        await store.create_run(make_run(input=payload, output=[payload]))
        got = await store.get_run("run-1")
        assert got.input == payload and got.output == [payload]
        assert type(got.input["numbers"][4]) is float

    async def test_scalar_payloads_round_trip(self, store: Store) -> None:
        await store.create_run(make_run())
        for i, value in enumerate([None, 0, "text", 2.5, True, [1, "a"]]):
            await store.record_step(make_step(f"k{i}", input=value, output=value))
        assert [(s.input, s.output) for s in await store.steps("run-1")] == [
            (v, v) for v in [None, 0, "text", 2.5, True, [1, "a"]]
        ]

    async def test_non_json_payloads_are_refused_and_write_nothing(self, store: Store) -> None:
        with pytest.raises(PayloadNotJSON):
            await store.create_run(make_run(input={"when": T0}))
        with pytest.raises(PayloadNotJSON):
            await store.create_run(make_run(input={"x": float("nan")}))
        with pytest.raises(UnknownRun):
            await store.get_run("run-1")
        await store.create_run(make_run())
        with pytest.raises(PayloadNotJSON):
            await store.record_step(make_step(output=object()))
        with pytest.raises(PayloadNotJSON):
            await store.update_run("run-1", status="succeeded", output={1j})
        assert await store.steps("run-1") == []
        assert (await store.get_run("run-1")).status == "running"

    async def test_stored_payloads_do_not_alias_the_caller(self, store: Store) -> None:
        data = {"items": [1]}
        await store.create_run(make_run(input=data))
        data["items"].append(2)
        got = await store.get_run("run-1")
        assert got.input == {"items": [1]}
        got.input["items"].append(3)
        assert (await store.get_run("run-1")).input == {"items": [1]}

    async def test_timestamps_come_back_aware_in_utc(self, store: Store) -> None:
        local = datetime(2025, 6, 1, 16, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
        await store.create_run(make_run(created_at=local, updated_at=local))
        got = await store.get_run("run-1")
        assert got.created_at == local and got.created_at.utcoffset() == timedelta(0)


class LifecycleConformance:
    async def test_schema_version_is_current(self, store: Store) -> None:
        assert await store.schema_version() == SCHEMA_VERSION

    async def test_a_closed_store_refuses_calls_and_can_reopen(self, backend: Any) -> None:
        store = backend.make()
        with pytest.raises(StoreUnavailable):
            await store.get_run("run-1")
        async with store:
            await store.open()  # idempotent
            await store.create_run(make_run())
        await store.close()  # idempotent
        with pytest.raises(StoreUnavailable):
            await store.list_runs()
        async with store:  # the same instance reopens on the same data
            assert [r.run_id for r in await store.list_runs()] == ["run-1"]

    async def test_data_survives_reopen(self, backend: Any) -> None:
        if not backend.durable:
            pytest.skip(f"{backend.name} keeps nothing across store instances")
        async with backend.make() as first:
            await first.create_run(make_run())
            await first.record_step(make_step(status="succeeded", output="kept"))
            await first.append_events("run-1", make_events(1, 3))
            await first.create_approval(make_approval())
        async with backend.make() as second:
            assert (await second.get_run("run-1")).input == {"question": "why?"}
            assert (await second.completed_steps("run-1"))["chain[0]/writer"].output == "kept"
            assert await second.last_event_seq("run-1") == 3
            assert [a.request_id for a in await second.pending_approvals("run-1")] == ["req-1"]
            assert await second.schema_version() == SCHEMA_VERSION

    async def test_concurrent_tasks_all_land(self, store: Store) -> None:
        runs = [make_run(f"run-{i}") for i in range(8)]
        await asyncio.gather(*(store.create_run(r) for r in runs))

        async def work(run_id: str) -> None:
            for n in range(10):
                await store.record_step(make_step(f"s{n}", run_id=run_id, status="succeeded"))
            await store.append_events(run_id, make_events(1, 5, run_id=run_id))

        await asyncio.gather(*(work(r.run_id) for r in runs))
        for run in runs:
            assert len(await store.completed_steps(run.run_id)) == 10
            assert await store.last_event_seq(run.run_id) == 5

    async def test_a_refused_write_does_not_undo_concurrent_ones(self, store: Store) -> None:
        await store.create_run(make_run())
        good = [store.record_step(make_step(f"k{i}")) for i in range(5)]
        bad = [store.record_step(make_step("x", run_id="nope")), store.create_run(make_run())]
        results = await asyncio.gather(*good, *bad, return_exceptions=True)
        assert [type(r) for r in results[5:]] == [UnknownRun, DuplicateRecord]
        assert len(await store.steps("run-1")) == 5


def _fields(record: ApprovalRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


class StoreConformance(
    RunsConformance,
    StepsConformance,
    EventsConformance,
    StepWithEventsConformance,
    RunStatusesConformance,
    ApprovalsConformance,
    PayloadsConformance,
    LifecycleConformance,
):
    """Every conformance test; a store passes when all of them do."""
