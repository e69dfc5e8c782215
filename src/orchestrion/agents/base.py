"""The Agent protocol and the base class every built-in agent derives from.

An agent is anything with ``async run(input, ctx) -> output`` plus a name and a
contract.  The runtime calls it only through the choke point, which validates the
input before and the output after, so an agent body can trust its typed input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from orchestrion.contracts.contract import Contract
from orchestrion.cost.bounds import Bound
from orchestrion.guards.retry import Retry

if TYPE_CHECKING:
    from orchestrion.runtime.context import StepContext


@runtime_checkable
class AgentLike(Protocol):
    """What the runtime needs from an agent."""

    name: str
    contract: Contract

    async def run(self, input: Any, ctx: StepContext) -> Any: ...


class Agent(ABC):
    """Base class for agents: name, contract, granted tools, and per-agent policy overrides.

    ``tools`` are the tool names this agent may use (its capabilities);
    ``idempotent=False`` marks agents with external effects that must not be
    repeated blindly on resume; ``timeout_s``, ``retry`` and ``max_repairs``
    override the workflow policy for this agent.
    """

    def __init__(
        self,
        name: str,
        contract: Contract,
        *,
        description: str = "",
        tools: Sequence[str] = (),
        timeout_s: float | None = None,
        retry: Retry | None = None,
        max_repairs: int | None = None,
        idempotent: bool = True,
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError(
                f"agent name {name!r} must be non-empty and use letters, digits, '_', '-', '.'"
            )
        self.name = name
        self.contract = contract
        self.description = description or contract.description
        self.tools = tuple(tools)
        self.timeout_s = timeout_s
        self.retry = retry
        self.max_repairs = max_repairs
        self.idempotent = idempotent

    @abstractmethod
    async def run(self, input: Any, ctx: StepContext) -> Any:
        """Produce an output for ``input``; the runtime validates it against the contract."""

    def bound(self, *, timeout_s: float | None) -> Bound:
        """Worst-case cost of one invocation. Plain code agents cost one call and no tokens."""
        return Bound(calls=1, requests=0, tokens=0, usd=0.0, seconds=timeout_s)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, "
                f"{self.contract.input.__name__} -> {self.contract.output.__name__})")
