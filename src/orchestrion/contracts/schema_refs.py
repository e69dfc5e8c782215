"""Reading a JSON-schema node as one mapping: booleans, local ``$ref`` chains and ``allOf``.

Shared by the compatibility check (:mod:`~orchestrion.contracts.compat`) and the stub
builder (:mod:`~orchestrion.contracts.stubs`), so both read a schema the same way.
Only references inside the document (``#/...``) are followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias, cast

from orchestrion.errors import ContractDefinitionError

Schema: TypeAlias = Mapping[str, Any]

ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$schema",
        "$id",
        "$defs",
        "definitions",
    }
)
"""Keywords that describe a value without constraining it."""

ANY: Schema = {}
"""The schema ``true``: every value."""

NOTHING: Schema = {"not": {}}
"""The schema ``false``: no value."""


def resolve(node: Any, root: Schema) -> tuple[Schema, list[str]]:
    """``node`` as one mapping, with the ``$ref`` values passed on the way, in order.

    Booleans become :data:`ANY` and :data:`NOTHING`; a ``$ref`` chain is followed, its
    constraining siblings applied on top of the target (annotations change nothing, so
    a plain reference gives the target itself: one identity per referenced schema);
    ``allOf`` members are merged shallowly, which is what Pydantic and most tools emit.

    Raises:
        ContractDefinitionError: a ``$ref`` is remote, does not resolve, or refers to itself.
    """
    schema = from_bool(node)
    refs: list[str] = []
    while "$ref" in schema:
        ref = schema["$ref"]
        if ref in refs:
            raise ContractDefinitionError(
                f"schema reference {ref!r} only refers to itself",
                hint="point every $ref at a schema that declares something",
            )
        refs.append(ref)
        target = _pointer(root, ref)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        constraining = any(k not in ANNOTATIONS for k in siblings)
        schema = {**target, **siblings} if constraining else target
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for member in schema["allOf"]:
            part, more = resolve(member, root)
            refs.extend(more)
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", ()), *value]
                else:
                    merged.setdefault(key, value)
        schema = merged
    return schema, refs


def from_bool(node: Any) -> Schema:
    """A boolean schema as :data:`ANY` or :data:`NOTHING`; any other node as it is."""
    if node is True:
        return ANY
    if node is False:
        return NOTHING
    return cast(Schema, node)


def union_variants(s: Schema) -> list[Any] | None:
    """Union members of ``anyOf``/``oneOf``/``type: [...]``, or None if not a union."""
    for key in ("anyOf", "oneOf"):
        if key in s:
            return list(s[key])
    kinds = s.get("type")
    if isinstance(kinds, list):
        return [{**s, "type": kind} for kind in kinds]
    return None


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ContractDefinitionError(
            f"cannot resolve the remote schema reference {ref!r}",
            hint="inline the referenced schema under $defs and use a '#/$defs/...' reference",
        )
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        raise ContractDefinitionError(
            f"schema reference {ref!r} does not resolve",
            hint="declare the referenced schema under $defs of the same document",
        )
    return from_bool(node)
