"""Structural compatibility of contracts: does producer A's output satisfy consumer B's input?

The check works on JSON schemas, so it covers Pydantic models and raw schemas (a YAML
manifest, a remote agent's card) alike. The producer side of a model is what
``model_dump()`` hands on: its *serialization* schema, with every field present and
keyed by field name (by alias if the model sets ``serialize_by_alias``). The consumer
side is its *validation* schema, keyed as ``model_validate`` accepts. The question asked is "is
every value the producer can give accepted by the consumer?", answered
conservatively and with every problem listed, each at a path such as
``order.items[].qty`` (``[]`` is any array item, ``[0]`` a tuple position, ``{}``
any dict value).

Rules, producer P into consumer C:

- an empty schema (``Any``) on C accepts everything; an empty P gives anything;
- a field C requires must be present in P, always (required or with a default);
- ``integer`` satisfies ``number``, not the reverse; other types must match;
- objects and arrays are compared member by member, recursively; recursive models
  are handled by assuming a pair already under comparison is compatible;
- enums, ``Literal`` and ``const``: P's possible values must be a subset of C's;
- unions (``anyOf``/``oneOf``, nullable): every P variant must satisfy some C variant;
- extra P fields are fine unless C forbids them (``additionalProperties: false``);
- bounds (``minimum``, ``maxLength``, ``minItems``...), ``multipleOf``, ``pattern``
  and ``format`` on C must be implied by the same keywords on P.

A P object without ``additionalProperties`` is taken as closed: a Pydantic model
only dumps its declared fields.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, PydanticUserError
from pydantic.json_schema import GenerateJsonSchema

from orchestrion.contracts.schema_refs import (
    ANNOTATIONS,
    ANY,
    NOTHING,
    Schema,
    resolve,
    union_variants,
)
from orchestrion.errors import ContractDefinitionError

__all__ = ["Incompatibility", "incompatibilities", "is_compatible"]

SchemaSource: TypeAlias = type[BaseModel] | Mapping[str, Any]
_Found: TypeAlias = list[tuple[str, str]]  # (path relative to the current node, problem)
_Gap: TypeAlias = tuple[str, str]  # (what the producer gives, what the consumer needs)

# Formats Pydantic emits for types that accept any string (SecretStr, bytes).
_LOOSE_FORMATS = frozenset({"password", "binary"})
_FORMAT_IMPLIES = {
    "uuid1": "uuid",
    "uuid3": "uuid",
    "uuid4": "uuid",
    "uuid5": "uuid",
    "ipv4": "ipvanyaddress",
    "ipv6": "ipvanyaddress",
}


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason why a producer's output does not satisfy a consumer's input.

    ``path`` locates the value (``""`` for the value as a whole) and ``problem`` says
    what the producer gives against what the consumer needs.
    """

    path: str
    problem: str

    def __str__(self) -> str:
        where = f"field '{self.path}'" if self.path else "top level"
        return f"{where}: {self.problem}"


def incompatibilities(producer: SchemaSource, consumer: SchemaSource) -> list[Incompatibility]:
    """List every way ``producer``'s output can fail ``consumer``'s input.

    Both arguments are Pydantic model classes or JSON schemas. An empty list means
    compatible. Results for pairs of classes are cached.

    Raises:
        ContractDefinitionError: a model has no JSON schema, or a ``$ref`` does not resolve.
    """
    if isinstance(producer, type) and isinstance(consumer, type):
        return list(_between_models(producer, consumer))
    return list(_between_schemas(_output_schema(producer), _input_schema(consumer)))


def is_compatible(producer: SchemaSource, consumer: SchemaSource) -> bool:
    """True when every output of ``producer`` is a valid input of ``consumer``."""
    return not incompatibilities(producer, consumer)


# --------------------------------------------------------------------------- entry points


@functools.lru_cache(maxsize=1024)
def _between_models(
    producer: type[BaseModel], consumer: type[BaseModel]
) -> tuple[Incompatibility, ...]:
    writes_aliases = _as_model(producer).model_config.get("serialize_by_alias") or False
    return _between_schemas(
        _output_schema(producer), _input_schema(consumer, producer_aliases=writes_aliases)
    )


