"""ScriptedProvider: a deterministic, offline provider for tests, demos and stub runs.

Public API.  Responses come from a list (one per request, in order) or from a
function of the request.  It fails loudly: a request past the end of the script
raises :class:`ScriptExhausted`, and :meth:`assert_exhausted` reports scripted
responses that were never requested.

Token usage is a documented deterministic count (:func:`estimate_tokens`: one
token per 4 characters, rounded up): input tokens are
:func:`estimate_request_tokens` of the request, output tokens count the response
text and the JSON of its tool-call arguments.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from orchestrion.cost.usage import Usage
from orchestrion.errors import ScriptExhausted
from orchestrion.providers.base import (
    ModelRequest,
    ModelResponse,
    ToolCall,
    estimate_request_tokens,
    estimate_tokens,
)

Scripted = str | dict | list | BaseModel | ModelResponse | ToolCall | BaseException
Responder = Callable[[ModelRequest], Any]


class ScriptedProvider:
    """Answers requests from a script.

    Items may be: text (``str``); a dict or BaseModel (sent as its JSON text); a
    :class:`ToolCall` or a list of them (a tool-calling turn); a full
    :class:`ModelResponse`; an exception instance (raised, to inject faults); or a
    callable ``f(request)`` returning any of these.
    """

    def __init__(
        self,
        responses: Sequence[Any] | Responder = (),
        *,
        model: str = "scripted",
        context_window: int = 128_000,
        latency_s: float = 0.0,
    ) -> None:
        self.model = model
        self.context_window = context_window
        self.latency_s = latency_s
        self._fn: Responder | None = responses if callable(responses) else None
        self._script: list[Any] = [] if callable(responses) else list(responses)
        self.requests: list[ModelRequest] = []

    @property
    def calls(self) -> int:
        """How many requests were made."""
        return len(self.requests)

    def remaining(self) -> int:
        """Scripted responses not yet requested (0 for function-driven providers)."""
        return max(0, len(self._script) - len(self.requests)) if self._fn is None else 0

    def assert_exhausted(self) -> None:
        """Raise ScriptExhausted if scripted responses were never requested (a missing call)."""
        if self.remaining():
            raise ScriptExhausted(
                f"{self.remaining()} scripted response(s) of {self.model!r} were never requested",
                hint="the flow made fewer model calls than scripted; check the path it took",
            )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        index = len(self.requests)
        self.requests.append(request)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self._fn is not None:
            item = self._fn(request)
        elif index < len(self._script):
            item = self._script[index]
        else:
            last = request.messages[-1].content[:200] if request.messages else ""
            raise ScriptExhausted(
                f"scripted provider {self.model!r} got request #{index + 1} but has only "
                f"{len(self._script)} response(s); last message: {last!r}",
                hint="add a response to the script, or find out why the flow made an extra call",
            )
        if callable(item) and not isinstance(item, type | BaseModel):
            item = item(request)
        if isinstance(item, BaseException):
            raise item
        return self._respond(item, request)

    def _respond(self, item: Any, request: ModelRequest) -> ModelResponse:
        if isinstance(item, ModelResponse):
            if item.usage:
                return item
            return ModelResponse(item.text, item.tool_calls, self._usage(request, item.text,
                                 item.tool_calls), item.model or self.model, item.finish_reason)
        calls: tuple[ToolCall, ...] = ()
        text = ""
        if isinstance(item, ToolCall):
            calls = (item,)
        elif isinstance(item, list) and item and all(isinstance(c, ToolCall) for c in item):
            calls = tuple(item)
        elif isinstance(item, BaseModel):
            text = item.model_dump_json()
        elif isinstance(item, dict | list):
            text = json.dumps(item)
        elif isinstance(item, str):
            text = item
        else:
            raise TypeError(f"cannot use {type(item).__name__} as a scripted response")
        return ModelResponse(
            text=text,
            tool_calls=calls,
            usage=self._usage(request, text, calls),
            model=self.model,
            finish_reason="tool_calls" if calls else "stop",
        )

    @staticmethod
    def _usage(request: ModelRequest, text: str, calls: Sequence[ToolCall]) -> Usage:
        out = estimate_tokens(text) + sum(
            estimate_tokens(c.name) + estimate_tokens(json.dumps(c.arguments)) for c in calls
        )
        return Usage(estimate_request_tokens(request), out, 1)


def _scripted_factory(model: str, **overrides: Any) -> ScriptedProvider:
    """``scripted:MODEL`` with ``responses=`` passed as an override."""
    return ScriptedProvider(model=model, **overrides)


def _register() -> None:
    from orchestrion.providers.resolve import register_provider

    register_provider("scripted", _scripted_factory)


_register()
