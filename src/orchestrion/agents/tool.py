"""Tools: typed functions agents may call, with declared effects and output trust.

A tool's arguments are a Pydantic model, built from the function signature when
not given.  ``effects`` (read, write, delete, execute, network, spend) and
``trusted_output`` are declared from the start so the choke point can enforce
capabilities and taint: output of an untrusted tool (a fetched page, a search
result) taints every envelope derived from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model


class Effect(StrEnum):
    """What a tool does to the world. Anything but READ is a privileged effect."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    EXECUTE = "execute"
    NETWORK = "network"
    SPEND = "spend"


PRIVILEGED = frozenset({Effect.WRITE, Effect.DELETE, Effect.EXECUTE, Effect.NETWORK, Effect.SPEND})


class Tool:
    """A named, typed, effect-declaring callable."""

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any] | Callable[..., Awaitable[Any]],
        *,
        args: type[BaseModel] | None = None,
        description: str = "",
        effects: Iterable[Effect | str] = (Effect.READ,),
        trusted_output: bool = True,
        idempotent: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.args = args or args_model_from_signature(name, fn)
        self.description = description or inspect.getdoc(fn) or ""
        self.effects = frozenset(Effect(e) for e in effects)
        self.trusted_output = trusted_output
        self.idempotent = idempotent and not (self.effects & {Effect.SPEND, Effect.DELETE})
        self.timeout_s = timeout_s
        self._is_async = inspect.iscoroutinefunction(fn)
        self._takes_model = args is not None

    @property
    def privileged(self) -> bool:
        return bool(self.effects & PRIVILEGED)

    def schema(self) -> dict[str, Any]:
        """JSON Schema of the arguments (what a model sees)."""
        return self.args.model_json_schema()

    async def invoke(self, arguments: BaseModel) -> Any:
        """Call the implementation with validated arguments."""
        if self._takes_model:
            result = self.fn(arguments)
        else:
            result = self.fn(**{k: getattr(arguments, k) for k in type(arguments).model_fields})
        if self._is_async or inspect.isawaitable(result):
            result = await result
        return result

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, effects={sorted(self.effects)})"


def args_model_from_signature(name: str, fn: Callable[..., Any]) -> type[BaseModel]:
    """A Pydantic model of ``fn``'s keyword parameters (annotations required)."""
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name!r}: *args/**kwargs are not supported; name each argument")
        if pname not in hints:
            raise TypeError(f"tool {name!r}: parameter {pname!r} needs a type annotation")
        default = ... if param.default is param.empty else param.default
        fields[pname] = (hints[pname], default)
    model_name = "".join(p.capitalize() for p in name.replace("-", "_").split("_")) + "Args"
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    effects: Iterable[Effect | str] = (Effect.READ,),
    trusted_output: bool = True,
    idempotent: bool = True,
    timeout_s: float | None = None,
    description: str = "",
) -> Any:
    """Decorator: ``@tool(effects=["network"], trusted_output=False)`` makes a :class:`Tool`."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(
            name or f.__name__,
            f,
            effects=effects,
            trusted_output=trusted_output,
            idempotent=idempotent,
            timeout_s=timeout_s,
            description=description,
        )

    return wrap(fn) if fn is not None else wrap
