"""Fingerprints of payloads: equal when two values say the same thing.

Progress detection and conflict detection compare outputs across rounds and
branches.  Byte equality is too strict ("Paris" vs "paris ") and Python equality
is unusable across model classes, so values are compared by the hash of a
canonical form: models dumped to JSON, keys sorted, strings case-folded with
whitespace collapsed, integral floats written as integers.

Fingerprints are computed for every step inside a loop, so the hot path avoids
the generic machinery: models are dumped by their class's serializer directly,
the common JSON types are dispatched on their exact type before the general
``isinstance`` chain, and the canonical text comes from one prebuilt JSON encoder
(the same settings ``json.dumps`` would rebuild on every call).
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


def normalize(value: Any) -> Any:
    """The canonical JSON-able form of ``value`` (see the module docstring)."""
    if isinstance(value, BaseModel):
        # What model_dump(mode="json") returns, without its keyword plumbing.
        value = type(value).__pydantic_serializer__.to_python(value, mode="json")
    return _norm(value)


def _norm(value: Any) -> Any:
    # Exact types first: model dumps hold nothing else, and these are the leaves
    # and containers of nearly every payload.  Subclasses fall through to the
    # general chain below, which is the reference behaviour.
    t = type(value)
    if t is str:
        return " ".join(value.split()).casefold()
    if t is dict:
        out = {}
        for k, v in value.items():
            tv = type(v)
            if tv is str:
                out[str(k)] = " ".join(v.split()).casefold()
            elif tv is int or tv is bool or v is None:
                out[str(k)] = v
            else:
                out[str(k)] = _norm(v)
        return out
    if t is int or t is bool or value is None:
        return value
    if t is list:
        return [_norm(v) for v in value]
    return _norm_any(value)


def _norm_any(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, BaseModel):  # a model inside a plain dict or list payload
        return _norm(type(value).__pydantic_serializer__.to_python(value, mode="json"))
    return value


def _make_encoder() -> Callable[[Any], str]:
    """``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=str)`` without rebuilding an encoder per call."""
    encoder = json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - pure-Python json
        return encoder.encode
    # No circular-reference markers: normalized values are fresh trees (a cyclic
    # payload already fails in normalize() with a RecursionError).
    c_encode = c_make_encoder(
        None, str, json.encoder.encode_basestring, None, ":", ",", True, False, True
    )

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


_encode = _make_encoder()


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value``: normalized, keys sorted, no whitespace."""
    return _encode(normalize(value))


_blake2b = hashlib.blake2b


def fingerprint(value: Any) -> str:
    """A short stable hash (BLAKE2b, 96 bits) of the canonical form of ``value``."""
    if isinstance(value, BaseModel):  # normalize(), inlined on the hot path
        value = type(value).__pydantic_serializer__.to_python(value, mode="json")
    return _blake2b(_encode(_norm(value)).encode(), digest_size=12).hexdigest()