def _between_schemas(producer: Schema, consumer: Schema) -> tuple[Incompatibility, ...]:
    found = _Checker(producer, consumer).check(producer, consumer)
    return tuple(Incompatibility(path.removeprefix("."), problem) for path, problem in found)


def _output_schema(source: SchemaSource) -> Schema:
    """What ``model_dump()`` writes: serialization mode, keyed as the model dumps."""
    if isinstance(source, Mapping):
        return source
    model = _as_model(source)
    return _model_schema(model, "serialization", bool(model.model_config.get("serialize_by_alias")))


def _input_schema(source: SchemaSource, *, producer_aliases: bool = True) -> Schema:
    """What ``model_validate`` accepts, keyed (alias or name) the way the producer writes."""
    if isinstance(source, Mapping):
        return source
    model = _as_model(source)
    config = model.model_config
    by_alias = config.get("validate_by_alias", True) is not False
    by_name = bool(config.get("validate_by_name") or config.get("populate_by_name"))
    if by_alias and by_name:
        by_alias = producer_aliases
    return _model_schema(model, "validation", by_alias)


def _as_model(source: object) -> type[BaseModel]:
    if isinstance(source, type) and issubclass(source, BaseModel):
        return source
    raise ContractDefinitionError(
        f"cannot compare {source!r}: expected a Pydantic model class or a JSON schema mapping",
        hint="pass the model class itself (not an instance) or its model_json_schema()",
    )


@functools.lru_cache(maxsize=512)
def _model_schema(
    model: type[BaseModel], mode: Literal["validation", "serialization"], by_alias: bool
) -> Schema:
    try:
        return model.model_json_schema(by_alias=by_alias, mode=mode, schema_generator=_DumpedSchema)
    except PydanticUserError as exc:
        raise ContractDefinitionError(
            f"model {model.__qualname__} has no JSON schema ({exc})",
            hint="use JSON-schema-able field types, or give a WithJsonSchema annotation",
        ) from exc


class _DumpedSchema(GenerateJsonSchema):
    """Serialization schemas in which fields with defaults are required.

    ``model_dump`` always writes every field, defaulted or not, so for a producer a
    field with a default is as present as a required one.
    """

    def field_is_required(self, field: Any, total: bool) -> bool:
        if self.mode == "serialization" and field["type"] != "typed-dict-field":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)


# --------------------------------------------------------------------------- the checker


