"""Deterministic, schema-valid stub values built from contracts.

Stubs let a whole flow run before any real agent exists: every stub agent answers
with a value built from its output model. Values are

- *valid*: :func:`stub_value` validates what it builds with the model itself;
- *deterministic*: the same (model, seed, index) gives the same value in every
  process (``random.Random`` seeded with a string, never ``hash()``);
- *varied*: another ``index`` (say, the n-th call of a stub agent) gives another value;
- *readable*: strings carry their field name (``"summary-3f2a"``), numbers stay small.

Building works from the JSON schema, so it covers everything Pydantic expresses
there: types, ``Literal``/``Enum``, optionals and unions, lists/sets/tuples/dicts,
nested and recursive models (recursion stops through optional fields, empty lists
or ``None``), ``Annotated`` constraints, simple regex patterns and common formats
(date-time, date, time, duration, uuid, email, uri, ip addresses, base64, JSON).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import importlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, TypeVar

from pydantic import BaseModel, PydanticUserError, ValidationError

from orchestrion.contracts import schema_refs
from orchestrion.errors import ContractDefinitionError

__all__ = ["stub_json", "stub_value"]

M = TypeVar("M", bound=BaseModel)

_ATTEMPTS = 3  # extra seeded attempts before giving up on a model
_SOFT_DEPTH = 12  # past this nesting, build the smallest value the schema allows
_HARD_DEPTH = 64  # past this, the schema has no finite value we can find
_PATTERN_TRIES = 40
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_NUMERIC = ("integer", "number")
_HINT = (
    "script the stub for this model (a stub agent's script=[...] of explicit outputs), "
    "or simplify the constraint"
)


class _Unbuildable(Exception):
    """The builder found no value for a schema; turned into ContractDefinitionError."""


class _TooDeep(_Unbuildable):
    """Recursion with no way out.

    Other union variants are not tried after it: they would only recurse again,
    exponentially many times.
    """


def stub_value(model: type[M], *, seed: int = 0, index: int = 0) -> M:
    """A valid, deterministic instance of ``model`` for stub runs.

    The same ``(model, seed, index)`` always gives the same value; another ``index``
    usually gives another one.

    Raises:
        ContractDefinitionError: no valid value could be built (an unsatisfiable
            pattern, a validator that rejects every stub); the hint says to script it.
    """
    schema = _model_schema(model)
    label = f"{seed}:{index}:{model.__qualname__}"
    failure = ""
    for attempt in range(_ATTEMPTS):
        # Attempt 0 uses the documented seed; later ones vary it, and switch dict keys
        # to numbers because the JSON schema does not say a dict has int keys.
        rng = random.Random(label if attempt == 0 else f"{label}:{attempt}")
        try:
            data = _Builder(schema, rng, numeric_keys=attempt > 0).build(
                schema, _root_name(model.__name__)
            )
        except _Unbuildable as exc:
            raise ContractDefinitionError(
                f"cannot build a stub {model.__qualname__}: {exc}", hint=_HINT
            ) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            failure = _first_error(exc)
    raise ContractDefinitionError(
        f"cannot build a valid stub {model.__qualname__}: {failure}", hint=_HINT
    )


def stub_json(schema: Mapping[str, Any], *, seed: int = 0, index: int = 0) -> Any:
    """A deterministic JSON value for a raw JSON schema (``$ref``/``$defs`` resolved).

    Unlike :func:`stub_value` the result is not validated (orchestrion has no JSON
    Schema validator); it follows every keyword the builder understands.

    Raises:
        ContractDefinitionError: the schema has no value the builder can find.
    """
    title = str(schema.get("title", ""))
    rng = random.Random(f"{seed}:{index}:{title}")
    try:
        return _Builder(schema, rng).build(schema, _root_name(title))
    except _Unbuildable as exc:
        name = f" {title}" if title else ""
        raise ContractDefinitionError(f"cannot build a stub{name}: {exc}", hint=_HINT) from None


@functools.lru_cache(maxsize=256)
def _model_schema(model: type[BaseModel]) -> Mapping[str, Any]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ContractDefinitionError(
            f"cannot build a stub from {model!r}: expected a Pydantic model class",
            hint="pass the model class itself, or use stub_json() for a raw JSON schema",
        )
    try:
        # Keys as model_validate accepts them: aliases, unless the model turned those off.
        by_alias = model.model_config.get("validate_by_alias", True) is not False
        return model.model_json_schema(by_alias=by_alias)
    except PydanticUserError as exc:
        raise ContractDefinitionError(
            f"model {model.__qualname__} has no JSON schema to build stubs from ({exc})",
            hint="use JSON-schema-able field types, or " + _HINT,
        ) from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "top level"
    return f"{where}: {error['msg']}"


def _root_name(name: str) -> str:
    return name.lower() or "value"


# --------------------------------------------------------------------------- the builder


class _Builder:
    """Walks a schema and builds one value, drawing every choice from ``rng``."""

    def __init__(
        self, root: Mapping[str, Any], rng: random.Random, *, numeric_keys: bool = False
    ) -> None:
        self.root = root
        self.rng = rng
        self.numeric_keys = numeric_keys
        self.refs: list[str] = []  # $refs on the current path, to notice recursion

    @property
    def frugal(self) -> bool:
        """Inside a recursion (or very deep): build the smallest value allowed."""
        return len(self.refs) > _SOFT_DEPTH or len(set(self.refs)) < len(self.refs)

    def build(self, node: Any, name: str) -> Any:
        """A value for ``node``; ``name`` is the field it is for, used in strings."""
        schema, refs = _resolve(node, self.root)
        if len(self.refs) + len(refs) > _HARD_DEPTH:
            raise _TooDeep(f"'{name}' recurses with no optional way out")
        self.refs.extend(refs)
        try:
            return self._build(schema, name)
        finally:
            del self.refs[len(self.refs) - len(refs) :]

    def _build(self, s: Mapping[str, Any], name: str) -> Any:
        if s.get("not") == {}:
            raise _Unbuildable(f"'{name}' accepts no value")
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return self.rng.choice(list(s["enum"]))
        variants = schema_refs.union_variants(s)
        if variants is not None:
            return self._one_of(variants, name)
        builder = self._BUILDERS.get(_kind(s), _Builder._any)
        return builder(self, s, name)

    def _one_of(self, variants: list[Any], name: str) -> Any:
        order = list(variants)
        self.rng.shuffle(order)
        # Prefer real values (None sometimes, for variety); in a recursion prefer
        # None and variants that do not recurse, so the value stays finite.
        null_last = self.frugal or self.rng.random() < 0.8
        order.sort(key=lambda v: self._variant_rank(v, null_last))
        # "number or string" is how Decimal (and similar) appear in a schema: the
        # string must then hold a number, so it is written as one.
        numeric = next((v for v in variants if self._resolved_kind(v) in _NUMERIC), None)
        problems = []
        for variant in order:
            try:
                if numeric is not None and self._is_plain_string(variant):
                    return str(self.build(numeric, name))
                return self.build(variant, name)
            except _TooDeep:
                raise
            except _Unbuildable as exc:
                problems.append(str(exc))
        raise _Unbuildable(problems[0] if problems else f"'{name}' has an empty union")

    def _resolved_kind(self, variant: Any) -> str:
        return _kind(_resolve(variant, self.root)[0])

    def _is_plain_string(self, variant: Any) -> bool:
        s = _resolve(variant, self.root)[0]
        constrained = ("format", "pattern", "enum", "const", "contentSchema")
        return _kind(s) == "string" and not any(k in s for k in constrained)

    def _variant_rank(self, variant: Any, null_last: bool) -> tuple[int, int]:
        is_null = _resolve(variant, self.root)[0].get("type") == "null"
        if self.frugal:
            return (0 if is_null else 1, 1 if "$ref" in json.dumps(variant) else 0)
        return (1 if is_null == null_last else 0, 0)

    # ------------------------------------------------------------------ scalars

    def _any(self, s: Mapping[str, Any], name: str) -> Any:
        return self._words(name, 0, None)

    def _null(self, s: Mapping[str, Any], name: str) -> None:
        return None

    def _boolean(self, s: Mapping[str, Any], name: str) -> bool:
        return self.rng.random() < 0.5

    def _integer(self, s: Mapping[str, Any], name: str) -> int:
        lo, hi = _int_window(s)
        step = Fraction(str(s.get("multipleOf", 1)))
        # The integers among the multiples of p/q are the multiples of p.
        unit = step.numerator
        k_lo, k_hi = math.ceil(Fraction(lo, unit)), math.floor(Fraction(hi, unit))
        if k_lo > k_hi:
            step_text = f" that is a multiple of {unit}" if unit != 1 else ""
            raise _Unbuildable(f"'{name}' has no integer in [{lo}, {hi}]{step_text}")
        return self.rng.randint(k_lo, k_hi) * unit

    def _number(self, s: Mapping[str, Any], name: str) -> float:
        (lo, lo_strict), (hi, hi_strict) = _number_window(s)
        if "multipleOf" in s:
            step = Fraction(str(s["multipleOf"]))
            k_lo = _ceil_div(Fraction(str(lo)), step, strict=lo_strict)
            k_hi = -_ceil_div(-Fraction(str(hi)), step, strict=hi_strict)
            if k_lo > k_hi:
                raise _Unbuildable(f"'{name}' has no multiple of {s['multipleOf']} in range")
            return float(self.rng.randint(k_lo, k_hi) * step)
        value = round(self.rng.uniform(lo, hi), 2)  # two decimals read well
        if _inside(value, lo, lo_strict, hi, hi_strict):
            return value
        middle = (lo + hi) / 2
        if not _inside(middle, lo, lo_strict, hi, hi_strict):
            raise _Unbuildable(f"'{name}' has an empty numeric range")
        return middle

    # ------------------------------------------------------------------ strings

    def _string(self, s: Mapping[str, Any], name: str) -> str:
        if "contentSchema" in s:  # Json[...]: a JSON document inside a string
            return json.dumps(self.build(s["contentSchema"], name))
        lo, hi = int(s.get("minLength", 0)), s.get("maxLength")
        if hi is not None and lo > hi:
            raise _Unbuildable(f"'{name}' needs at least {lo} and at most {hi} characters")
        make = _FORMATS.get(s.get("format", ""))
        if make is not None:
            return make(self.rng, _slug(name))
        if "pattern" in s:
            return self._matching(s["pattern"], lo, hi, name)
        return self._words(name, lo, hi)

    def _words(self, name: str, lo: int, hi: int | None) -> str:
        text = f"{_slug(name)}-{self._hex(4)}"
        while len(text) < lo:
            text += self.rng.choice(_ALNUM)
        if hi is not None and len(text) > hi:
            text = text[:hi]
            # "short-" reads worse than "short" when the bound allows it.
            text = text[:-1] if text.endswith("-") and len(text) > lo else text
        return text

    def _hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def _matching(self, pattern: str, lo: int, hi: int | None, name: str) -> str:
        try:
            compiled = re.compile(pattern)
            tree = _PARSER.parse(pattern)
        except (re.error, RecursionError) as exc:
            raise _Unbuildable(f"'{name}' has a pattern Python cannot read: {exc}") from None
        writer = _RegexWriter(self.rng, spread=max(3, lo))
        for _ in range(_PATTERN_TRIES):
            text = writer.write(tree)
            if compiled.search(text) and lo <= len(text) <= (hi if hi is not None else len(text)):
                return text
        length = (
            "" if (lo, hi) == (0, None) else f" with {lo}..{'' if hi is None else hi} characters"
        )
        raise _Unbuildable(f"found no string for '{name}' matching {pattern!r}{length}")

    # ------------------------------------------------------------------ containers

    def _array(self, s: Mapping[str, Any], name: str) -> list[Any]:
        prefix = list(s.get("prefixItems", ()))
        items = s.get("items", False if prefix else {})
        count = self._count(s.get("minItems", 0), s.get("maxItems"), len(prefix))
        if items is False or items == {"not": {}}:
            count = min(count, len(prefix))
        schemas = (prefix[i] if i < len(prefix) else items for i in range(count))
        if not s.get("uniqueItems"):
            return [self.build(schema, name) for schema in schemas]
        return self._distinct(list(schemas), int(s.get("minItems", 0)), name)

    def _count(self, least: int, most: int | None, fixed: int) -> int:
        least = max(least, fixed)
        if self.frugal:
            return least
        top = least + 2 if most is None else min(most, least + 2)
        return self.rng.randint(min(max(least, 1), top), top) if top >= least else least

    def _distinct(self, schemas: list[Any], least: int, name: str) -> list[Any]:
        values, seen = [], set()
        for schema in schemas:
            for _ in range(10):  # sets of small domains (bools, enums) may run dry
                value = self.build(schema, name)
                key = json.dumps(value, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    values.append(value)
                    break
        if len(values) < least:
            raise _Unbuildable(f"'{name}' needs {least} distinct items, found {len(values)}")
        return values

    def _object(self, s: Mapping[str, Any], name: str) -> dict[str, Any]:
        required = set(s.get("required", ()))
        out: dict[str, Any] = {}
        for field, sub in s.get("properties", {}).items():
            if field in required:
                out[field] = self.build(sub, field)
            elif not self.frugal and self.rng.random() < 0.5:
                # An optional field we cannot fill is simply left out.
                with contextlib.suppress(_Unbuildable):
                    out[field] = self.build(sub, field)
        self._fill_open(s, out, name)
        return out

    def _fill_open(self, s: Mapping[str, Any], out: dict[str, Any], name: str) -> None:
        """Entries of a dict (``additionalProperties``/``patternProperties`` schemas)."""
        values = s.get("additionalProperties")
        patterns: Mapping[str, Any] = s.get("patternProperties", {})
        if not isinstance(values, Mapping) and not patterns:
            return
        least = max(int(s.get("minProperties", 0)) - len(out), 0)
        most = s.get("maxProperties")
        room = None if most is None else max(int(most) - len(out), 0)
        if not s.get("properties") and least == 0 and not self.frugal:
            least = 1  # a dict field with one entry shows more than an empty one
        for _ in range(self._count(least, room, 0) if room != 0 else 0):
            pattern = self.rng.choice(sorted(patterns)) if patterns else None
            key = self._key(s, pattern, name)
            sub = patterns[pattern] if pattern is not None else values
            out[key] = self.build(sub, name)

    def _key(self, s: Mapping[str, Any], pattern: str | None, name: str) -> str:
        if pattern is not None:
            return self._matching(pattern, 0, None, name)
        if "propertyNames" in s:
            return str(self.build({"type": "string", **s["propertyNames"]}, name))
        if self.numeric_keys:
            return str(self.rng.randint(0, 999))
        return f"{_slug(name)}-{self._hex(4)}"

    _BUILDERS: dict[str, Callable[[_Builder, Mapping[str, Any], str], Any]] = {
        "null": _null,
        "boolean": _boolean,
        "integer": _integer,
        "number": _number,
        "string": _string,
        "array": _array,
        "object": _object,
    }


# --------------------------------------------------------------------------- schema helpers


def _resolve(node: Any, root: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
    """:func:`schema_refs.resolve`, with a reference that does not resolve as unbuildable."""
    try:
        return schema_refs.resolve(node, root)
    except ContractDefinitionError as exc:
        raise _Unbuildable(exc.message) from None


def _kind(s: Mapping[str, Any]) -> str:
    kind = s.get("type")
    if isinstance(kind, str):
        return kind
    if any(k in s for k in ("properties", "additionalProperties", "patternProperties")):
        return "object"
    if "items" in s or "prefixItems" in s:
        return "array"
    if any(k in s for k in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    return "any"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-").lower() or "value"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_window(s: Mapping[str, Any]) -> tuple[int, int]:
    """Inclusive integer bounds; unbounded sides get a readable window of 100."""
    lo = hi = None
    if _is_number(s.get("minimum")):
        lo = math.ceil(s["minimum"])
    if _is_number(s.get("exclusiveMinimum")):
        ex = math.floor(s["exclusiveMinimum"]) + 1
        lo = ex if lo is None else max(lo, ex)
    if _is_number(s.get("maximum")):
        hi = math.floor(s["maximum"])
    if _is_number(s.get("exclusiveMaximum")):
        ex = math.ceil(s["exclusiveMaximum"]) - 1
        hi = ex if hi is None else min(hi, ex)
    if lo is None:
        lo = 0 if hi is None or hi >= 100 else hi - 100
    if hi is None:
        hi = max(lo, 0) + 100
    return lo, hi


def _number_window(s: Mapping[str, Any]) -> tuple[tuple[float, bool], tuple[float, bool]]:
    """(value, strict) bounds; unbounded sides get a readable window of 100."""
    lows = [(float(s["minimum"]), False)] if _is_number(s.get("minimum")) else []
    if _is_number(s.get("exclusiveMinimum")):
        lows.append((float(s["exclusiveMinimum"]), True))
    highs = [(float(s["maximum"]), False)] if _is_number(s.get("maximum")) else []
    if _is_number(s.get("exclusiveMaximum")):
        highs.append((float(s["exclusiveMaximum"]), True))
    low = max(lows) if lows else None
    high = min(highs, key=lambda b: (b[0], not b[1])) if highs else None
    if low is None:
        low = (0.0 if high is None or high[0] >= 100 else high[0] - 100, False)
    if high is None:
        high = (max(low[0], 0.0) + 100, False)
    return low, high


def _ceil_div(bound: Fraction, step: Fraction, *, strict: bool) -> int:
    """The least k with k * step >= bound (> bound when strict)."""
    k = math.ceil(bound / step)
    return k + 1 if strict and k * step == bound else k


def _inside(value: float, lo: float, lo_strict: bool, hi: float, hi_strict: bool) -> bool:
    above = value > lo if lo_strict else value >= lo
    below = value < hi if hi_strict else value <= hi
    return above and below


# --------------------------------------------------------------------------- formats


def _moment(rng: random.Random) -> dt.datetime:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return start + dt.timedelta(seconds=rng.randrange(3 * 365 * 86400))


def _uuid(version: int | None) -> Callable[[random.Random, str], str]:
    def make(rng: random.Random, slug: str) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=version or 4))

    return make


def _ipv4(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _ipv6(rng: random.Random) -> str:
    return f"fd00::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}"


def _email(rng: random.Random, slug: str) -> str:
    return f"{slug.replace('_', '.')}.{rng.getrandbits(16):04x}@example.com"


_FORMATS: dict[str, Callable[[random.Random, str], str]] = {
    "date-time": lambda rng, slug: _moment(rng).isoformat(),
    "date": lambda rng, slug: _moment(rng).date().isoformat(),
    "time": lambda rng, slug: _moment(rng).time().isoformat(),
    "duration": lambda rng, slug: f"PT{rng.randrange(1, 3600)}S",
    "uuid": _uuid(None),
    **{f"uuid{v}": _uuid(v) for v in (1, 3, 4, 5)},
    "email": _email,
    "name-email": lambda rng, slug: f"{slug.title()} <{_email(rng, slug)}>",
    "uri": lambda rng, slug: f"https://example.com/{slug}/{rng.getrandbits(16):04x}",
    "uri-reference": lambda rng, slug: f"/{slug}/{rng.getrandbits(16):04x}",
    "hostname": lambda rng, slug: f"{slug.replace('_', '-')}.example.com",
    "ipv4": lambda rng, slug: _ipv4(rng),
    "ipv6": lambda rng, slug: _ipv6(rng),
    "ipvanyaddress": lambda rng, slug: _ipv4(rng),
    "ipv4network": lambda rng, slug: f"10.{rng.randrange(256)}.0.0/16",
    "ipvanynetwork": lambda rng, slug: f"10.{rng.randrange(256)}.0.0/16",
    "ipv6network": lambda rng, slug: f"fd00:{rng.getrandbits(16):x}::/32",
    "ipv4interface": lambda rng, slug: f"{_ipv4(rng)}/24",
    "ipvanyinterface": lambda rng, slug: f"{_ipv4(rng)}/24",
    "ipv6interface": lambda rng, slug: f"{_ipv6(rng)}/64",
    "base64": lambda rng, slug: base64.b64encode(rng.randbytes(6)).decode(),
    "directory-path": lambda rng, slug: ".",  # must exist; the working directory does
    "regex": lambda rng, slug: f"^{slug}-[0-9a-f]+$",
}


# --------------------------------------------------------------------------- patterns

# ``re._parser`` is CPython's own regex parser; imported dynamically because it is
# private (no stubs) and the public ``sre_parse`` alias warns on import.
_PARSER: Any = importlib.import_module("re._parser")


class _RegexWriter:
    """Writes a string from a parsed regex; the caller checks it with ``re.search``.

    Lookarounds are skipped (the check rejects what they would), back-references
    repeat their group, and unbounded repeats draw at most ``spread`` extra copies.
    """

    _UNIVERSE = _ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_. @/:"
    _CATEGORIES: dict[str, Callable[[str], bool]] = {
        "CATEGORY_DIGIT": str.isdigit,
        "CATEGORY_NOT_DIGIT": lambda c: not c.isdigit(),
        "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
        "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
        "CATEGORY_SPACE": str.isspace,
        "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
    }

    def __init__(self, rng: random.Random, *, spread: int) -> None:
        self.rng = rng
        self.spread = spread

    def write(self, tree: Any) -> str:
        out: list[str] = []
        self._emit(tree, out, {})
        return "".join(out)

    def _emit(self, items: Any, out: list[str], groups: dict[int, str]) -> None:
        for op, arg in items:
            kind = str(op)
            if kind == "LITERAL":
                out.append(chr(arg))
            elif kind in ("NOT_LITERAL", "ANY"):
                out.append(self.rng.choice([c for c in _ALNUM if ord(c) != arg]))
            elif kind == "IN":
                out.append(self._from_set(arg))
            elif kind == "BRANCH":
                self._emit(self.rng.choice(arg[1]), out, groups)
            elif kind == "SUBPATTERN":
                start = len(out)
                self._emit(arg[3], out, groups)
                if arg[0] is not None:
                    groups[arg[0]] = "".join(out[start:])
            elif kind in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                self._repeat(arg, out, groups)
            elif kind == "ATOMIC_GROUP":
                self._emit(arg, out, groups)
            elif kind == "GROUPREF":
                out.append(groups.get(arg, ""))
            elif kind not in ("AT", "ASSERT", "ASSERT_NOT"):
                raise _Unbuildable(f"the regex construct {kind} is not supported by stubs")

    def _repeat(self, arg: Any, out: list[str], groups: dict[int, str]) -> None:
        least, most, sub = arg
        most = least + self.spread if most == _PARSER.MAXREPEAT else most
        for _ in range(self.rng.randint(least, min(most, least + self.spread))):
            self._emit(sub, out, groups)

    def _from_set(self, items: Any) -> str:
        negated = bool(items) and str(items[0][0]) == "NEGATE"
        members = items[1:] if negated else items
        if negated:
            pool = [c for c in self._UNIVERSE if not self._in_set(c, members)]
        else:
            pool = [self._draw(self.rng.choice(members))]
        if not pool:
            raise _Unbuildable("a negated character class excludes every stub character")
        return self.rng.choice(pool)

    def _draw(self, member: Any) -> str:
        op, arg = member
        kind = str(op)
        if kind == "LITERAL":
            return chr(arg)
        if kind == "RANGE":
            lo, hi = arg
            # Keep to printable ASCII when the range allows it.
            lo2, hi2 = max(lo, 0x21), min(hi, 0x7E)
            return chr(self.rng.randint(lo2, hi2) if lo2 <= hi2 else self.rng.randint(lo, hi))
        test = self._CATEGORIES.get(str(arg))
        if test is None:
            raise _Unbuildable(f"the regex class {arg} is not supported by stubs")
        return self.rng.choice([c for c in self._UNIVERSE if test(c)])

    def _in_set(self, char: str, members: Any) -> bool:
        for op, arg in members:
            kind = str(op)
            if (kind == "LITERAL" and ord(char) == arg) or (
                kind == "RANGE" and arg[0] <= ord(char) <= arg[1]
            ):
                return True
            test = self._CATEGORIES.get(str(arg)) if kind == "CATEGORY" else None
            if test is not None and test(char):
                return True
        return False
