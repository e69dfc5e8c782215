"""Human agent: asks a person for the output through an approval request.

The first time the step runs, the run pauses with a pending request (the
payload, the prompt and the JSON schema of the expected answer).  When the run is
resumed with an answer for that step, the answer is validated against the
contract like any other agent's output.  The full HITL machinery (levels,
expiry, edits) builds on this in ``orchestrion.hitl``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from orchestrion.agents.base import Agent
from orchestrion.contracts.contract import Contract, dump_payload
from orchestrion.errors import ApprovalRequired
from orchestrion.runtime import events as ev


def request_id_for(run_id: str, step: str) -> str:
    """Deterministic id of the human request at ``step`` of ``run_id``."""
    return "apr_" + hashlib.sha256(f"{run_id}|{step}".encode()).hexdigest()[:16]


class HumanAgent(Agent):
    """An agent whose output comes from a person."""

    def __init__(self, name: str, contract: Contract, *, prompt: str, **kw: Any) -> None:
        super().__init__(name, contract, **kw)
        self.prompt = prompt

    async def run(self, input: Any, ctx: Any) -> Any:
        run = ctx.run
        if ctx.key in run.answers:
            return run.answers[ctx.key]
        request_id = request_id_for(run.run_id, ctx.key)
        run.pending.append({
            "request_id": request_id,
            "step": ctx.key,
            "agent": self.name,
            "prompt": self.prompt,
            "payload": dump_payload(input),
            "answer_schema": self.contract.output.model_json_schema(),
        })
        run.emit(ev.ApprovalRequested, step=ctx.key, request_id=request_id, prompt=self.prompt)
        raise ApprovalRequired(request_id, step=ctx.key, prompt=self.prompt)