class _Checker:
    """Compares two schema trees; one instance per (producer, consumer) comparison."""

    def __init__(self, producer_root: Schema, consumer_root: Schema) -> None:
        self.p_root = producer_root
        self.c_root = consumer_root
        self._memo: dict[tuple[int, int], _Found] = {}
        self._active: set[tuple[int, int]] = set()
        # (raw node id, root id) -> (raw node, normalized schema). Holding the raw
        # node keeps its id from being reused; one stable normalized object per node
        # gives every occurrence of a $ref one identity, which is what ends recursion.
        self._normalized: dict[tuple[int, int], tuple[Any, Schema]] = {}

    def check(self, p_node: Any, c_node: Any) -> _Found:
        """Problems of producer node vs consumer node, memoised per schema pair."""
        p, c = self.norm(p_node, self.p_root), self.norm(c_node, self.c_root)
        key = (id(p), id(c))
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            # A cycle back to a pair under comparison: assume compatible (coinduction);
            # whatever is wrong is reported where the pair was first entered.
            return []
        self._active.add(key)
        try:
            found = _dedupe(self._compare(p, c))
        finally:
            self._active.discard(key)
        self._memo[key] = found
        return found

    def norm(self, node: Any, root: Schema) -> Schema:
        """``node`` resolved (see :func:`resolve`), with one stable result per raw node."""
        # Keyed by root too: the two sides may share node objects but not $defs.
        key = (id(node), id(root))
        cached = self._normalized.get(key)
        if cached is None:
            cached = self._normalized[key] = (node, resolve(node, root)[0])
        return cached[1]

    def _compare(self, p: Schema, c: Schema) -> _Found:
        if p is NOTHING or _is_any(c):
            return []
        if c is NOTHING:
            return [("", f"producer gives {self.given(p)}, consumer accepts no value here")]
        p_variants = union_variants(p)
        if p_variants is not None:
            return self._producer_union(p_variants, c)
        c_variants = union_variants(c)
        if c_variants is not None:
            return self._consumer_union(p, c_variants)
        allowed = _listed_values(c)
        if allowed is not None:
            return self._into_listed(p, allowed)
        given = _finite_values(p)
        if given is not None:
            return [("", problem) for v in given for problem in _value_problems(v, c)]
        return self._compare_types(p, c)

    # ------------------------------------------------------------------ unions

    def _producer_union(self, variants: list[Any], c: Schema) -> _Found:
        found: _Found = []
        for variant in variants:
            errors = self.check(variant, c)
            if errors and self.norm(variant, self.p_root).get("type") == "null":
                errors = [("", f"producer may give null, consumer needs {self.needed(c)}")]
            found.extend(errors)
        return found

    def _consumer_union(self, p: Schema, variants: list[Any]) -> _Found:
        attempts = []
        for variant in variants:
            errors = self.check(p, variant)
            if not errors:
                return []
            attempts.append((self.norm(variant, self.c_root), errors))
        # When exactly one consumer variant has the producer's type, its detailed
        # problems (a nested field, a bound) say more than "none matched".
        p_types = _widened(_types(p))
        near = [errors for variant, errors in attempts if _types(variant) & p_types]
        if len(near) == 1:
            return near[0]
        needs = " or ".join(dict.fromkeys(self.needed(variant) for variant, _ in attempts))
        return [("", f"producer gives {self.given(p)}, consumer needs {needs}")]

    # ------------------------------------------------------------------ values

    def _into_listed(self, p: Schema, allowed: list[Any]) -> _Found:
        needs = _show_values(allowed)
        given = _finite_values(p)
        if given is None:
            what = self.given(p)
            what = what if what.startswith("any") else f"any {what}"
            return [("", f"producer gives {what}, consumer needs {needs}")]
        allowed_keys = {_value_key(v) for v in allowed}
        extra = [v for v in given if _value_key(v) not in allowed_keys]
        if not extra:
            return []
        return [("", f"producer may give {', '.join(map(_show, extra))}, consumer needs {needs}")]

    # ------------------------------------------------------------------ types

    def _compare_types(self, p: Schema, c: Schema) -> _Found:
        p_types, c_types = _types(p), _types(c)
        if not p_types:
            return [("", f"producer gives any value, consumer needs {self.needed(c)}")]
        found: _Found = []
        for t in sorted(p_types):
            if c_types and not _widened({t}) & c_types:
                needs = self.needed(c)
                found.append(("", f"producer gives {self.given(p)}, consumer needs {needs}"))
            elif t == "object":
                found.extend(self._compare_objects(p, c))
            elif t == "array":
                found.extend(self._compare_arrays(p, c))
            elif t == "string":
                found.extend(_gap_problems(_string_gaps(p, c)))
                if "contentSchema" in p and "contentSchema" in c:
                    found.extend(self.check(p["contentSchema"], c["contentSchema"]))
            elif t in ("integer", "number"):
                found.extend(_gap_problems(_number_gaps(t, p, c)))
        return found

    # ------------------------------------------------------------------ objects

    def _compare_objects(self, p: Schema, c: Schema) -> _Found:
        p_props: Mapping[str, Any] = p.get("properties", {})
        c_props: Mapping[str, Any] = c.get("properties", {})
        p_required = set(p.get("required", ()))
        c_required = set(c.get("required", ()))
        found: _Found = []
        for name, c_field in c_props.items():
            seg = f".{name}"
            p_field = p_props.get(name)
            if p_field is None:
                found.extend(self._absent_field(p, name, c_field, name in c_required))
                continue
            if name in c_required and name not in p_required and "default" not in p_field:
                found.append((seg, "consumer requires it, producer may omit it"))
            found.extend(_under(seg, self.check(p_field, c_field)))
        for name, p_field in p_props.items():
            if name not in c_props:
                found.extend(self._extra_field(name, p_field, c))
        found.extend(self._open_extras(p, c))
        return found

    def _absent_field(self, p: Schema, name: str, c_field: Any, required: bool) -> _Found:
        seg = f".{name}"
        # A dict-like producer may or may not carry the key.
        carriers = [
            s
            for pattern, s in _open_values(p, closed_default=True)
            if pattern is None or re.search(pattern, name)
        ]
        if not carriers:
            return [(seg, "consumer requires it, producer does not have it")] if required else []
        if required:
            return [(seg, "consumer requires it, producer does not guarantee it")]
        return [e for s in carriers for e in _under(seg, self.check(s, c_field))]

    def _extra_field(self, name: str, p_field: Any, c: Schema) -> _Found:
        seg = f".{name}"
        targets = _consumer_targets(c, name)
        if targets is None:
            return [(seg, "producer gives this field, consumer forbids extra fields")]
        return [e for t in targets for e in _under(seg, self.check(p_field, t))]

    def _open_extras(self, p: Schema, c: Schema) -> _Found:
        """Producer dict values (keys unknown in advance) against the consumer."""
        found: _Found = []
        c_open = _open_values(c, closed_default=False)
        c_patterns = {pattern for pattern, _ in c_open if pattern is not None}
        for pattern, p_values in _open_values(p, closed_default=True):
            targets = [s for q, s in c_open if q is not None]
            if pattern is None or pattern not in c_patterns:
                rest = c.get("additionalProperties", True)
                if rest is False:
                    found.append(
                        ("", "producer may give extra fields, consumer forbids extra fields")
                    )
                    continue
                targets.append(ANY if rest is True else rest)
            found.extend(e for t in targets for e in _under("{}", self.check(p_values, t)))
        return found

    # ------------------------------------------------------------------ arrays

    def _compare_arrays(self, p: Schema, c: Schema) -> _Found:
        found = _gap_problems(_length_gaps("array", p, c, "Items"))
        p_prefix: list[Any] = list(p.get("prefixItems", ()))
        c_prefix: list[Any] = list(c.get("prefixItems", ()))
        p_rest = p.get("items", NOTHING if p_prefix else ANY)
        c_rest = c.get("items", ANY)
        for i in range(max(len(p_prefix), len(c_prefix))):
            p_item = p_prefix[i] if i < len(p_prefix) else p_rest
            c_item = c_prefix[i] if i < len(c_prefix) else c_rest
            found.extend(_under(f"[{i}]", self.check(p_item, c_item)))
        # Items past both prefixes (a plain list, or the ``...`` of a tuple).
        found.extend(_under("[]", self.check(p_rest, c_rest)))
        return found

    # ------------------------------------------------------------------ wording

    def given(self, p: Schema) -> str:
        """A short name for what a normalized producer schema gives."""
        return _describe(p, self.p_root)

    def needed(self, c: Schema) -> str:
        """A short name for what a normalized consumer schema needs."""
        return _describe(c, self.c_root)


