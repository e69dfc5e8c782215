"""HITL levels 0-4 as policy data (the report's Exhibit 5), declared per workflow.

====  =====================  ==================================================
level name                   what the runtime does
====  =====================  ==================================================
0     autonomous             nothing: no human in the loop
1     checkpoint approval    pause for approval at the named checkpoints
2     exception handling     level 1, plus: escalate a failed step (a human may
                             supply the output) and outputs whose confidence is
                             below ``threshold``
3     supervised autonomy    never pause (human agents aside); checkpoints, failures
                             and low confidence raise alerts to an inbox, at most
                             ``alert_budget`` per run so humans are not flooded
4     human-directed         every agent action is proposed and needs approval
====  =====================  ==================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Gate:
    """A checkpoint: steps whose agent name or step key matches ``match`` (a glob whose
    only wildcards are ``*`` and ``?``),
    approved ``before`` they run (the input is the proposal) or ``after`` (the output)."""

    match: str
    when: Literal["before", "after"] = "before"
    prompt: str = ""

    def applies(self, agent: str, key: str) -> bool:
        # Only * and ? are wildcards: brackets are literal, as in step keys (refine[0]).
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                        for c in self.match)
        return bool(re.fullmatch(regex, agent) or re.fullmatch(regex, key))


@dataclass(frozen=True, slots=True, kw_only=True)
class Hitl:
    """Human-in-the-loop policy. ``expires_after_s`` bounds how long a request waits."""

    level: Literal[0, 1, 2, 3, 4] = 0
    gates: tuple[Gate, ...] = ()
    confidence_field: str = "confidence"
    threshold: float = 0.7
    alert_budget: int = 10
    expires_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.level not in (0, 1, 2, 3, 4):
            raise ValueError(f"Hitl.level must be 0-4, got {self.level}")
        if self.alert_budget < 0:
            raise ValueError("Hitl.alert_budget must be >= 0")
        if self.level == 1 and not self.gates:
            raise ValueError("Hitl(level=1) needs gates=(Gate('agent-or-key-glob'),)")

    def gate(self, agent: str, key: str, when: str) -> Gate | None:
        """The first gate that applies to this step at ``when``."""
        for g in self.gates:
            if g.when == when and g.applies(agent, key):
                return g
        return None


AUTONOMOUS = Hitl(level=0)
