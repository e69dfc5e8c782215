"""Journal commands: runs, show, explain, resume, approve, cancel (each with ``--json``).

They work on the journal named by ``--store`` (or ``$ORCHESTRION_STORE``; by
default the embedded SQLite file).  ``resume`` needs the workflow: it is loaded
from the ``module:attribute`` reference the run was started with (``--workflow``
overrides it).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from orchestrion.cli.render import run_report, steps_tree
from orchestrion.durable import Runner
from orchestrion.errors import OrchestrionError
from orchestrion.runtime.journal import journaled_step
from orchestrion.store import ApprovalRecord, RunRecord, Store, open_store

console = Console()
T = TypeVar("T")

StoreOpt = Annotated[str | None, typer.Option("--store", help="journal URL (default: "
                                              "$ORCHESTRION_STORE or the embedded SQLite file)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def store_url(url: str | None) -> str | None:
    return url or os.environ.get("ORCHESTRION_STORE") or None


def with_store(url: str | None, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open the journal, run ``fn``, close it; typed errors become a clean exit code 2."""

    async def go() -> T:
        async with open_store(store_url(url)) as store:
            return await fn(store)

    try:
        return asyncio.run(go())
    except OrchestrionError as exc:
        console.print(f"[red]{type(exc).__name__}[/]: {exc}")
        raise typer.Exit(2) from exc


def run_json(run: RunRecord) -> dict[str, Any]:
    return {"run_id": run.run_id, "workflow": run.workflow, "status": run.status,
            "created_at": run.created_at.isoformat(), "updated_at": run.updated_at.isoformat(),
            "input": run.input, "output": run.output, "error": run.error, "usage": run.usage,
            "ref": run.metadata.get("ref"), "definition_hash": run.definition_hash}


def approval_json(a: ApprovalRecord) -> dict[str, Any]:
    return {"request_id": a.request_id, "step": a.step_key, "status": a.status,
            "action": a.action, "expires_at": a.expires_at.isoformat() if a.expires_at else None,
            "decided_by": a.decided_by, "edited_action": a.edited_action, "reason": a.reason}


