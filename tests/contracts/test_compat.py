"""Structural compatibility: does producer A's output satisfy consumer B's input?"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, RootModel

from orchestrion.contracts import compat
from orchestrion.contracts.compat import Incompatibility, incompatibilities, is_compatible
from orchestrion.contracts.stubs import stub_value
from orchestrion.errors import ContractDefinitionError


def found(producer: Any, consumer: Any) -> list[tuple[str, str]]:
    return [(i.path, i.problem) for i in incompatibilities(producer, consumer)]


# --------------------------------------------------------------------------- models


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Item(BaseModel):
    sku: str
    qty: str


class Order(BaseModel):
    items: list[Item]


class Checkout(BaseModel):
    order: Order


class ItemIn(BaseModel):
    sku: str
    qty: int


class OrderIn(BaseModel):
    items: list[ItemIn]


class CheckoutIn(BaseModel):
    order: OrderIn


class Node(BaseModel):
    value: int
    children: list[Node] = []
    next: Node | None = None


class NodeCopy(BaseModel):
    value: int
    children: list[NodeCopy] = []
    next: NodeCopy | None = None


class TextNode(BaseModel):
    value: str
    children: list[TextNode]


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    name: str


class Bird(BaseModel):
    kind: Literal["bird"]


class CatOrDog(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


class AnyPet(BaseModel):
    pet: Annotated[Cat | Dog | Bird, Field(discriminator="kind")]


# --------------------------------------------------------------------------- compatible pairs


class Draft(BaseModel):
    title: str
    words: int
    tone: Literal["calm"]
    internal: str = "extra fields are fine"


class DraftIn(BaseModel):
    title: str
    words: float
    tone: Literal["calm", "loud"]
    maybe: int | None = None
    anything: Any = None


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str


class WithDefault(BaseModel):
    title: str
    score: int = 0


class NeedsScore(BaseModel):
    title: str
    score: int


class TupleOut(BaseModel):
    pair: tuple[int, int]


class ListIn(BaseModel):
    pair: list[float]


@pytest.mark.parametrize(
    ("producer", "consumer"),
    [
        (Draft, Draft),
        (Draft, DraftIn),  # int -> float, Literal subset, consumer defaults and Any
        (Draft, Lenient),  # extra producer fields are ignored
        (WithDefault, NeedsScore),  # a defaulted producer field is always dumped
        (Checkout, Checkout),
        (CheckoutIn, CheckoutIn),
        (Node, NodeCopy),  # recursive, same shape
        (CatOrDog, AnyPet),  # union subset
        (TupleOut, ListIn),
        (RootModel[list[int]], RootModel[list[float]]),
    ],
)
def test_compatible_pairs_have_no_incompatibilities(producer: Any, consumer: Any) -> None:
    assert incompatibilities(producer, consumer) == []
    assert is_compatible(producer, consumer)


# --------------------------------------------------------------------------- each kind


def test_nested_type_mismatch_names_the_full_path() -> None:
    [problem] = incompatibilities(Checkout, CheckoutIn)
    assert problem == Incompatibility(
        "order.items[].qty", "producer gives string, consumer needs integer"
    )
    assert str(problem) == (
        "field 'order.items[].qty': producer gives string, consumer needs integer"
    )
    assert not is_compatible(Checkout, CheckoutIn)


def test_missing_required_field() -> None:
    class Customer(BaseModel):
        name: str

    class CustomerIn(BaseModel):
        name: str
        email: str
        phone: str = ""  # has a default: not required

    assert found(Customer, CustomerIn) == [
        ("email", "consumer requires it, producer does not have it")
    ]


def test_optional_without_default_in_a_raw_producer_may_be_omitted() -> None:
    producer = {"type": "object", "properties": {"email": {"type": "string"}}}
    with_default = {
        "type": "object",
        "properties": {"email": {"type": "string", "default": "x@example.com"}},
    }
    assert found(producer, NeedsEmail) == [("email", "consumer requires it, producer may omit it")]
    assert found(with_default, NeedsEmail) == []


class NeedsEmail(BaseModel):
    email: str


def test_nullable_producer_into_non_nullable_consumer() -> None:
    class MaybeEmail(BaseModel):
        email: str | None = None

    class MaybeEmailNoDefault(BaseModel):
        email: str | None

    expected = [("email", "producer may give null, consumer needs string")]
    assert found(MaybeEmail, NeedsEmail) == expected
    assert found(MaybeEmailNoDefault, NeedsEmail) == expected
    assert found(NeedsEmail, MaybeEmail) == []


def test_number_does_not_satisfy_integer_but_integer_satisfies_number() -> None:
    assert found({"type": "number"}, {"type": "integer"}) == [
        ("", "producer gives number, consumer needs integer")
    ]
    assert found({"type": "integer"}, {"type": "number"}) == []


def test_enum_literal_and_const_need_a_subset() -> None:
    class Free(BaseModel):
        color: str

    class Wide(BaseModel):
        color: Literal["red", "blue"]

    class Exact(BaseModel):
        color: Literal["red"]

    class Wants(BaseModel):
        color: Color

    assert found(Free, Wants) == [
        ("color", "producer gives any string, consumer needs one of 'red', 'green'")
    ]
    assert found(Wide, Wants) == [
        ("color", "producer may give 'blue', consumer needs one of 'red', 'green'")
    ]
    assert found(Exact, Wants) == []
    assert found(Wants, Exact) == [("color", "producer may give 'green', consumer needs 'red'")]


def test_known_values_are_checked_against_consumer_constraints() -> None:
    assert found({"enum": [1, 5]}, {"type": "integer", "maximum": 3}) == [
        ("", "producer may give 5, consumer needs integer <= 3")
    ]
    assert found({"const": "abc"}, {"type": "string", "pattern": "^x"}) == [
        ("", "producer may give 'abc', consumer needs a string matching '^x'")
    ]
    assert found({"type": "boolean"}, {"const": True}) == [
        ("", "producer may give false, consumer needs true")
    ]
    assert found({"const": True}, {"enum": [1]}) == [
        ("", "producer may give true, consumer needs 1")
    ]


def test_union_producer_every_variant_must_fit() -> None:
    class Either(BaseModel):
        value: int | str

    class IntOnly(BaseModel):
        value: int

    assert found(Either, IntOnly) == [("value", "producer gives string, consumer needs integer")]
    assert found(IntOnly, Either) == []
    assert found(CatOrDog, AnyPet) == []
    assert found(AnyPet, CatOrDog) == [
        ("pet", "producer gives object (Bird), consumer needs object (Cat) or object (Dog)")
    ]


def test_union_consumer_reports_details_of_the_variant_with_the_same_type() -> None:
    class MaybeItem(BaseModel):
        item: ItemIn | None = None

    class HasItem(BaseModel):
        item: Item

    assert found(HasItem, MaybeItem) == [
        ("item.qty", "producer gives string, consumer needs integer")
    ]


def test_extra_fields_only_matter_when_the_consumer_forbids_them() -> None:
    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        title: str

    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        title: str

    assert found(Draft, Lenient) == []
    assert found(Draft, Strict) == [
        ("words", "producer gives this field, consumer forbids extra fields"),
        ("tone", "producer gives this field, consumer forbids extra fields"),
        ("internal", "producer gives this field, consumer forbids extra fields"),
    ]
    assert found(Loose, Strict) == [
        ("", "producer may give extra fields, consumer forbids extra fields")
    ]


def test_dict_values_are_compared() -> None:
    class Scores(BaseModel):
        scores: dict[str, str]

    class ScoresIn(BaseModel):
        scores: dict[str, int]

    class Closed(BaseModel):
        model_config = ConfigDict(extra="forbid")
        a: int

    class Nested(BaseModel):
        scores: Closed

    class IntScores(BaseModel):
        scores: dict[str, int]

    assert found(Scores, ScoresIn) == [
        ("scores{}", "producer gives string, consumer needs integer")
    ]
    assert found(Nested, ScoresIn) == []  # a model with int fields fits dict[str, int]
    assert found(IntScores, Nested) == [
        ("scores.a", "consumer requires it, producer does not guarantee it"),
        ("scores", "producer may give extra fields, consumer forbids extra fields"),
    ]


def test_arrays_and_tuples() -> None:
    class Tags(BaseModel):
        tags: list[str]

    class TagsIn(BaseModel):
        tags: list[int] = Field(min_length=1)

    class Pair(BaseModel):
        pair: tuple[int, str]

    class PairIn(BaseModel):
        pair: tuple[int, int]

    assert found(Tags, TagsIn) == [
        ("tags", "producer gives array of any length, consumer needs array of length >= 1"),
        ("tags[]", "producer gives string, consumer needs integer"),
    ]
    assert found(Pair, PairIn) == [("pair[1]", "producer gives string, consumer needs integer")]
    assert found(ListIn, TupleOut) == [
        ("pair", "producer gives array of any length, consumer needs array of length >= 2"),
        ("pair", "producer gives array of any length, consumer needs array of length <= 2"),
        ("pair[0]", "producer gives number, consumer needs integer"),
        ("pair[1]", "producer gives number, consumer needs integer"),
    ]


def test_numeric_and_length_bounds() -> None:
    class Out(BaseModel):
        n: int = Field(ge=0, le=10)
        ratio: float = Field(ge=0, multiple_of=0.25)
        name: str = Field(max_length=50)

    class In(BaseModel):
        n: int = Field(ge=1, lt=10)
        ratio: float = Field(gt=0, multiple_of=0.5)
        name: str = Field(min_length=1, max_length=20)

    class Tight(BaseModel):
        n: int = Field(gt=0, le=9)
        ratio: float = Field(gt=0.5, multiple_of=1.5)
        name: str = Field(min_length=3, max_length=10)

    assert found(Out, In) == [
        ("n", "producer gives integer >= 0, consumer needs integer >= 1"),
        ("n", "producer gives integer <= 10, consumer needs integer < 10"),
        ("ratio", "producer gives number >= 0, consumer needs number > 0"),
        ("ratio", "producer gives multiples of 0.25, consumer needs a multiple of 0.5"),
        ("name", "producer gives string of any length, consumer needs string of length >= 1"),
        ("name", "producer gives string of length <= 50, consumer needs string of length <= 20"),
    ]
    assert found(Tight, In) == []  # gt=0 on integers is ge=1; 1.5 is a multiple of 0.5


def test_formats_and_patterns() -> None:
    class When(BaseModel):
        at: dt.datetime
        code: str

    class WhenIn(BaseModel):
        at: dt.date
        code: str = Field(pattern=r"^[A-Z]{3}$")

    assert found(When, WhenIn) == [
        ("at", "producer gives string (date-time), consumer needs string (date)"),
        ("code", "producer gives any string, consumer needs a string matching '^[A-Z]{3}$'"),
    ]
    assert found({"type": "string", "format": "uuid4"}, {"type": "string", "format": "uuid"}) == []
    # SecretStr and bytes carry formats that accept any string.
    assert found({"type": "string"}, {"type": "string", "format": "password"}) == []


def test_any_consumer_accepts_everything_and_any_producer_fits_only_any() -> None:
    class Loose(BaseModel):
        payload: Any

    class Typed(BaseModel):
        payload: dict[str, int]

    assert found(Typed, Loose) == []
    assert found(Loose, Typed) == [("payload", "producer gives any value, consumer needs object")]
    assert found({"type": "integer"}, {"description": "anything"}) == []


def test_recursive_models_terminate_and_report_once() -> None:
    assert found(Node, TextNode) == [("value", "producer gives integer, consumer needs string")]
    assert found(TextNode, Node) == [("value", "producer gives string, consumer needs integer")]


def test_every_incompatibility_is_listed_not_just_the_first() -> None:
    class Out(BaseModel):
        a: str
        b: float
        c: int | None = None

    class In(BaseModel):
        a: int
        b: int
        c: int
        d: str

    assert found(Out, In) == [
        ("a", "producer gives string, consumer needs integer"),
        ("b", "producer gives number, consumer needs integer"),
        ("c", "producer may give null, consumer needs integer"),
        ("d", "consumer requires it, producer does not have it"),
    ]


def test_aliases_follow_how_the_producer_dumps_and_the_consumer_validates() -> None:
    class Out(BaseModel):
        user_id: int = Field(alias="userId")

    class OutByAlias(BaseModel):
        model_config = ConfigDict(serialize_by_alias=True)
        user_id: int = Field(alias="userId")

    class In(BaseModel):
        user_id: int = Field(alias="userId")

    class InEither(BaseModel):
        model_config = ConfigDict(validate_by_name=True)
        user_id: int = Field(alias="userId")

    # model_dump() writes field names unless the model says otherwise.
    assert found(Out, In) == [("userId", "consumer requires it, producer does not have it")]
    assert found(OutByAlias, In) == []
    assert found(Out, InEither) == []
    assert found(OutByAlias, InEither) == []


# --------------------------------------------------------------------------- raw schemas


def test_raw_schemas_with_refs_type_lists_and_mixed_inputs() -> None:
    producer = {
        "type": "object",
        "properties": {"item": {"$ref": "#/$defs/Item"}, "note": {"type": ["string", "null"]}},
        "required": ["item", "note"],
        "$defs": {"Item": {"type": "object", "properties": {"qty": {"type": "string"}},
                           "required": ["qty"]}},
    }  # fmt: skip
    consumer = {
        "type": "object",
        "properties": {"item": {"allOf": [{"$ref": "#/definitions/It"}]},
                       "note": {"type": "string"}},
        "required": ["item", "note"],
        "definitions": {"It": {"type": "object", "properties": {"qty": {"type": "integer"}},
                               "required": ["qty"]}},
    }  # fmt: skip
    assert found(producer, consumer) == [
        ("item.qty", "producer gives string, consumer needs integer"),
        ("note", "producer may give null, consumer needs string"),
    ]
    assert found(Item, ItemIn.model_json_schema()) == [
        ("qty", "producer gives string, consumer needs integer")
    ]


def test_unresolvable_and_remote_refs_are_definition_errors() -> None:
    with pytest.raises(ContractDefinitionError, match="does not resolve"):
        incompatibilities({"$ref": "#/$defs/Missing"}, {"type": "integer"})
    with pytest.raises(ContractDefinitionError, match="remote schema reference"):
        incompatibilities({"$ref": "https://example.com/schema.json"}, {"type": "integer"})
    with pytest.raises(ContractDefinitionError, match="expected a Pydantic model class"):
        incompatibilities(Item(sku="a", qty="1"), ItemIn)  # type: ignore[arg-type]


def test_results_for_model_classes_are_cached_and_copied() -> None:
    compat._between_models.cache_clear()
    first = incompatibilities(Checkout, CheckoutIn)
    first.clear()  # the caller owns its list
    second = incompatibilities(Checkout, CheckoutIn)
    assert len(second) == 1
    assert compat._between_models.cache_info().hits == 1


def test_incompatibility_is_a_frozen_value() -> None:
    problem = Incompatibility("", "producer gives string, consumer needs integer")
    assert str(problem) == "top level: producer gives string, consumer needs integer"
    with pytest.raises(AttributeError):
        problem.path = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- properties

_NAMES = st.sampled_from(["a", "b", "c", "d"])
_LEAVES = st.one_of(
    st.just({}),
    st.builds(lambda lo: {"type": "integer", "minimum": lo}, st.integers(-5, 5)),
    st.builds(lambda hi: {"type": "string", "maxLength": hi}, st.integers(0, 9)),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"type": "number"}]),
    st.lists(st.integers(0, 3) | st.text(max_size=2), min_size=1, max_size=3, unique=True).map(
        lambda values: {"enum": values}
    ),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    objects = st.dictionaries(_NAMES, children, max_size=3).flatmap(
        lambda props: st.builds(
            lambda req, closed: {
                "type": "object",
                "properties": props,
                "required": sorted(req),
                **({"additionalProperties": False} if closed else {}),
            },
            st.sets(st.sampled_from(sorted(props) or ["a"])).map(lambda r: r & set(props)),
            st.booleans(),
        )
    )
    arrays = children.map(lambda item: {"type": "array", "items": item})
    unions = st.lists(children, min_size=1, max_size=3).map(lambda vs: {"anyOf": vs})
    return objects | arrays | unions


_SCHEMAS = st.recursive(_LEAVES, _extend, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(_SCHEMAS)
def test_every_schema_is_compatible_with_itself(schema: dict[str, Any]) -> None:
    assert found(schema, schema) == []


@settings(max_examples=100, deadline=None)
@given(_SCHEMAS, _SCHEMAS)
def test_a_consumer_union_that_contains_the_producer_accepts_it(
    schema: dict[str, Any], other: dict[str, Any]
) -> None:
    assert found(schema, {"anyOf": [other, schema]}) == []
    assert found({"type": "array", "items": schema}, {"type": "array", "items": schema}) == []


# --------------------------------------------------------------------------- soundness


class Profile(BaseModel):
    name: str = Field(min_length=1, max_length=30)
    age: int = Field(ge=0, le=120)
    color: Literal["red"]
    tags: list[str] = Field(max_length=3)
    friends: list[Node] = []


class ProfileIn(BaseModel):
    name: str
    age: float = Field(ge=0)
    color: Color
    tags: list[str]
    friends: list[NodeCopy]
    nickname: str | None = None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 50))
def test_compatible_means_every_stub_output_validates_as_input(seed: int, index: int) -> None:
    assert is_compatible(Profile, ProfileIn)
    for producer, consumer in [(Profile, ProfileIn), (Draft, DraftIn), (CatOrDog, AnyPet)]:
        output = stub_value(producer, seed=seed, index=index)
        consumer.model_validate(output.model_dump())
