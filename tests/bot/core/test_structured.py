"""Structured output: checking a format before asking, an answer against it afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core.errors import InvalidRequestError, StructuredOutputError
from bot.core.structured import (
    MAX_ERRORS,
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    check_format,
    render_json,
    validate_answer,
)

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "role": {"enum": ["admin", "member"]},
        "pets": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"kind": {"type": "string"}, "legs": {"type": "integer"}},
                "required": ["kind"],
            },
        },
    },
    "required": ["name", "age"],
}


def refusal(format: object) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        check_format(format)
    return caught.value.user_message


def problems(content: str, format: str | dict[str, Any]) -> list[str]:
    with pytest.raises(StructuredOutputError) as caught:
        validate_answer(content, format)
    assert caught.value.content == content
    return caught.value.errors


@pytest.mark.parametrize(
    "format",
    [
        None,
        "text",
        "json",
        PERSON,
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        {"$defs": {"n": {"type": "number"}}, "type": "array", "items": {"$ref": "#/$defs/n"}},
        {"type": "object", "properties": {"pattern": {"type": "string"}}},  # a field's name
    ],
)
def test_acceptable_formats(format: object) -> None:
    check_format(format)


@pytest.mark.parametrize(
    ("format", "said"),
    [
        ("yaml", 'format must be "text", "json" or a JSON schema object'),
        (["json"], 'format must be "text", "json"'),
        ({"type": "strin"}, "The JSON schema is invalid: "),
        ({"type": "object", "required": "name"}, "(at $.required)"),
        ({"properties": {"age": {"minimum": "zero"}}}, "(at $.properties.age.minimum)"),
        ({"$schema": "http://example.com/my-draft", "type": "object"}, "not a JSON Schema draft"),
        ({"$ref": "https://example.com/schema.json"}, "only references inside the schema"),
        ({"type": "string", "pattern": "(a+)+$"}, "patterns are not supported"),
        ({"patternProperties": {"^x": {}}}, "patterns are not supported"),
        ({"default": {1, 2}}, "The JSON schema is not JSON"),
    ],
)
def test_refused_formats(format: object, said: str) -> None:
    assert said in refusal(format)


def test_a_huge_schema_is_refused() -> None:
    wide = {"type": "object", "properties": {f"field{i}": {"type": "string"} for i in range(2000)}}
    assert len(json.dumps(wide)) > MAX_SCHEMA_BYTES
    assert "too large" in refusal(wide)
    many = {"enum": [[0]] * 3000}  # small when serialized, yet many parts to walk
    assert "too large (more than" in refusal(many)
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(MAX_SCHEMA_DEPTH):
        deep = {"type": "array", "items": deep}
    assert f"nested too deeply (at most {MAX_SCHEMA_DEPTH} levels)" in refusal(deep)
    looped: dict[str, Any] = {"type": "object"}
    looped["properties"] = {"self": looped}
    assert "nested too deeply" in refusal(looped)  # a cycle ends at the depth bound


def test_a_valid_answer_is_parsed() -> None:
    answer = '{"name": "Ada", "age": 36, "role": "admin", "pets": [{"kind": "cat", "legs": 4}]}'
    assert validate_answer(answer, PERSON)["pets"][0] == {"kind": "cat", "legs": 4}
    assert validate_answer("[1, 2]", "json") == [1, 2]
    assert validate_answer("not json", "text") == "not json"


def test_schema_violations_name_where() -> None:
    answer = json.dumps({"name": 5, "age": -1, "role": "owner", "pets": [{"legs": "four"}]})
    found = problems(answer, PERSON)
    assert len(found) == MAX_ERRORS
    assert found[0] == "at $.name: 5 is not of type 'string'"
    assert found[1] == "at $.age: -1 is less than the minimum of 0"
    assert found[2].startswith("at $.role: 'owner' is not one of ['admin', 'member']")
    assert found[2].endswith("(and more)")  # the pet's problems are not listed
    assert problems('{"name": "Ada"}', PERSON) == ["at $: 'age' is a required property"]
    assert problems('{"name": "A", "age": 1, "pets": [{"legs": 2}]}', PERSON) == [
        "at $.pets[0]: 'kind' is a required property"
    ]


def test_each_error_stays_short() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "string"}}}
    [problem] = problems(json.dumps({"tags": ["x" * 50] * 100}), schema)
    assert len(problem) < 250 and problem.endswith("…")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("Sure! Here it is.", "not valid JSON: Expecting value at line 1, column 1"),
        ('{"name": "Ada",\n "age": }', "Expecting value at line 2, column 9"),
        ("", "it is empty"),
        ('{"age": NaN}', "NaN is not a JSON value"),
        ("[" * 100_000, "nested too deeply"),
        ('Here is the JSON:\n```json\n{"name": "Ada", "age": 1}\n```', "line 1, column 1"),
        ('```json\n{"name": "Ada",\n "age": }\n```', "line 3, column 9"),
    ],
)
def test_answers_that_are_not_json(content: str, said: str) -> None:
    [problem] = problems(content, "json")
    assert problem.startswith("the answer is not valid JSON") or "nested" in problem
    assert said in problem


@pytest.mark.parametrize(
    "content",
    [
        '```json\n{"name": "Ada", "age": 1}\n```',
        '\n```JSON\n{"name": "Ada", "age": 1}\n```\n',
        '```\n{"name": "Ada", "age": 1}```',
        '```{"name": "Ada", "age": 1}```',
    ],
)
def test_a_fenced_answer_is_accepted(content: str) -> None:
    assert validate_answer(content, PERSON) == {"name": "Ada", "age": 1}


def test_a_fenced_answer_is_still_validated() -> None:
    assert problems('```json\n{"name": "Ada"}\n```', PERSON) == [
        "at $: 'age' is a required property"
    ]


def test_render_json() -> None:
    value = {"name": "Zoë", "code": "```py\nprint(1)\n```", "n": [1, 2]}
    text = render_json(value)
    assert '"name": "Zoë"' in text  # not \u00eb
    assert "\n  " in text  # indented
    assert "```" not in text  # cannot close the surrounding code block
    assert json.loads(text) == value


def test_a_reference_to_nowhere_is_reported_shortly() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    check_format(schema)  # resolving waits for an answer to check
    [problem] = problems('{"a": 1}', schema)
    assert problem.startswith("the schema's reference cannot be resolved")
    assert len(problem) <= 200
