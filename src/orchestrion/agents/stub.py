"""Stub agents: contract-derived stand-ins, so the whole flow runs before any real agent.

A stub returns deterministic, seeded, schema-valid outputs generated from its
contract's output model.  Script it per call with a list (values, dicts,
callables of the input, or exceptions to raise) to steer a test through a
particular path, e.g. an invalid first output followed by a valid repair.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from orchestrion.agents.base import Agent
from orchestrion.contracts.contract import Contract
from orchestrion.contracts.stubs import stub_value
from orchestrion.errors import ScriptExhausted


class StubAgent(Agent):
    """A contract-derived agent. ``script`` items are used in order, one per call:

    * a BaseModel / dict / JSON string: returned as the output (validated by the runtime)
    * a callable ``f(input) -> output`` (sync or async): called with the typed input
    * an exception instance: raised (to inject faults)
    * ``...`` (Ellipsis): a generated stub value

    When the script runs out, generated values follow unless ``strict=True``,
    in which case an unexpected call fails loudly.
    """

    def __init__(
        self,
        name: str,
        contract: Contract,
        *,
        script: Sequence[Any] = (),
        seed: int = 0,
        strict: bool = False,
        delay_s: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(name, contract, **kw)
        self.script = list(script)
        self.seed = seed
        self.strict = strict
        self.delay_s = delay_s
        self.calls = 0
        self.inputs: list[Any] = []

    async def run(self, input: Any, ctx: Any) -> Any:
        index = self.calls
        self.calls += 1
        self.inputs.append(input)
        if self.delay_s:
            import asyncio

            await asyncio.sleep(self.delay_s)
        if index < len(self.script):
            item = self.script[index]
        elif self.strict:
            raise ScriptExhausted(
                f"stub {self.name!r} got call #{index + 1} but its script has {len(self.script)}",
                hint="add a script entry for this call or drop strict=True",
            )
        else:
            item = ...
        if item is ...:
            return stub_value(self.contract.output, seed=self.seed, index=index)
        if isinstance(item, BaseException):
            raise item
        if callable(item) and not isinstance(item, type | BaseModel):
            fn: Callable[[Any], Any] = item
            result = fn(input)
            return await result if inspect.isawaitable(result) else result
        return item


def stub(name: str, input: type[BaseModel], output: type[BaseModel], **kw: Any) -> StubAgent:
    """Shorthand: ``stub("writer", Brief, Draft, script=[...])``."""
    return StubAgent(name, Contract(input, output), **kw)
