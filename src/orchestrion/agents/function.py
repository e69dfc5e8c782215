"""Function agents: a decorator turning a typed Python function into an agent."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, get_type_hints

from pydantic import BaseModel

from orchestrion.agents.base import Agent
from orchestrion.contracts.contract import Check, CheckResult, Contract
from orchestrion.errors import ContractDefinitionError
from orchestrion.guards.retry import Retry


class FunctionAgent(Agent):
    """An agent whose body is a Python function ``f(input) -> output`` or ``f(input, ctx)``.

    Sync functions run inline on the event loop (keep them quick and non-blocking;
    wrap blocking work in ``asyncio.to_thread`` inside an async function).
    """

    def __init__(self, fn: Callable[..., Any], contract: Contract, *, name: str, **kw: Any):
        super().__init__(name, contract, **kw)
        self.fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._takes_ctx = len(inspect.signature(fn).parameters) >= 2

    async def run(self, input: Any, ctx: Any) -> Any:
        result = self.fn(input, ctx) if self._takes_ctx else self.fn(input)
        if self._is_async:
            result = await result
        return result


def contract_from_signature(fn: Callable[..., Any]) -> tuple[type[BaseModel], type[BaseModel]]:
    """(input model, output model) from ``fn``'s first parameter and return annotations."""
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters)
    if not params:
        raise ContractDefinitionError(
            f"agent function {fn.__name__!r} takes no input",
            hint="declare the input as the first parameter, annotated with a BaseModel",
        )
    inp, out = hints.get(params[0]), hints.get("return")
    for side, model in (("input parameter", inp), ("return", out)):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ContractDefinitionError(
                f"agent function {fn.__name__!r}: the {side} must be annotated with a "
                f"pydantic BaseModel, got {model!r}",
                hint="annotate e.g. def f(q: Question) -> Answer",
            )
    return inp, out  # type: ignore[return-value]


def agent(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str = "",
    checks: Sequence[Check | Callable[[Any], CheckResult]] = (),
    tools: Sequence[str] = (),
    timeout_s: float | None = None,
    retry: Retry | None = None,
    max_repairs: int | None = None,
    idempotent: bool = True,
    max_output_chars: int = 200_000,
) -> Any:
    """Decorator: ``@agent`` turns ``def f(x: In[, ctx]) -> Out`` into a :class:`FunctionAgent`."""

    def wrap(f: Callable[..., Any]) -> FunctionAgent:
        inp, out = contract_from_signature(f)
        contract = Contract(inp, out, checks=checks, max_output_chars=max_output_chars,
                            description=description or (inspect.getdoc(f) or ""))
        return FunctionAgent(f, contract, name=name or f.__name__, tools=tools,
                             timeout_s=timeout_s, retry=retry, max_repairs=max_repairs,
                             idempotent=idempotent)

    return wrap(fn) if fn is not None else wrap
