"""Contract: what an agent receives, what it must produce, and what counts as failure."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, RootModel, ValidationError

from orchestrion.errors import ContractDefinitionError

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

CheckResult = bool | str | None
"""A check returns True/None when the output is fine, False or a message when it is not."""


@dataclass(frozen=True, slots=True)
class Check:
    """A named extra check on an output beyond its schema ("what counts as failure")."""

    name: str
    fn: Callable[[Any], CheckResult]

    def run(self, value: Any) -> str | None:
        """Return None when the check passes, else a message naming the check."""
        try:
            verdict = self.fn(value)
        except Exception as exc:  # a check that raises is a failed check, with its reason
            return f"{self.name}: raised {type(exc).__name__}: {exc}"
        if verdict is None or verdict is True:
            return None
        if verdict is False:
            return f"{self.name}: failed"
        return f"{self.name}: {verdict}"


def check(fn: Callable[[Any], CheckResult] | None = None, *, name: str | None = None):
    """Decorator turning a function into a named :class:`Check`."""

    def wrap(f: Callable[[Any], CheckResult]) -> Check:
        return Check(name or f.__name__, f)

    return wrap(fn) if fn is not None else wrap


class Text(RootModel[str]):
    """A plain-text payload, for agents whose contract is just a string."""


@dataclass(frozen=True)
class Contract(Generic[In, Out]):
    """Input model, output model, extra checks and output limits of one agent.

    ``checks`` run after schema validation; any failure is a contract violation
    attributed to the producing step.  ``max_output_chars`` bounds the serialized
    output size (huge outputs are a failure mode of their own).
    """

    input: type[In]
    output: type[Out]
    checks: Sequence[Check | Callable[[Any], CheckResult]] = ()
    max_output_chars: int = 200_000
    description: str = ""
    _checks: tuple[Check, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        for side, model in (("input", self.input), ("output", self.output)):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ContractDefinitionError(
                    f"contract {side} must be a pydantic BaseModel subclass, got {model!r}",
                    hint="wrap plain types in a model, e.g. class Answer(BaseModel): text: str",
                )
        normalized = tuple(
            c if isinstance(c, Check) else Check(getattr(c, "__name__", "check"), c)
            for c in self.checks
        )
        object.__setattr__(self, "_checks", normalized)

    # ------------------------------------------------------------------ validation

    def coerce_input(self, value: Any) -> In:
        """Turn ``value`` into the input model; raises pydantic ValidationError."""
        return coerce(self.input, value)  # type: ignore[return-value]

    def validate_output(self, value: Any) -> tuple[Out | None, list[str]]:
        """Validate an output: (model, []) when fine, (maybe-model, errors) when not."""
        try:
            out = coerce(self.output, value)
        except ValidationError as exc:
            return None, format_validation_errors(exc)
        except (ValueError, TypeError) as exc:
            return None, [str(exc)]
        errors = [msg for c in self._checks if (msg := c.run(out)) is not None]
        return out, errors  # type: ignore[return-value]

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the input model."""
        return self.input.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        """JSON Schema of the output model."""
        return self.output.model_json_schema()


def coerce(model: type[BaseModel], value: Any) -> BaseModel:
    """Convert ``value`` (instance, other model, dict, or JSON text) into ``model``."""
    if type(value) is model:
        return value
    if isinstance(value, BaseModel):
        # A structurally compatible model from another agent: revalidate its data.
        return model.model_validate(value.model_dump())
    if isinstance(value, str | bytes) and not issubclass(model, RootModel):
        return model.model_validate_json(value)
    return model.model_validate(value)


def format_validation_errors(exc: ValidationError) -> list[str]:
    """Short, stable lines like ``items.0.qty: Input should be a valid integer``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        lines.append(f"{loc}: {err.get('msg', 'invalid')}")
    return lines


def dump_payload(value: Any) -> Any:
    """JSON-able form of a payload (models dumped in JSON mode)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def payload_json(value: Any) -> str:
    """Canonical JSON text of a payload, for fingerprints, signatures and sizes."""
    if isinstance(value, BaseModel):
        # What model_dump_json() does with its defaults, without its keyword plumbing.
        return type(value).__pydantic_serializer__.to_json(value).decode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
