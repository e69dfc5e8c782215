"""orchestrion: an orchestration-first runtime for multi-agent LLM systems.

Declare the pattern and the typed contracts, run the whole flow on stub agents,
then swap in real agents one at a time while the runtime checks, guards,
journals, prices and secures every hand-off.

The front door is deliberately small (pinned by ``tests/test_front_door.py``);
everything else lives in its room: ``orchestrion.errors``, ``orchestrion.patterns``,
``orchestrion.providers``, ``orchestrion.guards``, ``orchestrion.store`` ...
"""

from orchestrion.agents.function import agent
from orchestrion.agents.human import HumanAgent
from orchestrion.agents.llm import LLMAgent
from orchestrion.agents.stub import StubAgent
from orchestrion.agents.tool import tool
from orchestrion.contracts.contract import Contract
from orchestrion.errors import OrchestrionError
from orchestrion.guards.budget import Budget
from orchestrion.guards.retry import Retry
from orchestrion.patterns import (
    chain,
    debate,
    handoff,
    judge,
    mixture,
    orchestrate,
    parallel,
    refine,
    route,
    vote,
)
from orchestrion.providers.scripted import ScriptedProvider
from orchestrion.runtime.policy import Policy
from orchestrion.runtime.result import RunResult
from orchestrion.workflow import Workflow

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Contract",
    "HumanAgent",
    "LLMAgent",
    "OrchestrionError",
    "Policy",
    "Retry",
    "RunResult",
    "ScriptedProvider",
    "StubAgent",
    "Workflow",
    "agent",
    "chain",
    "debate",
    "handoff",
    "judge",
    "mixture",
    "orchestrate",
    "parallel",
    "refine",
    "route",
    "tool",
    "vote",
]
