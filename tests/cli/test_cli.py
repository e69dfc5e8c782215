"""The CLI over a real SQLite journal: demo, runs, show, approve, resume, cancel, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrion.cli.main import app

FLOW = f"{Path(__file__).parent / 'approval_flow.py'}:build"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRION_STORE", f"sqlite:///{tmp_path / 'journal.db'}")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_demo_runs_the_support_workflow_and_journals_it(cli):
    out = cli("demo")
    for piece in ("triage", "parallel", "refine[1]", "cost per agent", "decisions", "succeeded"):
        assert piece in out
    runs = json.loads(cli("runs", "--json"))
    assert len(runs) == 3 and {r["status"] for r in runs} == {"succeeded"}
    assert all(r["ref"] == "orchestrion.examples.support_triage:build" for r in runs)
    shown = json.loads(cli("show", runs[0]["run_id"], "--json"))
    assert shown["steps"] and shown["output"]["subject"].startswith("Re:")


def test_demo_json_reports_usage_per_agent(cli):
    (billing,) = json.loads(cli("demo", "--ticket", "billing", "--json"))
    assert billing["status"] == "succeeded"
    assert billing["usage"]["usd"] > 0
    assert set(billing["usage_by_agent"]) >= {"triage", "writer", "reviewer"}


def test_pause_approve_with_edit_then_resume(cli):
    started = json.loads(cli("run", FLOW, "--input", '{"text": "draft"}', "--json", code=0))
    assert started["status"] == "paused"
    run_id = started["run_id"]
    shown = json.loads(cli("show", run_id, "--json"))
    (pending,) = shown["pending"]
    assert pending["action"]["prompt"] == "edit the draft"
    decided = json.loads(cli("approve", run_id, "--edit", '{"text": "final"}', "--by", "dana",
                             "--json"))
    assert decided["status"] == "edited" and decided["decided_by"] == "dana"
    cli("approve", run_id, code=2)  # nothing pending any more
    done = json.loads(cli("resume", run_id, "--json"))
    assert done["status"] == "succeeded" and done["output"] == {"text": "FINAL"}
    cli("resume", run_id, code=2)  # succeeded runs do not resume


def test_cancel_a_paused_run(cli):
    run_id = json.loads(cli("run", FLOW, "--input", '{"text": "x"}', "--json"))["run_id"]
    assert json.loads(cli("cancel", run_id, "--json"))["status"] == "cancelled"
    assert "RunNotResumable" in cli("resume", run_id, code=2)


def test_bad_input_gets_typed_errors_and_exit_codes(cli):
    assert "UnknownRun" in cli("show", "run_missing", code=2)
    assert "InputError" in cli("run", FLOW, "--input", '{"txt": 1}', code=2)
    assert "not JSON" in cli("run", FLOW, "--input", "{nope", code=2)
    assert "MODULE:ATTRIBUTE" in cli("check", "no_colon", code=2)
    assert "ok" in cli("check", FLOW)


def test_explain_names_the_culprit_of_a_journaled_failure(cli):
    flow = f"{Path(__file__).parent / 'faulty_flow.py'}:build"
    failed = json.loads(cli("run", flow, "--input", '{"n": 3}', "--json", code=1))
    x = json.loads(cli("explain", failed["run_id"], "--json"))
    assert x["status"] == "failed"
    # relay handed on the value sink could not accept: the fault is blamed on its producer
    assert (x["culprit_step"], x["culprit_agent"]) == ("chain[1]/relay", "relay")
    assert "n must be positive" in x["cause"]
    assert "bad-input" in cli("explain", failed["run_id"])


def test_expire_ends_runs_whose_approval_wait_is_over(cli):
    import time

    flow = f"{Path(__file__).parent / 'approval_flow.py'}:build_expiring"
    run_id = json.loads(cli("run", flow, "--input", '{"text": "x"}', "--json"))["run_id"]
    time.sleep(0.05)
    (ended,) = json.loads(cli("expire", "--json"))
    assert ended["run_id"] == run_id and ended["status"] == "failed"
    assert "expired" in ended["error"]
    assert json.loads(cli("expire", "--json")) == []
