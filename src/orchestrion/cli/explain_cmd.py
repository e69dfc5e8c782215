"""Body of ``orchestrion explain RUN``: the root cause of a run, rendered with rich.

The command itself is wired in ``cli/main.py`` once the journal can load a run
(``RunResult``) by id; this module only turns a result into a renderable.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrion.runtime.result import RunResult
from orchestrion.tracing.explain import Explanation, explain

_FLAG_STYLE = {"violated": "yellow", "bad-input": "red", "tainted": "magenta", "contested": "cyan"}


def explain_command(result: RunResult) -> RenderableType:
    """The explanation of ``result`` as a rich renderable (a panel, plus flagged steps)."""
    x = explain(result)
    parts: list[RenderableType] = [_summary(x)]
    if x.suspects:
        parts.append(_suspects(x))
    border = (
        "green"
        if x.failing_step is None and result.ok
        else ("yellow" if result.status == "paused" else "red")
    )
    return Panel(
        Group(*parts),
        title=f"explain {x.run_id} ({x.status})",
        border_style=border,
        title_align="left",
    )


def _summary(x: Explanation) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    if x.failing_step is not None:
        table.add_row(
            "failing step",
            Text.assemble(
                (x.failing_step, "bold red"),
                f"  {x.failing_agent or '-'}",
                (f"  {x.error_type}" if x.error_type else "", "dim"),
            ),
        )
    if x.culprit_step is not None:
        table.add_row(
            "culprit", Text.assemble((x.culprit_step, "bold"), f"  agent {x.culprit_agent or '-'}")
        )
    table.add_row("cause", x.cause)
    if len(x.path) > 1:
        table.add_row("path", " → ".join(x.path))
    if x.hint:
        table.add_row("next", Text(x.hint, style="green"))
    return table


def _suspects(x: Explanation) -> Table:
    table = Table(title="flagged on the path", title_justify="left", show_edge=False)
    for col in ("step", "agent", "flag", "detail"):
        table.add_column(col)
    for s in x.suspects:
        table.add_row(
            s.step, s.agent or "-", Text(s.flag, style=_FLAG_STYLE.get(s.flag, "")), s.detail[:120]
        )
    return table
