"""Workflow: flow + registry + policy, the deployable unit.

``check()`` runs before every run and reports every problem at once; no run
starts while one remains.  ``estimate()`` bounds cost and latency from the
structure before anything is spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from orchestrion.agents.base import AgentLike
from orchestrion.agents.tool import Tool
from orchestrion.cost.bounds import Bound
from orchestrion.cost.prices import price_of
from orchestrion.errors import CheckFailed, Problem
from orchestrion.patterns.base import CheckContext, Flow, as_node
from orchestrion.runtime import events as ev
from orchestrion.runtime.context import Checkpoint, Journal
from orchestrion.runtime.policy import Policy
from orchestrion.runtime.registry import Registry
from orchestrion.runtime.result import RunResult
from orchestrion.runtime.run import execute


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The outcome of the static check: problems, the flow's input/output models, its bound."""

    problems: tuple[Problem, ...]
    input_model: type[BaseModel] | None
    output_model: type[BaseModel] | None
    bound: Bound

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise CheckFailed(self.problems)


class Workflow:
    """A flow, the agents and tools it may use, and the policy it runs under."""

    def __init__(
        self,
        flow: Flow,
        *,
        agents: Iterable[AgentLike] = (),
        tools: Iterable[Tool] = (),
        policy: Policy | None = None,
        name: str = "workflow",
        input: type[BaseModel] | None = None,
    ) -> None:
        self.flow = as_node(flow)
        self.registry = Registry(agents, tools)
        self.policy = policy or Policy()
        self.name = name
        self._declared_input = input
        self._report: CheckReport | None = None
        self._hash: str | None = None

    # ------------------------------------------------------------------ static

    @property
    def input_model(self) -> type[BaseModel] | None:
        return self._declared_input or self.flow.entry(self.registry)

    def check(self) -> CheckReport:
        """Check the whole workflow; every problem is reported, none is fatal here."""
        cc = CheckContext(self.registry, self.policy)
        input_model = self.input_model
        if input_model is None:
            cc.problem("no-input-model", "(root)", "cannot tell the workflow's input model",
                       "pass Workflow(input=Model) or start the flow with a registered agent")
        cc.produced(input_model, "the workflow input")
        output = self.flow.check(cc, input_model, "")
        self._check_agents(cc)
        self._report = CheckReport(tuple(cc.problems), input_model, output, self.flow.bound(cc))
        return self._report

    def _check_agents(self, cc: CheckContext) -> None:
        used = set(self.flow.agents())
        for agent in self.registry.agents():
            for tool in getattr(agent, "tools", ()):
                if not self.registry.has_tool(tool):
                    cc.problem("unknown-tool", agent.name, f"agent {agent.name!r} is granted "
                               f"tool {tool!r}, which is not registered",
                               f"known tools: {', '.join(self.registry.tool_names) or '(none)'}")
            if self.policy.budget.usd is not None and agent.name in used:
                provider = getattr(agent, "provider", None)
                model = getattr(provider, "model", None)
                if model is not None and price_of(model) is None:
                    cc.problem("unpriced-model", agent.name,
                               f"a usd budget is set but model {model!r} of agent "
                               f"{agent.name!r} has no price",
                               "add one with orchestrion.register_price(model, in, out)")

    def ensure_checked(self) -> CheckReport:
        """The cached check report; raises CheckFailed if it has problems."""
        report = self._report or self.check()
        report.raise_for_problems()
        return report

    def estimate(self) -> Bound:
        """Worst-case calls, requests, tokens, usd and seconds of one run, from the structure."""
        return (self._report or self.check()).bound

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the flow, agents, tools and policy."""
        return {
            "name": self.name,
            "flow": self.flow.describe(),
            "agents": {a.name: {"type": type(a).__name__,
                                "input": a.contract.input.__name__,
                                "output": a.contract.output.__name__,
                                "input_schema": a.contract.input.model_json_schema(),
                                "output_schema": a.contract.output.model_json_schema(),
                                "tools": list(getattr(a, "tools", ()))}
                       for a in self.registry.agents()},
            "tools": {t.name: {"effects": sorted(t.effects), "trusted": t.trusted_output,
                               "schema": t.schema()} for t in self.registry.tools()},
            "policy": repr(self.policy),
        }

    def definition_hash(self) -> str:
        """A stable hash of the definition (a resumed run must match it).

        Computed once: building every agent's JSON schemas costs milliseconds, and a
        workflow does not change after it is built.
        """
        if self._hash is None:
            text = json.dumps(self.describe(), sort_keys=True, default=str)
            self._hash = hashlib.sha256(text.encode()).hexdigest()[:32]
        return self._hash

    # ------------------------------------------------------------------ running

    async def run(
        self,
        input: Any,
        *,
        deps: Any = None,
        run_id: str | None = None,
        tainted: bool = False,
        journal: Journal | None = None,
        checkpoint: Checkpoint | None = None,
        answers: dict[str, Any] | None = None,
        listeners: Sequence[Callable[[ev.Event], None]] = (),
    ) -> RunResult:
        """Run once. Bad input raises InputError; run failures are on the result."""
        return await execute(self, input, run_id=run_id, deps=deps, tainted=tainted,
                             journal=journal, checkpoint=checkpoint, answers=answers,
                             listeners=listeners)

    def run_sync(self, input: Any, **kw: Any) -> RunResult:
        """Blocking shim over :meth:`run`."""
        return asyncio.run(self.run(input, **kw))