# --------------------------------------------------------------------------- schema helpers


def _describe(s: Schema, root: Schema) -> str:
    """A short human name for what a normalized schema allows."""
    if s is NOTHING:
        return "no value"
    listed = _listed_values(s)
    if listed is not None:
        return _show_values(listed)
    variants = union_variants(s)
    if variants is not None:
        names = (_describe(resolve(v, root)[0], root) for v in variants)
        return " or ".join(dict.fromkeys(names))
    types = _types(s)
    if not types:
        return "any value"
    name = " or ".join(sorted(types))
    fmt = s.get("format")
    if fmt and fmt not in _LOOSE_FORMATS:
        return f"{name} ({fmt})"
    if types == {"object"} and "properties" in s and "title" in s:
        return f"object ({s['title']})"
    return name


def _is_any(s: Schema) -> bool:
    return s is not NOTHING and all(key in ANNOTATIONS for key in s)


def _types(s: Schema) -> set[str]:
    kind = s.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(kind)
    values = _listed_values(s)
    if values is not None:
        return {_json_type(v) for v in values}
    if any(k in s for k in ("properties", "additionalProperties", "patternProperties")):
        return {"object"}
    if "items" in s or "prefixItems" in s:
        return {"array"}
    return set()


def _widened(types: set[str]) -> set[str]:
    # An integer is also a number.
    return types | {"number"} if "integer" in types else types


