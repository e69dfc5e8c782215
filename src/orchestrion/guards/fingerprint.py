"""Fingerprints of payloads: equal when two values say the same thing.

Progress detection and conflict detection compare outputs across rounds and
branches.  Byte equality is too strict ("Paris" vs "paris ") and Python equality
is unusable across model classes, so values are compared by the hash of a
canonical form: models dumped to JSON, keys sorted, strings case-folded with
whitespace collapsed, integral floats written as integers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from orchestrion.contracts.contract import dump_payload


def normalize(value: Any) -> Any:
    """The canonical JSON-able form of ``value`` (see the module docstring)."""
    return _norm(dump_payload(value))


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, BaseModel):  # a model inside a plain dict or list payload
        return _norm(value.model_dump(mode="json"))
    return value


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value``: normalized, keys sorted, no whitespace."""
    return json.dumps(
        normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def fingerprint(value: Any) -> str:
    """A short stable hash (SHA-256, 96 bits) of the canonical form of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:24]
