"""Stub values: valid, deterministic, varied and readable."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import (
    UUID4,
    AnyUrl,
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    IPvAnyInterface,
    IPvAnyNetwork,
    Json,
    RootModel,
    SecretStr,
    conset,
    model_validator,
)

from orchestrion.contracts.stubs import stub_json, stub_value
from orchestrion.errors import ContractDefinitionError

SRC = Path(__file__).resolve().parents[2] / "src"


class Mood(enum.Enum):
    CALM = "calm"
    LOUD = "loud"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Tree(BaseModel):
    label: str
    children: list[Tree] = []
    parent: Tree | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    name: str


class Everything(BaseModel):
    """A broad model: every field kind the stub builder claims to handle."""

    summary: str
    short: str = Field(min_length=5, max_length=6)
    long: str = Field(min_length=40)
    code: Annotated[str, Field(pattern=r"^\d{3}-[A-Z]{2}$")]
    count: int = Field(gt=0, lt=3)
    step: int = Field(multiple_of=7, ge=100, le=140)
    ratio: float = Field(gt=0, le=1)
    quarter: float = Field(multiple_of=0.25, gt=1, lt=2)
    negative: float = Field(lt=-1000)
    flag: bool
    letter: Literal["a", "b"]
    mood: Mood
    level: Level
    maybe: int | None
    either: int | str
    tags: list[str] = Field(min_length=2, max_length=3)
    unique: conset(int, min_length=3)  # type: ignore[valid-type]
    moods: frozenset[Mood]
    pair: tuple[int, str]
    many: tuple[float, ...]
    scores: dict[str, int]
    by_id: dict[int, str]
    tree: Tree
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]
    when: dt.datetime
    day: dt.date
    at: dt.time
    took: dt.timedelta
    uid: uuid.UUID
    uid4: UUID4
    url: AnyUrl
    numbers: Json[list[int]]
    blob: Base64Bytes
    raw: bytes = Field(min_length=2)
    ip: IPvAnyAddress
    net: IPvAnyNetwork
    iface: IPvAnyInterface
    secret: SecretStr
    price: decimal.Decimal = Field(max_digits=6, decimal_places=2)
    anything: Any
    optional_note: str | None = None


class Tiny(BaseModel):
    summary: str
    score: int


# --------------------------------------------------------------------------- validity


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 1000))
def test_broad_model_stubs_are_valid_for_any_seed(seed: int, index: int) -> None:
    value = stub_value(Everything, seed=seed, index=index)
    assert isinstance(value, Everything)
    # Round trip: the stub is a real, self-consistent instance.
    assert Everything.model_validate(value.model_dump(round_trip=True)) == value
    assert re.fullmatch(r"\d{3}-[A-Z]{2}", value.code)
    assert 5 <= len(value.short) <= 6 and len(value.long) >= 40
    assert value.step % 7 == 0 and 100 <= value.step <= 140
    assert value.quarter in (1.25, 1.5, 1.75)
    assert value.negative < -1000
    assert 2 <= len(value.tags) <= 3 and len(value.unique) >= 3


@pytest.mark.parametrize(
    "model",
    [
        Tiny,
        Tree,
        Cat,
        RootModel[list[int]],
        RootModel[str],
        RootModel[dict[str, float]],
        RootModel[Cat | Dog],
    ],
)
def test_assorted_models_give_valid_stubs(model: type[BaseModel]) -> None:
    for index in range(20):
        assert model.model_validate(stub_value(model, index=index).model_dump()) is not None


def test_aliases_are_used_the_way_the_model_validates() -> None:
    class Aliased(BaseModel):
        user_id: int = Field(alias="userId")

    class NamesOnly(BaseModel):
        model_config = ConfigDict(validate_by_name=True, validate_by_alias=False)
        user_id: int = Field(alias="userId")

    assert isinstance(stub_value(Aliased).user_id, int)
    assert isinstance(stub_value(NamesOnly).user_id, int)


# --------------------------------------------------------------------------- determinism


def test_same_inputs_give_the_same_value() -> None:
    first = stub_value(Everything, seed=7, index=3)
    second = stub_value(Everything, seed=7, index=3)
    assert first.model_dump_json() == second.model_dump_json()


def test_other_indices_and_seeds_give_other_values() -> None:
    by_index = {stub_value(Tiny, index=i).model_dump_json() for i in range(20)}
    by_seed = {stub_value(Tiny, seed=s).model_dump_json() for s in range(20)}
    assert len(by_index) == 20
    assert len(by_seed) == 20


def test_values_are_the_same_in_another_process_with_another_hash_seed() -> None:
    script = (
        "import json\n"
        "from pydantic import BaseModel\n"
        "from orchestrion.contracts.stubs import stub_value\n"
        "class Tiny(BaseModel):\n"
        "    summary: str\n"
        "    score: int\n"
        "print(json.dumps([stub_value(Tiny, seed=3, index=i).model_dump() for i in range(5)]))\n"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(SRC)}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout)
    expected = [stub_value(Tiny, seed=3, index=i).model_dump() for i in range(5)]
    assert outputs == {json.dumps(expected) + "\n"}


def test_unions_and_optionals_vary_across_indices() -> None:
    values = [stub_value(Everything, index=i) for i in range(60)]
    assert {v.maybe is None for v in values} == {True, False}
    assert {type(v.either) for v in values} == {int, str}
    assert {v.pet.kind for v in values} == {"cat", "dog"}
    assert {v.mood for v in values} == set(Mood)
    assert {v.optional_note is None for v in values} == {True, False}


# --------------------------------------------------------------------------- readability


def test_strings_carry_their_field_name() -> None:
    value = stub_value(Tiny, seed=1, index=2)
    assert re.fullmatch(r"summary-[0-9a-f]{4}", value.summary)
    assert 0 <= value.score <= 100  # unbounded numbers stay small


def test_short_bounds_cut_the_name_cleanly() -> None:
    class Short(BaseModel):
        summary: str = Field(max_length=7)

    assert stub_value(Short).summary == "summary"


# --------------------------------------------------------------------------- recursion


def test_recursive_models_stop_through_optional_fields_and_empty_lists() -> None:
    for index in range(30):
        tree = stub_value(Tree, index=index)
        assert _depth(tree) <= 3


def _depth(tree: Tree) -> int:
    below = [*tree.children, *([tree.parent] if tree.parent else [])]
    return 1 + max((_depth(t) for t in below), default=0)


def test_recursion_with_no_way_out_is_a_definition_error() -> None:
    class Endless(BaseModel):
        child: Endless

    class Ping(BaseModel):
        other: Pong | Ping

    class Pong(BaseModel):
        other: Ping | Pong

    Ping.model_rebuild(_types_namespace={"Pong": Pong, "Ping": Ping})
    for model in (Endless, Ping):
        with pytest.raises(ContractDefinitionError, match="recurses with no optional way out"):
            stub_value(model)


# --------------------------------------------------------------------------- failures


def test_unsatisfiable_pattern_is_a_typed_error_with_a_hint() -> None:
    class Impossible(BaseModel):
        code: str = Field(pattern=r"a^b")

    with pytest.raises(ContractDefinitionError) as info:
        stub_value(Impossible)
    assert "found no string for 'code' matching 'a^b'" in str(info.value)
    assert "script the stub" in info.value.hint


def test_contradictory_lengths_are_a_typed_error() -> None:
    with pytest.raises(ContractDefinitionError, match="at least 5 and at most 2"):
        stub_json({"type": "string", "minLength": 5, "maxLength": 2})


def test_a_validator_that_rejects_every_stub_is_a_typed_error() -> None:
    class Picky(BaseModel):
        a: int

        @model_validator(mode="after")
        def reject(self) -> Picky:
            raise ValueError("never good enough")

    with pytest.raises(ContractDefinitionError, match="never good enough") as info:
        stub_value(Picky)
    assert "script the stub" in info.value.hint


# --------------------------------------------------------------------------- raw schemas


def test_stub_json_follows_refs_type_lists_and_values() -> None:
    schema = {
        "title": "Order",
        "type": "object",
        "properties": {
            "note": {"type": ["string", "null"]},
            "lines": {"$ref": "#/$defs/Lines"},
            "status": {"const": "open"},
            "size": {"enum": ["S", "M"]},
        },
        "required": ["note", "lines", "status", "size"],
        "$defs": {"Lines": {"type": "array", "items": {"enum": [1, 2]}, "minItems": 2}},
    }
    value = stub_json(schema, seed=4, index=1)
    assert value == stub_json(schema, seed=4, index=1)
    assert set(value) == {"note", "lines", "status", "size"}
    assert value["note"] is None or value["note"].startswith("note-")
    assert len(value["lines"]) >= 2 and set(value["lines"]) <= {1, 2}
    assert value["status"] == "open" and value["size"] in ("S", "M")


def test_stub_json_formats() -> None:
    def one(fmt: str) -> str:
        return str(stub_json({"type": "string", "format": fmt, "title": "contact"}))

    assert re.fullmatch(r"contact\.[0-9a-f]{4}@example\.com", one("email"))
    assert one("uri").startswith("https://example.com/contact/")
    assert uuid.UUID(one("uuid"))
    assert dt.datetime.fromisoformat(one("date-time")).tzinfo is not None
    assert dt.date.fromisoformat(one("date"))


def test_unresolvable_ref_is_a_typed_error() -> None:
    with pytest.raises(ContractDefinitionError, match="does not resolve"):
        stub_json({"$ref": "#/$defs/Nope"})


_PATTERNS = [
    r"^[a-z]{2,5}$",
    r"^(foo|bar|baz)_\d+\.json$",
    r"^[^\s@]+@[^\s@]+\.[a-z]{2,}$",
    r"^\w+-\W?\S\s?\D{2}$",
    r"^(?P<word>ab|cd)=(?P=word)$",
    r"^(?:x|y)*z?$",
    r"^[A-F0-9]{8}(-[A-F0-9]{4}){3}$",
    r"^(?=.*\d)[a-z\d]{6,}$",
    r"v\d+\.\d+",
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_PATTERNS), st.integers(0, 10_000))
def test_pattern_stubs_match_their_pattern(pattern: str, seed: int) -> None:
    value = stub_json({"type": "string", "pattern": pattern}, seed=seed)
    assert re.search(pattern, value)