def _listed_values(s: Schema) -> list[Any] | None:
    if "const" in s:
        return [s["const"]]
    if "enum" in s:
        return list(s["enum"])
    return None


def _finite_values(s: Schema) -> list[Any] | None:
    listed = _listed_values(s)
    if listed is not None:
        return listed
    kind = s.get("type")
    if kind == "boolean":
        return [True, False]
    return [None] if kind == "null" else None


def _open_values(s: Schema, *, closed_default: bool) -> list[tuple[str | None, Any]]:
    """(key pattern or None for any key, value schema) pairs for undeclared keys."""
    opened: list[tuple[str | None, Any]] = list(s.get("patternProperties", {}).items())
    rest = s.get("additionalProperties", not closed_default)
    if rest is not False:
        opened.append((None, ANY if rest is True else rest))
    return opened


def _consumer_targets(c: Schema, name: str) -> list[Any] | None:
    """Consumer schemas an undeclared key must satisfy, or None if the key is forbidden."""
    matching = [
        s for pattern, s in c.get("patternProperties", {}).items() if re.search(pattern, name)
    ]
    if matching:
        return matching
    rest = c.get("additionalProperties", True)
    if rest is False:
        return None
    return [] if rest is True else [rest]


def _under(segment: str, found: _Found) -> _Found:
    return [(segment + path, problem) for path, problem in found]


def _gap_problems(gaps: list[_Gap]) -> _Found:
    return [("", f"producer gives {given}, consumer needs {needs}") for given, needs in gaps]


def _dedupe(found: Iterable[tuple[str, str]]) -> _Found:
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


def _value_key(value: Any) -> tuple[str, str]:
    # JSON equality: True is not 1, but 1 is 1.0.
    kind = _json_type(value)
    if kind in ("integer", "number"):
        return "number", repr(float(value))
    return kind, json.dumps(value, sort_keys=True, default=str)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


def _show_values(values: list[Any]) -> str:
    if len(values) == 1:
        return _show(values[0])
    shown = ", ".join(_show(v) for v in values[:8])
    return f"one of {shown}{', ...' if len(values) > 8 else ''}"


def _value_problems(value: Any, c: Schema) -> list[str]:
    """Why one known producer value is not accepted by a consumer without a value list."""
    kind, c_types = _json_type(value), _types(c)
    given = f"producer may give {_show(value)}"
    if c_types and not _widened({kind}) & c_types:
        return [f"{given}, consumer needs {' or '.join(sorted(c_types))}"]
    gaps: list[_Gap] = []
    if kind == "string":
        # The value as a degenerate schema lets the bound checks do the work.
        gaps = _length_gaps(kind, {"minLength": len(value), "maxLength": len(value)}, c, "Length")
        pattern = c.get("pattern")
        if pattern and not re.search(pattern, value):
            gaps.append((value, f"a string matching {pattern!r}"))
    elif kind in ("integer", "number"):
        point = {"minimum": value, "maximum": value, "multipleOf": value or c.get("multipleOf")}
        gaps = _number_gaps(kind, point, c)
    return [f"{given}, consumer needs {needs}" for _, needs in gaps]


# --------------------------------------------------------------------------- bounds


