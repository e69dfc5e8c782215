"""The ``orchestrion`` command line: thin, over the public API, rendered with rich."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from orchestrion.cli.render import run_report
from orchestrion.workflow import Workflow

DEMO_REF = "orchestrion.examples.support_triage:build"

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Orchestration-first runtime for multi-agent LLM systems.")
console = Console()


def load_workflow(spec: str) -> Workflow:
    """Load ``module:attribute`` (or ``path/to/file.py:attribute``); call it if it is a factory."""
    if ":" not in spec:
        console.print(f"[red]bad workflow reference {spec!r}[/]: use MODULE:ATTRIBUTE, "
                      "e.g. myapp.flows:support")
        raise typer.Exit(2)
    module_name, attr = spec.rsplit(":", 1)
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = getattr(module, attr, None)
    if obj is None:
        raise typer.BadParameter(f"{module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, Workflow):
        obj = obj()
    if not isinstance(obj, Workflow):
        raise typer.BadParameter(f"{spec} is a {type(obj).__name__}, not a Workflow")
    return obj


@app.command()
def demo(
    ticket: Annotated[str, typer.Option(help="billing, technical, general or all")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    store: Annotated[str | None, typer.Option("--store", help="journal URL (default: "
                                              "$ORCHESTRION_STORE or the embedded SQLite file)")]
    = None,
) -> None:
    """Run the support-triage workflow (route, parallel research, writer/reviewer refine)
    offline on scripted providers, and show the step tree, decisions and cost per agent."""
    from orchestrion.examples.support_triage import SAMPLE_TICKETS, build

    names = list(SAMPLE_TICKETS) if ticket == "all" else [ticket]
    unknown = [n for n in names if n not in SAMPLE_TICKETS]
    if unknown:
        raise typer.BadParameter(f"unknown ticket {unknown[0]!r}; choose from "
                                 f"{', '.join(SAMPLE_TICKETS)} or all")
    from orchestrion.cli.runs_cmd import store_url
    from orchestrion.durable import Runner
    from orchestrion.store import open_store

    workflow = build()
    bound = workflow.estimate()
    if not as_json:
        console.print(f"[bold]pre-flight worst case[/] of one run (every retry, repair and "
                      f"tool round used, every prompt at its limit): {bound.calls} calls, "
                      f"{bound.requests} model requests, ${bound.usd or 0:.4f}; "
                      f"run budget ${workflow.policy.budget.usd}")
    async def go() -> list[Any]:
        async with open_store(store_url(store)) as journal:
            runner = Runner(journal)
            return [await runner.run(build(), SAMPLE_TICKETS[n], ref=DEMO_REF) for n in names]

    results = asyncio.run(go())
    if not as_json:
        for name, result in zip(names, results, strict=True):
            console.rule(f"ticket: {name}")
            console.print(run_report(result))
        console.print("[dim]journaled: `orchestrion runs`, `orchestrion show RUN`[/]")
    if as_json:
        print(json.dumps([result_json(r) for r in results], indent=2, default=str))
    if any(not r.ok for r in results):
        raise typer.Exit(1)


def result_json(result: Any) -> dict[str, Any]:
    from orchestrion.contracts.contract import dump_payload

    return {
        "run_id": result.run_id,
        "status": result.status,
        "output": dump_payload(result.output),
        "error": None if result.error is None else str(result.error),
        "usage": result.usage.to_dict(),
        "usage_by_agent": {k: v.to_dict() for k, v in result.usage_by_agent.items()},
        "steps": [{"key": s.key, "agent": s.agent, "status": s.status, "attempts": s.attempts,
                   "duration_ms": round(s.duration_s * 1000, 3), **s.usage.to_dict()}
                  for s in result.steps],
    }


@app.command()
def check(spec: Annotated[str, typer.Argument(help="MODULE:ATTRIBUTE of a Workflow")]) -> None:
    """Statically check a workflow: names, loop bounds, type-compatible edges, reachability."""
    workflow = load_workflow(spec)
    report = workflow.check()
    if report.ok:
        console.print(f"[green]ok[/]: {workflow.name} has no problems")
        return
    for problem in report.problems:
        console.print(f"[red]{problem.code}[/] {problem.where}: {problem.message}"
                      + (f"\n    [dim]{problem.hint}[/]" if problem.hint else ""))
    raise typer.Exit(1)


@app.command()
def estimate(spec: Annotated[str, typer.Argument(help="MODULE:ATTRIBUTE of a Workflow")]) -> None:
    """Worst-case calls, requests, tokens, dollars and seconds of one run, before running."""
    console.print_json(data=load_workflow(spec).estimate().to_dict())


@app.command()
def run(
    spec: Annotated[str, typer.Argument(help="MODULE:ATTRIBUTE of a Workflow")],
    input_json: Annotated[str, typer.Option("--input", help="run input as JSON")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    store: Annotated[str | None, typer.Option("--store", help="journal URL (default: "
                                              "$ORCHESTRION_STORE or the embedded SQLite file)")]
    = None,
) -> None:
    """Run a workflow once on a JSON input, journaled (so it can pause and resume)."""
    from orchestrion.cli.runs_cmd import with_store
    from orchestrion.durable import Runner

    workflow = load_workflow(spec)
    try:
        payload = json.loads(input_json)
    except json.JSONDecodeError as exc:
        console.print(f"[red]--input is not JSON[/]: {exc}")
        raise typer.Exit(2) from exc
    result = with_store(store, lambda s: Runner(s).run(workflow, payload, ref=spec))
    if as_json:
        print(json.dumps(result_json(result), indent=2, default=str))
    else:
        console.print(run_report(result))
    if result.status == "failed":
        raise typer.Exit(1)


from orchestrion.cli.runs_cmd import register as _register_runs  # noqa: E402

_register_runs(app)

if __name__ == "__main__":
    app()