def register(app: typer.Typer) -> None:
    """Add the journal commands to the CLI app."""

    @app.command()
    def runs(store: StoreOpt = None, status: Annotated[str | None, typer.Option()] = None,
             limit: Annotated[int, typer.Option()] = 20, as_json: JsonOpt = False) -> None:
        """List journaled runs, newest first."""
        records = with_store(store, lambda s: s.list_runs(status=status, limit=limit))  # type: ignore[arg-type]
        if as_json:
            print(json.dumps([run_json(r) for r in records], indent=2, default=str))
            return
        table = Table(show_edge=False)
        for col in ("run", "workflow", "status", "updated", "usd", "error"):
            table.add_column(col)
        for r in records:
            updated = r.updated_at.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(r.run_id, r.workflow, r.status, updated,
                          f"${float(r.usage.get('usd', 0) or 0):.5f}",
                          (r.error or {}).get("message", "")[:60])
        console.print(table)

    @app.command()
    def show(run_id: str, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
        """Show a run: status, step tree, pending approvals, output or error."""

        async def load(s: Store) -> tuple[RunRecord, list[Any], list[ApprovalRecord]]:
            return (await s.get_run(run_id), await s.steps(run_id),
                    await s.pending_approvals(run_id))

        run, steps, pending = with_store(store, load)
        if as_json:
            print(json.dumps({**run_json(run), "steps": [
                {"key": st.key, "agent": st.agent, "attempt": st.attempt, "status": st.status,
                 "usage": st.usage, "error": st.error, "provenance": st.provenance}
                for st in steps], "pending": [approval_json(a) for a in pending]},
                indent=2, default=str))
            return
        console.print(steps_tree(run.workflow, run.status, run.run_id,
                                 [journaled_step(st) for st in steps]))
        for a in pending:
            console.print(f"[yellow]waiting[/] {a.request_id} at {a.step_key}: "
                          f"{a.action.get('prompt', '')}")
        if run.error:
            console.print(f"[red]{run.error.get('type')}[/]: {run.error.get('message')}")
        elif run.output is not None:
            console.print_json(data=run.output)

    @app.command()
    def resume(run_id: str, store: StoreOpt = None,
               workflow: Annotated[str | None, typer.Option(help="MODULE:ATTRIBUTE")] = None,
               force: Annotated[bool, typer.Option(help="replay a changed definition")] = False,
               as_json: JsonOpt = False) -> None:
        """Resume a paused, interrupted or failed run: completed steps are replayed."""
        from orchestrion.cli.main import load_workflow, result_json

        async def go(s: Store) -> Any:
            run = await s.get_run(run_id)
            ref = workflow or run.metadata.get("ref")
            if not ref:
                raise typer.BadParameter("the run has no workflow reference; pass --workflow")
            return await Runner(s).resume(run_id, load_workflow(ref), force=force)

        result = with_store(store, go)
        if as_json:
            print(json.dumps(result_json(result), indent=2, default=str))
        else:
            console.print(run_report(result))
        if result.status == "failed":
            raise typer.Exit(1)

    @app.command()
    def approve(run_id: str, store: StoreOpt = None,
                request: Annotated[str | None, typer.Option(help="request id, if several")] = None,
                reject: Annotated[bool, typer.Option("--reject")] = False,
                edit: Annotated[str | None, typer.Option(help="edited action as JSON")] = None,
                by: Annotated[str, typer.Option(help="who decides")] = os.environ.get(
                    "USER", "cli"),
                reason: Annotated[str | None, typer.Option()] = None,
                as_json: JsonOpt = False) -> None:
        """Approve (or --reject, or --edit JSON) a pending request of a run."""
        if reject and edit is not None:
            raise typer.BadParameter("use either --reject or --edit, not both")
        edited = None
        if edit is not None:
            try:
                edited = json.loads(edit)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(f"--edit is not JSON: {exc}") from exc
        decision = "rejected" if reject else "edited" if edit is not None else "approved"

        async def go(s: Store) -> ApprovalRecord:
            pending = await s.pending_approvals(run_id)
            chosen = [a for a in pending if request in (None, a.request_id)]
            if not chosen:
                raise typer.BadParameter(f"run {run_id} has no pending request"
                                         + (f" {request}" if request else ""))
            if len(chosen) > 1:
                ids = ", ".join(f"{a.request_id} ({a.step_key})" for a in chosen)
                raise typer.BadParameter(f"run {run_id} has {len(chosen)} pending requests: "
                                         f"{ids}; choose one with --request")
            return await Runner(s).decide(chosen[0].request_id, decision=decision, by=by,
                                          edited=edited, reason=reason)

        decided = with_store(store, go)
        if as_json:
            print(json.dumps(approval_json(decided), indent=2, default=str))
        else:
            console.print(f"{decided.request_id}: [bold]{decided.status}[/] by {decided.decided_by}"
                          f"; continue with `orchestrion resume {run_id}`")

    @app.command()
    def explain(run_id: str, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
        """Root cause of a run: failing step, culprit step and agent, path, what to do next."""
        from orchestrion.cli.explain_cmd import explain_command
        from orchestrion.tracing.explain import explain as explain_result

        result = with_store(store, lambda s: Runner(s).result(run_id))
        if as_json:
            x = explain_result(result)
            print(json.dumps({"run_id": run_id, "status": result.status,
                              "failing_step": x.failing_step, "culprit_step": x.culprit_step,
                              "culprit_agent": x.culprit_agent, "cause": x.cause,
                              "path": list(x.path), "hint": x.hint}, indent=2, default=str))
        else:
            console.print(explain_command(result))

    @app.command()
    def expire(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
        """Fail paused runs whose approval requests are past their expiry (run it from cron)."""
        from orchestrion.cli.main import load_workflow

        def workflow_of(run: RunRecord) -> Any:
            ref = run.metadata.get("ref")
            if not ref:
                raise typer.BadParameter(f"run {run.run_id} has no workflow reference")
            return load_workflow(ref)

        results = with_store(store, lambda s: Runner(s).expire_overdue(workflow_of))
        if as_json:
            print(json.dumps([{"run_id": r.run_id, "status": r.status,
                               "error": None if r.error is None else str(r.error)}
                              for r in results], indent=2))
        else:
            for r in results:
                console.print(f"{r.run_id}: [bold]{r.status}[/] {r.error or ''}")
            console.print(f"{len(results)} run(s) ended by expired approvals")

    @app.command()
    def cancel(run_id: str, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
        """Cancel a run: no new step starts; the journal stays consistent."""
        run = with_store(store, lambda s: Runner(s).cancel(run_id))
        if as_json:
            print(json.dumps(run_json(run), indent=2, default=str))
        else:
            console.print(f"{run.run_id}: [bold]{run.status}[/]")
