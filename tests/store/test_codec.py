"""Records, the action hash and the JSON codec, without any store."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrion.store import PayloadNotJSON, RunRecord, action_hash, codec
from orchestrion.store.records import EventRecord, StepRecord

from .conformance import T0, make_approval, make_run


def test_the_action_hash_ignores_key_order_and_sees_every_value() -> None:
    a = {"tool": "pay", "args": {"to": "bob", "usd": 10}}
    assert action_hash(a) == action_hash({"args": {"usd": 10, "to": "bob"}, "tool": "pay"})
    assert action_hash(a) != action_hash({"tool": "pay", "args": {"to": "bob", "usd": 11}})
    assert action_hash(a).startswith("sha256:") and len(action_hash(a)) == 7 + 64


def test_the_action_hash_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(PayloadNotJSON):
        action_hash({"x": float("inf")})


def test_records_refuse_unknown_statuses_and_naive_times() -> None:
    with pytest.raises(ValueError, match="status"):
        make_run(status="exploded")
    with pytest.raises(ValueError, match="timezone-aware"):
        make_run(created_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        EventRecord(run_id="r", seq=1, kind="k", at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="status"):
        StepRecord(run_id="r", key="k", attempt=1, agent="a", input=None, status="done")  # type: ignore[arg-type]


def test_records_are_frozen_keyword_only_values() -> None:
    run = make_run()
    with pytest.raises(AttributeError):
        run.status = "failed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        RunRecord("r", "w", "h", {}, "t")  # type: ignore[misc]
    assert not run.finished and make_run(status="cancelled").finished


def test_an_approval_knows_when_it_expires() -> None:
    approval = make_approval(expires_at=T0)
    assert approval.is_expired(T0) and not make_approval().is_expired(T0)


@pytest.mark.parametrize("time", [codec.ISO_TIME, codec.NATIVE_TIME], ids=["iso", "native"])
def test_rows_round_trip_through_both_time_codecs(time: codec.TimeCodec) -> None:
    run = make_run(output={"a": [1, 2.5, None]}, error={"type": "X"}, parent_run_id="p")
    assert codec.run_from_row(codec.run_row(run, time), time) == run
    approval = make_approval(expires_at=T0, reason="why")
    assert codec.approval_from_row(codec.approval_row(approval, time), time) == approval


def test_iso_timestamps_sort_chronologically() -> None:
    early, late = T0.replace(microsecond=0), T0.replace(microsecond=1)
    assert codec.ISO_TIME.dump(early) < codec.ISO_TIME.dump(late)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(payload=_json, data=st.dictionaries(st.text(), _json, max_size=4))
def test_any_json_value_round_trips(payload: object, data: dict[str, object]) -> None:
    step = StepRecord(run_id="r", key="k", attempt=1, agent="a", input=payload, output=payload,
                      provenance=data)  # fmt: skip
    assert codec.step_from_row(codec.step_row(step, codec.ISO_TIME), codec.ISO_TIME) == step
    assert action_hash(payload) == action_hash(json.loads(json.dumps(payload)))
