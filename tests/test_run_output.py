"""Typed output: OutputSpec's schema, validation back into the type, the text form, and output validators."""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from agentlab import ModelRetry
from agentlab.decisions import DecisionError
from agentlab.run.output import OutputSpec, OutputValidationError, inline_refs, run_validators


class Invoice(BaseModel):
    customer: str
    total: float
    paid: bool


class Address(BaseModel):
    street: str
    city: str


class Customer(BaseModel):
    name: str
    address: Address = Field(description="Where to send the invoice.")
    previous: list[Address] = []


@dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


def refs_in(node: Any) -> list[str]:
    """Every $ref or $defs key left anywhere in a schema."""
    text = json.dumps(node)
    return [key for key in ('"$ref"', '"$defs"', '"definitions"') if key in text]


def test_a_pydantic_model_is_the_parameters_itself() -> None:
    spec = OutputSpec.for_type(Invoice)
    assert not spec.wrapped and not spec.is_text
    assert spec.parameters == {
        "type": "object",
        "properties": {"customer": {"type": "string"}, "total": {"type": "number"}, "paid": {"type": "boolean"}},
        "required": ["customer", "total", "paid"],
        "additionalProperties": False,
    }
    value = spec.validate({"customer": "ACME", "total": 37.5, "paid": False})
    assert value == Invoice(customer="ACME", total=37.5, paid=False)
    assert json.loads(spec.as_text(value)) == {"customer": "ACME", "total": 37.5, "paid": False}


def test_nested_models_are_inlined_for_grammars_and_strict_mode() -> None:
    spec = OutputSpec.for_type(Customer)
    assert refs_in(spec.parameters) == []
    address = spec.parameters["properties"]["address"]
    assert address["description"] == "Where to send the invoice."
    assert address["properties"] == {"street": {"type": "string"}, "city": {"type": "string"}}
    assert address["additionalProperties"] is False
    assert spec.parameters["properties"]["previous"]["items"]["required"] == ["street", "city"]
    value = spec.validate({"name": "Ada", "address": {"street": "1 Road", "city": "London"}})
    assert isinstance(value, Customer) and value.address.city == "London"


def test_dataclass_and_typeddict_are_object_types() -> None:
    point = OutputSpec.for_type(Point)
    assert not point.wrapped and point.parameters["required"] == ["x", "y"]
    assert point.validate({"x": 1, "y": "2"}) == Point(1, 2)
    assert json.loads(point.as_text(Point(1, 2))) == {"x": 1, "y": 2}
    movie = OutputSpec.for_type(Movie)
    assert not movie.wrapped and set(movie.parameters["properties"]) == {"title", "year"}
    assert movie.validate({"title": "Alien", "year": 1979}) == {"title": "Alien", "year": 1979}


@pytest.mark.parametrize(
    ("output_type", "answer_schema", "raw", "value", "text"),
    [
        (int, {"type": "integer"}, 42, 42, "42"),
        (float, {"type": "number"}, 2.5, 2.5, "2.5"),
        (bool, {"type": "boolean"}, True, True, "True"),
        (str, {"type": "string", "minLength": 1}, "Paris", "Paris", "Paris"),
        (list[int], {"type": "array", "items": {"type": "integer"}}, [1, 2], [1, 2], "[1,2]"),
        (Literal["yes", "no"], {"type": "string", "enum": ["yes", "no"]}, "no", "no", "no"),
        (Colour, {"type": "string", "enum": ["red", "green"]}, "green", Colour.GREEN, "green"),
    ],
)
def test_non_object_types_travel_under_answer(
    output_type: Any, answer_schema: dict[str, Any], raw: Any, value: Any, text: str
) -> None:
    spec = OutputSpec.for_type(output_type)
    assert spec.wrapped
    assert spec.parameters["required"] == ["answer"] and spec.parameters["type"] == "object"
    shown = {k: v for k, v in spec.parameters["properties"]["answer"].items() if k != "description"}
    assert shown == answer_schema
    assert refs_in(spec.parameters) == []
    got = spec.validate({"answer": raw})
    assert got == value and type(got) is type(value)
    assert spec.as_text(got) == text


def test_str_is_the_default_and_is_text() -> None:
    spec = OutputSpec.for_type()
    assert spec.is_text and spec.output_type is str
    assert spec.validate({"answer": "Paris"}) == "Paris"
    # lenient for plain text: a number or an object given as the answer is still an answer
    assert spec.validate({"answer": 42}) == "42"
    assert spec.validate({"answer": {"city": "Paris"}}) == '{"city": "Paris"}'
    with pytest.raises(OutputValidationError, match="'answer': Input should be a valid string"):
        spec.validate({"answer": None})