def _number_gaps(kind: str, p: Schema, c: Schema) -> list[_Gap]:
    """Numeric bounds and ``multipleOf`` on the consumer the producer does not imply."""
    gaps = []
    for side in ("lower", "upper"):
        need = _bound(c, side, integer=False)
        have = _bound(p, side, integer=kind == "integer")
        if need is not None and not _implies(have, need, side):
            unbounded = "a lower" if side == "lower" else "an upper"
            given = (
                f"{kind} {_show_bound(have, side)}" if have else f"{kind} without {unbounded} bound"
            )
            gaps.append((given, f"{kind} {_show_bound(need, side)}"))
    step = c.get("multipleOf")
    multiple = p.get("multipleOf") or (1 if kind == "integer" else None)
    if step and not _divides(step, multiple):
        given = f"multiples of {p['multipleOf']:g}" if p.get("multipleOf") else f"any {kind}"
        gaps.append((given, f"a multiple of {step:g}"))
    return gaps


def _length_gaps(kind: str, p: Schema, c: Schema, suffix: str) -> list[_Gap]:
    """``min{suffix}``/``max{suffix}`` (Length, Items) on the consumer the producer lacks."""
    gaps = []
    for side, key in (("lower", f"min{suffix}"), ("upper", f"max{suffix}")):
        if key not in c:
            continue
        need = (float(c[key]), False)
        have = (float(p[key]), False) if key in p else None
        if not _implies(have, need, side):
            given = f"of length {_show_bound(have, side)}" if have else "of any length"
            gaps.append((f"{kind} {given}", f"{kind} of length {_show_bound(need, side)}"))
    return gaps


def _string_gaps(p: Schema, c: Schema) -> list[_Gap]:
    """Length, ``pattern``, ``format`` and JSON-content demands the producer does not meet."""
    gaps = _length_gaps("string", p, c, "Length")
    pattern, given_pattern = c.get("pattern"), p.get("pattern")
    if pattern and given_pattern != pattern:
        given = f"a string matching {given_pattern!r}" if given_pattern else "any string"
        gaps.append((given, f"a string matching {pattern!r}"))
    fmt, given_fmt = c.get("format"), p.get("format")
    implied = _FORMAT_IMPLIES.get(given_fmt) if isinstance(given_fmt, str) else None
    if fmt and fmt not in _LOOSE_FORMATS and fmt not in (given_fmt, implied):
        gaps.append((f"string ({given_fmt})" if given_fmt else "any string", f"string ({fmt})"))
    if "contentSchema" in c and "contentSchema" not in p:
        gaps.append(("any string", "a string holding a JSON document"))
    return gaps


def _bound(s: Schema, side: str, *, integer: bool) -> tuple[float, bool] | None:
    """The tightest (value, strict) bound on one side; strict integer bounds made inclusive."""
    inclusive, exclusive = ("minimum", "exclusiveMinimum")
    if side == "upper":
        inclusive, exclusive = ("maximum", "exclusiveMaximum")
    bounds = []
    if _is_number(s.get(inclusive)):
        bounds.append((float(s[inclusive]), False))
    if _is_number(s.get(exclusive)):  # draft-4 boolean exclusives are not numbers
        value = float(s[exclusive])
        if integer:
            value = math.floor(value) + 1 if side == "lower" else math.ceil(value) - 1
        bounds.append((value, not integer))
    if not bounds:
        return None
    if side == "lower":
        return max(bounds)  # larger is tighter; at a tie, strict (True) is tighter
    return min(bounds, key=lambda b: (b[0], not b[1]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _implies(have: tuple[float, bool] | None, need: tuple[float, bool], side: str) -> bool:
    if have is None:
        return False
    (h, h_strict), (n, n_strict) = have, need
    beyond = h > n if side == "lower" else h < n
    return beyond or (h == n and (h_strict or not n_strict))


def _show_bound(bound: tuple[float, bool] | None, side: str) -> str:
    if bound is None:
        return "unbounded"
    value, strict = bound
    op = (">" if strict else ">=") if side == "lower" else ("<" if strict else "<=")
    return f"{op} {value:g}"


def _divides(step: float, multiple: float | None) -> bool:
    """True when every multiple of ``multiple`` is a multiple of ``step``."""
    if not multiple:
        return False
    # Fractions from the decimal text avoid float noise (0.1 * 3 != 0.3).
    ratio = Fraction(str(multiple)) / Fraction(str(step))
    return ratio.denominator == 1
