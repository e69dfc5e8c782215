"""Registry: the closed world of agents and tools a workflow may use.

Every delegation resolves through it.  An unknown name is a typed error naming
the caller, the step and the known names: never ignored, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrion.agents.base import AgentLike
from orchestrion.agents.tool import Tool
from orchestrion.errors import DefinitionError, UnknownAgent, UnknownTool


class Registry:
    """Agents and tools by name. Names are unique across each kind."""

    __slots__ = ("_agents", "_tools")

    def __init__(self, agents: Iterable[AgentLike] = (), tools: Iterable[Tool] = ()) -> None:
        self._agents: dict[str, AgentLike] = {}
        self._tools: dict[str, Tool] = {}
        for a in agents:
            self.add_agent(a)
        for t in tools:
            self.add_tool(t)

    def add_agent(self, agent: AgentLike) -> None:
        if not isinstance(agent, AgentLike):
            raise DefinitionError(
                f"{agent!r} is not an agent",
                hint="an agent needs .name, .contract and async run(input, ctx)",
            )
        if agent.name in self._agents and self._agents[agent.name] is not agent:
            raise DefinitionError(f"two agents are named {agent.name!r}",
                                  hint="give each agent a unique name")
        self._agents[agent.name] = agent

    def add_tool(self, tool: Tool) -> None:
        if tool.name in self._tools and self._tools[tool.name] is not tool:
            raise DefinitionError(f"two tools are named {tool.name!r}",
                                  hint="give each tool a unique name")
        self._tools[tool.name] = tool

    def agent(self, name: str, *, caller: str | None = None, step: str | None = None) -> AgentLike:
        """The agent called ``name``, or UnknownAgent naming the caller, step and known names."""
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(name, known=self._agents, caller=caller, step=step) from None

    def tool(self, name: str, *, caller: str | None = None, step: str | None = None) -> Tool:
        """The tool called ``name``, or UnknownTool naming the caller, step and known names."""
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name, known=self._tools, caller=caller, step=step) from None

    def has_agent(self, name: str) -> bool:
        return name in self._agents

    def has_tool(self, name: str) -> bool:
        return name in self._tools

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(self._agents)

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def agents(self) -> tuple[AgentLike, ...]:
        return tuple(self._agents.values())

    def tools(self) -> tuple[Tool, ...]:
        return tuple(self._tools.values())
