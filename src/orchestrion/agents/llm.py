"""The built-in LLM agent: instructions + provider + contract, over the Provider protocol.

Its prompt carries the typed input payload as JSON, never the transcript of
earlier agents (the main source of super-linear cost in multi-agent systems).
It asks for the output schema, parses and validates the answer, and on a
malformed answer feeds the error back for a bounded number of repairs.  Tools
are optional, with a bounded number of tool rounds; every tool call goes
through the runtime's choke point.

Before every request the agent checks that the prompt fits: the model's context
window minus ``max_tokens`` (and ``max_input_tokens``).  Over it, the agent's
``overflow`` policy acts (see :mod:`orchestrion.guards.context_window`): fail
with a typed :class:`ContextOverflow`, prune the oldest tool results and
exchanges, or have a declared summarizer agent condense them.  The provider never
receives a request known to be too large.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrion.agents.base import Agent
from orchestrion.contracts.contract import Contract, format_validation_errors
from orchestrion.cost.bounds import Bound
from orchestrion.cost.prices import price_of
from orchestrion.errors import (
    ContextOverflow,
    ContractViolation,
    EmptyOutput,
    MalformedOutput,
    OutputTooLarge,
    ToolRoundsExceeded,
)
from orchestrion.guards import context_window as cw
from orchestrion.guards.retry import Retry
from orchestrion.providers.base import (
    Message,
    ModelRequest,
    ModelSettings,
    Provider,
    ToolSpec,
    estimate_request_tokens,
)
from orchestrion.runtime import events as ev


class LLMAgent(Agent):
    """An agent backed by a model.

    ``provider`` is a Provider or a provider string such as ``"openai:gpt-4o-mini"``.
    ``max_repairs`` bounds re-asks after unparseable or schema-invalid output;
    ``max_tool_rounds`` bounds tool-calling turns; ``max_input_tokens`` bounds the
    prompt of each request (and so the pre-flight cost bound).  ``overflow`` says
    what happens when a prompt would not fit (``"fail"``, ``"prune"`` or
    ``"summarize"`` with the agent named by ``summarizer``).
    """

    def __init__(
        self,
        name: str,
        *,
        instructions: str,
        provider: Provider | str,
        contract: Contract,
        tools: Sequence[str] = (),
        max_tool_rounds: int = 4,
        max_repairs: int = 2,
        max_input_tokens: int = 16_000,
        settings: ModelSettings | None = None,
        description: str = "",
        timeout_s: float | None = None,
        retry: Retry | None = None,
        idempotent: bool = True,
        overflow: cw.Overflow = "fail",
        summarizer: str | None = None,
    ) -> None:
        if overflow not in cw.OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {cw.OVERFLOW_POLICIES}, got {overflow!r}")
        if overflow == "summarize" and not summarizer:
            raise ValueError("overflow='summarize' needs summarizer='<agent name>'")
        super().__init__(name, contract, description=description, tools=tools,
                         timeout_s=timeout_s, retry=retry, max_repairs=max_repairs,
                         idempotent=idempotent)
        if isinstance(provider, str):
            from orchestrion.providers.resolve import resolve_provider

            provider = resolve_provider(provider)
        self.provider = provider
        self.instructions = instructions
        self.max_tool_rounds = max_tool_rounds
        self.parse_repairs = max_repairs
        self.max_input_tokens = max_input_tokens
        self.settings = settings or ModelSettings()
        self.overflow = overflow
        self.summarizer = summarizer
        self._schema = contract.output.model_json_schema()
        self._system = (
            f"{instructions.strip()}\n\n"
            "Answer with a single JSON object and nothing else. It must validate against "
            f"this JSON Schema:\n{json.dumps(self._schema, separators=(',', ':'))}"
        )

    # ------------------------------------------------------------------ run

    async def run(self, input: Any, ctx: Any) -> Any:
        messages: list[Message] = [
            Message("system", self._system),
            Message("user", _payload_text(input)),
        ]
        if ctx.feedback is not None:
            previous = ctx.feedback.output
            prev_text = previous.model_dump_json() if isinstance(previous, BaseModel) else str(
                previous)
            messages += [Message("assistant", prev_text), Message("user", ctx.feedback.message())]
        specs = self._tool_specs(ctx)
        rounds = 0
        repairs = 0
        while True:
            request = ModelRequest(messages=tuple(messages), tools=specs,
                                   output_schema=self._schema,
                                   output_name=self.contract.output.__name__,
                                   settings=self.settings)
            request = await self._fit(request, ctx)
            messages = list(request.messages)  # later rounds build on what was sent
            response = await ctx.complete(self.provider, request)
            if response.tool_calls:
                rounds += 1
                if rounds > self.max_tool_rounds:
                    raise ToolRoundsExceeded(
                        f"{self.name!r} requested tools for more than {self.max_tool_rounds} "
                        "round(s)", step=ctx.key, agent=self.name,
                        hint="raise max_tool_rounds or tell the agent when to stop using tools")
                messages.append(Message("assistant", response.text, tool_calls=response.tool_calls))
                for call in response.tool_calls:
                    result = await self._run_tool(ctx, call.name, call.arguments)
                    messages.append(Message("tool", result, tool_call_id=call.id, name=call.name))
                continue
            try:
                return self._parse(response.text, ctx)
            except MalformedOutput as err:
                if repairs >= self.parse_repairs:
                    raise
                repairs += 1
                messages += [
                    Message("assistant", response.text[:4000]),
                    Message("user", f"That answer was rejected: {err.message}. Reply with only "
                                    "a JSON object that validates against the schema."),
                ]

    # ------------------------------------------------------------------ helpers

    def _parse(self, text: str, ctx: Any) -> BaseModel:
        raw = text.strip()
        if not raw:
            raise EmptyOutput("the model returned an empty answer", step=ctx.key, agent=self.name)
        limit = self.contract.max_output_chars
        if limit and len(raw) > limit:
            raise OutputTooLarge(len(raw), limit, step=ctx.key, agent=self.name)
        body = _strip_fences(raw)
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise MalformedOutput(f"the answer is not JSON ({exc.msg} at char {exc.pos})",
                                  raw=raw, step=ctx.key, agent=self.name) from None
        try:
            return self.contract.output.model_validate(data)
        except ValidationError as exc:
            errs = "; ".join(format_validation_errors(exc)[:8])
            raise MalformedOutput(f"the answer does not match the schema: {errs}", raw=raw,
                                  step=ctx.key, agent=self.name) from None

    def _tool_specs(self, ctx: Any) -> tuple[ToolSpec, ...]:
        registry = ctx.run.registry
        specs = []
        for name in self.tools:
            t = registry.tool(name, caller=self.name, step=ctx.key)
            specs.append(ToolSpec(t.name, t.description, t.schema()))
        return tuple(specs)

    async def _run_tool(self, ctx: Any, name: str, arguments: Any) -> str:
        """Run a tool; bad arguments go back to the model as the tool result so it can fix them."""
        try:
            result = await ctx.use(name, dict(arguments))
        except ContractViolation as err:
            return json.dumps({"error": err.message})
        return _payload_text(result)

    async def _fit(self, request: ModelRequest, ctx: Any) -> ModelRequest:
        """``request`` if it fits the input limit, else what the overflow policy makes of it."""
        limit, why = cw.input_limit(self.provider, self.settings.max_tokens,
                                    self.max_input_tokens)
        size = estimate_request_tokens(request)
        if size <= limit:
            return request
        fit = cw.Fit(request, size, size)
        if self.overflow == "summarize":
            fit = await self._summarize(request, limit, ctx)
        if fit.after > limit and self.overflow != "fail":
            pruned = cw.prune(fit.request, limit)
            fit = cw.Fit(pruned.request, size, pruned.after, pruned.elided, pruned.dropped,
                         fit.summarized)
        if fit.after > limit:
            raise self._overflow(fit, limit, why, ctx)
        ctx.run.emit(ev.Decision, step=ctx.key, pattern="context_window",
                     chosen=(self.overflow,), rejected=(), reason=fit.describe(limit))
        return fit.request

    async def _summarize(self, request: ModelRequest, limit: int, ctx: Any) -> cw.Fit:
        """Replace the middle of the conversation by the summarizer agent's summary."""
        before = estimate_request_tokens(request)
        text, count = cw.middle_text(request)
        if not count:
            return cw.Fit(request, before, before)
        budget = max(64, limit - (before - (len(text) + 3) // 4))
        assert self.summarizer is not None  # checked in __init__
        out = await ctx.call(self.summarizer, {"text": text, "max_tokens": budget})
        shorter = cw.summarized(request, cw.summary_text(out))
        return cw.Fit(shorter, before, estimate_request_tokens(shorter), summarized=count)

    def _overflow(self, fit: cw.Fit, limit: int, why: str, ctx: Any) -> ContextOverflow:
        head, _ = cw.split(fit.request.messages)
        floor = estimate_request_tokens(ModelRequest(
            messages=tuple(head), tools=fit.request.tools,
            output_schema=fit.request.output_schema, settings=fit.request.settings))
        hint = None
        if floor > limit:
            hint = (f"the instructions, schema and typed payload alone are ~{floor} tokens: "
                    "bound the producer's output (Contract(max_output_chars=...)) or use a "
                    "model with a larger window")
        elif self.overflow == "fail":
            hint = ("declare overflow='prune' or overflow='summarize' on the agent, or lower "
                    "max_tool_rounds")
        return ContextOverflow(
            f"request of ~{fit.after} input tokens exceeds the limit of {limit} ({why}); "
            f"overflow policy {self.overflow!r}"
            + (f" got it down from ~{fit.before}" if fit.changed else ""),
            limit=limit, measured=fit.after, step=ctx.key, agent=self.name, hint=hint)

    def bound(self, *, timeout_s: float | None) -> Bound:
        requests = (1 + self.parse_repairs) * (1 + self.max_tool_rounds)
        per_request = self.max_input_tokens + self.settings.max_tokens
        price = price_of(self.provider.model)
        usd = None if price is None else requests * price.cost(self.max_input_tokens,
                                                                self.settings.max_tokens)
        return Bound(calls=1 + len(self.tools) * self.max_tool_rounds, requests=requests,
                     tokens=requests * per_request, usd=usd, seconds=timeout_s)


def _payload_text(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _strip_fences(text: str) -> str:
    """Accept ```json ... ``` fenced answers, which many models produce despite instructions."""
    if text.startswith("```"):
        first_nl = text.find("\n")
        end = text.rfind("```")
        if first_nl != -1 and end > first_nl:
            return text[first_nl + 1 : end].strip()
    return text
