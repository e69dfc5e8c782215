"""Human agent: asks a person for the output through an approval request.

The first time the step runs, the run pauses with a pending request (the
payload, the prompt and the JSON schema of the expected answer).  In a durable
run (``orchestrion.Runner``) the request is an approval record in the journal and
the answer is its edited action (``orchestrion approve RUN --edit JSON``); in a
plain in-memory run, answers are passed to ``Workflow.run(answers={step: ...})``.
Either way the answer is validated against the contract like any agent's output.
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
        ask = getattr(run.checkpoint, "ask_human", None)
        if ask is not None:  # durable runs: the request and the answer live in the journal
            return await ask(run, ctx.key, self.name, self.prompt, input,
                             self.contract.output.model_json_schema())
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
