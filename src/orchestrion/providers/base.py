"""The Provider protocol: one small surface every LLM adapter implements.

A provider turns a :class:`ModelRequest` (messages, tools, an optional output JSON
schema, settings) into a :class:`ModelResponse` (text, tool calls, usage).  Agents
never talk to SDKs directly; the runtime prices and budgets every request through
``ctx.complete(provider, request)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from orchestrion.cost.usage import Usage

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call tool ``name`` with JSON ``arguments``."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``tool_calls`` on assistant messages; ``tool_call_id`` on tool ones."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Sampling settings. ``max_tokens`` also bounds the budget reservation."""

    max_tokens: int = 1024
    temperature: float | None = None
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything a provider needs for one completion."""

    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    output_schema: Mapping[str, Any] | None = None
    output_name: str = "output"
    settings: ModelSettings = ModelSettings()


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """One completion: text and/or tool calls, with the usage the provider reported."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    model: str = ""
    finish_reason: str = "stop"


@runtime_checkable
class Provider(Protocol):
    """An LLM adapter. ``model`` names the model for pricing; ``context_window`` in tokens."""

    model: str
    context_window: int

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Return one completion for ``request``; raise ProviderError subclasses on failure."""
        ...


def estimate_tokens(text: str) -> int:
    """The documented deterministic token estimate: one token per 4 characters, rounded up.

    Used by ScriptedProvider for its reported usage and by the runtime for budget
    reservations before a call (real providers report their own counts afterwards).
    """
    return (len(text) + 3) // 4


def estimate_request_tokens(request: ModelRequest) -> int:
    """Input-token estimate of a request: messages, tool-call arguments, tool and output schemas."""
    import json

    total = 0
    for m in request.messages:
        total += estimate_tokens(m.content) + 4  # per-message framing
        for call in m.tool_calls:
            total += estimate_tokens(call.name) + estimate_tokens(json.dumps(call.arguments))
    for tool in request.tools:
        total += estimate_tokens(tool.name + tool.description) + estimate_tokens(
            json.dumps(tool.parameters, separators=(",", ":"))
        )
    if request.output_schema is not None:
        total += estimate_tokens(json.dumps(request.output_schema, separators=(",", ":")))
    return total
