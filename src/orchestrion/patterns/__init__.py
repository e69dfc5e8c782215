"""Patterns: one per file, all with the same shape, all composable (children are flows)."""

from orchestrion.patterns.base import Flow, Node
from orchestrion.patterns.chain import chain
from orchestrion.patterns.debate import debate
from orchestrion.patterns.handoff import handoff
from orchestrion.patterns.merge import escalate, judge, vote
from orchestrion.patterns.mixture import mixture
from orchestrion.patterns.orchestrate import Plan, Task, orchestrate
from orchestrion.patterns.parallel import parallel
from orchestrion.patterns.refine import refine
from orchestrion.patterns.route import route
from orchestrion.patterns.step import step

__all__ = [
    "Flow",
    "Node",
    "Plan",
    "Task",
    "chain",
    "debate",
    "escalate",
    "handoff",
    "judge",
    "mixture",
    "orchestrate",
    "parallel",
    "refine",
    "route",
    "step",
    "vote",
]
