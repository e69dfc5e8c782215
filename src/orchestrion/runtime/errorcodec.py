"""Errors to and from JSON, so a journaled run keeps its typed error (for show and explain).

Every public attribute that is JSON-able is kept; nested run errors (the failures
of BranchesFailed) are kept recursively.  Loading makes an instance of the same
class without calling its constructor, then restores the attributes.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrion import errors as error_module
from orchestrion.contracts.contract import dump_payload
from orchestrion.errors import RunError


def error_to_dict(err: RunError) -> dict[str, Any]:
    """JSON-able form of a run error: its type, message, location and attributes."""
    attrs: dict[str, Any] = {}
    for name, value in vars(err).items():
        if name.startswith("_") or name == "cause":
            continue
        if isinstance(value, RunError):
            attrs[name] = {"__error__": error_to_dict(value)}
        elif isinstance(value, dict) and value and all(isinstance(v, RunError)
                                                       for v in value.values()):
            attrs[name] = {"__errors__": {k: error_to_dict(v) for k, v in value.items()}}
        else:
            dumped = _jsonable(value)
            if dumped is not _SKIP:
                attrs[name] = dumped
    return {"type": type(err).__name__, "message": str(err), "step": err.step,
            "agent": err.agent, "attrs": attrs}


def error_from_dict(data: dict[str, Any]) -> RunError:
    """A RunError of the recorded class (RunError itself when the class is unknown)."""
    cls = _error_class(str(data.get("type", "")))
    err = cls.__new__(cls)
    Exception.__init__(err, data.get("message", ""))
    attrs = dict(data.get("attrs") or {})
    for name, value in attrs.items():
        if isinstance(value, dict) and "__error__" in value:
            value = error_from_dict(value["__error__"])
        elif isinstance(value, dict) and "__errors__" in value:
            value = {k: error_from_dict(v) for k, v in value["__errors__"].items()}
        setattr(err, name, value)
    err.step = data.get("step")
    err.agent = data.get("agent")
    if not hasattr(err, "message"):
        err.message = data.get("message", "")
    return err


_SKIP = object()


def _jsonable(value: Any) -> Any:
    value = dump_payload(value)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        value = {k: dump_payload(v) for k, v in value.items()}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return _SKIP
    return value


def _error_class(name: str) -> type[RunError]:
    candidate = getattr(error_module, name, None)
    if isinstance(candidate, type) and issubclass(candidate, RunError):
        return candidate
    return RunError