def test_list_of_models_is_inlined_and_validated() -> None:
    spec = OutputSpec.for_type(list[Address])
    assert refs_in(spec.parameters) == []
    items = spec.parameters["properties"]["answer"]["items"]
    assert items["required"] == ["street", "city"]
    assert spec.validate({"answer": [{"street": "a", "city": "b"}]}) == [Address(street="a", city="b")]
    assert json.loads(spec.as_text([Address(street="a", city="b")])) == [{"street": "a", "city": "b"}]


def test_validation_failure_tells_the_model_what_to_fix() -> None:
    spec = OutputSpec.for_type(Invoice)
    with pytest.raises(DecisionError) as caught:
        spec.validate({"customer": "ACME", "total": "lots"})
    message = str(caught.value)
    assert isinstance(caught.value, OutputValidationError)
    assert "'total': Input should be a valid number" in message and "'lots'" in message
    assert "'paid': missing" in message
    assert "customer (string, required)" in message


@pytest.mark.parametrize("output_type", [float, list[float]])
def test_nan_and_infinity_are_no_answer(output_type: Any) -> None:
    spec = OutputSpec.for_type(output_type)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(OutputValidationError, match="finite number"):
            spec.validate({"answer": bad if output_type is float else [1.0, bad]})
    assert spec.validate({"answer": 2.5 if output_type is float else [2.5]}) in (2.5, [2.5])


def test_an_empty_text_answer_is_no_answer() -> None:
    spec = OutputSpec.for_type(str)
    for empty in ("", "  \n"):
        with pytest.raises(OutputValidationError, match="empty"):
            spec.validate({"answer": empty})
    assert spec.validate({"answer": "Paris"}) == "Paris"


def test_nested_failure_names_the_path_and_wrapped_types_name_answer() -> None:
    with pytest.raises(OutputValidationError, match=r"'address\.city': missing"):
        OutputSpec.for_type(Customer).validate({"name": "Ada", "address": {"street": "x"}})
    with pytest.raises(OutputValidationError, match=r"'answer': Input should be a valid integer"):
        OutputSpec.for_type(int).validate({"answer": "many"})
    with pytest.raises(OutputValidationError, match=r"'answer': Input should be 'yes' or 'no'"):
        OutputSpec.for_type(Literal["yes", "no"]).validate({"answer": "maybe"})
    with pytest.raises(OutputValidationError, match='missing "answer"'):
        OutputSpec.for_type(int).validate({"value": 3})


def test_an_object_sent_under_answer_is_accepted() -> None:
    spec = OutputSpec.for_type(Invoice)
    value = spec.validate({"answer": {"customer": "A", "total": 1, "paid": True}})
    assert value == Invoice(customer="A", total=1.0, paid=True)


def test_unusable_and_recursive_types_are_clear_errors() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    Node.model_rebuild()
    with pytest.raises(TypeError, match="recursive type 'Node'"):
        OutputSpec.for_type(Node)
    with pytest.raises(TypeError, match="cannot use"):
        OutputSpec.for_type(object())


def test_inline_refs_keeps_sibling_keywords_and_collapses_all_of() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "the a"}},
        "$defs": {"A": {"type": "integer", "description": "an A"}},
    }
    assert inline_refs(schema) == {"type": "object", "properties": {"a": {"type": "integer", "description": "the a"}}}


def test_validators_run_in_order_sync_and_async_and_may_replace_the_value() -> None:
    seen: list[str] = []

    def round_total(invoice: Invoice) -> Invoice:
        seen.append("sync")
        return invoice.model_copy(update={"total": round(invoice.total)})

    async def check_positive(invoice: Invoice) -> Invoice:
        seen.append("async")
        await asyncio.sleep(0)
        return invoice

    value = asyncio.run(run_validators([round_total, check_positive], Invoice(customer="A", total=2.6, paid=False)))
    assert value.total == 3 and seen == ["sync", "async"]


def test_a_validator_raising_model_retry_becomes_a_decision_error_for_the_model() -> None:
    async def must_be_paid(invoice: Invoice) -> Invoice:
        if not invoice.paid:
            raise ModelRetry("the invoice must be marked paid")
        return invoice

    with pytest.raises(DecisionError, match="the invoice must be marked paid") as caught:
        asyncio.run(run_validators([must_be_paid], Invoice(customer="A", total=1, paid=False)))
    assert isinstance(caught.value.__cause__, ModelRetry)


def test_other_validator_exceptions_are_the_apps_and_propagate() -> None:
    def broken(value: int) -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        asyncio.run(run_validators([broken], 1))
