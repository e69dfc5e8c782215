"""Rich rendering of runs: the step tree with timings, tokens and cost, and cost per agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from orchestrion.runtime.records import StepRecord
from orchestrion.runtime.result import RunResult

_STATUS_STYLE = {"succeeded": "green", "replayed": "cyan", "failed": "red",
                 "cancelled": "yellow"}


def _split_key(key: str) -> list[str]:
    return [p for p in key.split("/") if p]


def step_tree(result: RunResult) -> Tree:
    """The run's steps as a tree keyed by their flow path."""
    return steps_tree(result.workflow, result.status, result.run_id, result.steps)


def steps_tree(workflow: str, status: str, run_id: str, steps: Sequence[StepRecord]) -> Tree:
    """Steps as a tree keyed by their flow path, under a header line for the run."""
    colour = {"succeeded": "green", "failed": "red", "paused": "yellow"}.get(status, "white")
    root = Tree(Text.assemble((f"{workflow} ", "bold"), (status, f"bold {colour}"),
                              f"  run {run_id}"))
    nodes: dict[tuple[str, ...], Tree] = {(): root}
    for rec in sorted(steps, key=lambda r: r.started_at):
        parts = _split_key(rec.key)
        for depth in range(1, len(parts)):
            path = tuple(parts[:depth])
            if path not in nodes:
                nodes[path] = nodes[path[:-1]].add(Text(parts[depth - 1], style="dim"))
        nodes[tuple(parts)] = nodes[tuple(parts[:-1])].add(_step_label(rec, parts[-1]))
    return root


def _step_label(rec: StepRecord, leaf: str) -> Text:
    style = _STATUS_STYLE.get(rec.status, "white")
    label = Text.assemble((leaf, f"bold {style}"))
    if rec.target == "tool":
        label.append("  tool", style="magenta")
    label.append(f"  {rec.duration_s * 1000:.1f} ms", style="dim")
    if rec.usage.tokens:
        label.append(f"  {rec.usage.input_tokens}+{rec.usage.output_tokens} tok")
    if rec.usage.usd:
        label.append(f"  ${rec.usage.usd:.5f}")
    if rec.attempts > 1:
        label.append(f"  {rec.attempts} attempts", style="yellow")
    if rec.provenance.get("tainted"):
        label.append("  tainted", style="bold magenta")
    if rec.error:
        label.append(f"  {rec.error_type}: {rec.error[:120]}", style="red")
    return label


def cost_table(result: RunResult) -> Table:
    """Calls, tokens and dollars per agent, with the total."""
    table = Table(title="cost per agent", title_justify="left", show_edge=False)
    for col, justify in (("agent", "left"), ("calls", "right"), ("requests", "right"),
                         ("in tok", "right"), ("out tok", "right"), ("usd", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name in sorted(result.calls_by_agent):
        u = result.usage_by_agent.get(name)
        table.add_row(name, str(result.calls_by_agent[name]),
                      str(u.requests if u else 0), str(u.input_tokens if u else 0),
                      str(u.output_tokens if u else 0), f"${u.usd:.5f}" if u else "$0")
    t = result.usage
    table.add_row("total", str(result.calls), str(t.requests), str(t.input_tokens),
                  str(t.output_tokens), f"${t.usd:.5f}", style="bold")
    return table


def decisions(result: RunResult) -> Table:
    """Every decision of route/orchestrate/handoff/merge, with what was rejected and why."""
    table = Table(title="decisions", title_justify="left", show_edge=False)
    for col in ("step", "pattern", "chosen", "rejected", "reason"):
        table.add_column(col)
    for e in result.events_of("decision"):
        table.add_row(e.step, e.pattern, ", ".join(e.chosen), ", ".join(e.rejected),  # type: ignore[attr-defined]
                      e.reason[:80])  # type: ignore[attr-defined]
    return table


def output_panel(result: RunResult) -> Panel:
    if result.status == "succeeded":
        body: Any = _pretty(result.output)
        return Panel(body, title="output", border_style="green")
    if result.status == "paused":
        lines = [f"{p['step']}: {p['prompt']} (request {p['request_id']})" for p in result.pending]
        return Panel("\n".join(lines), title="waiting for a human", border_style="yellow")
    err = result.error
    text = str(err) if err is not None else result.status
    return Panel(text, title=f"{type(err).__name__ if err else result.status}",
                 border_style="red")


def _pretty(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    return str(value)


def run_report(result: RunResult) -> Group:
    """Everything a person wants to see about a finished run."""
    return Group(step_tree(result), Text(""), decisions(result), Text(""), cost_table(result),
                 Text(f"wall time {result.duration_s * 1000:.1f} ms", style="dim"),
                 output_panel(result))
