"""Structured output in the Ollama emulator: "json", JSON schemas, and answers that break them."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal

import httpx
import ollama
import pytest
from pydantic import BaseModel, Field, ValidationError

from tests.emulators.ollama_schema import instance, violate
from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import collect

USER_HI = [{"role": "user", "content": "hi"}]


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Place(BaseModel):
    name: str
    lat: float = Field(ge=-90, le=90)
    population: int = Field(gt=1000, multiple_of=10)


class Report(BaseModel):
    summary: str
    mood: Literal["good", "bad"]
    colour: Colour
    places: list[Place] = Field(min_length=2)
    tags: list[str]
    score: float | None
    flags: dict[str, bool]
    note: str | None = None  # optional: a minimal instance leaves it out


async def test_json_is_always_an_object(emu: OllamaEmulator, client: ollama.AsyncClient) -> None:
    wrapped = await client.chat("llama3.2", USER_HI, format="json")
    assert json.loads(wrapped.message.content or "") == {"response": "Echo: hi"}
    emu.queue_replies("42", '{"answer": 42}')
    # grammarJSON's root is an object: a bare number could not come out.
    assert json.loads(
        (await client.chat("llama3.2", USER_HI, format="json")).message.content or ""
    ) == {"response": "42"}
    scripted = await client.chat("llama3.2", USER_HI, format="json")
    assert scripted.message.content == '{"answer": 42}'


async def test_a_schema_gets_a_minimal_valid_instance_in_chunks(
    client: ollama.AsyncClient,
) -> None:
    schema = Report.model_json_schema()
    chunks = [c async for c in await client.chat("llama3.2", USER_HI, format=schema, stream=True)]
    assert len(chunks) > 10  # streamed like any text
    text = "".join(c.message.content or "" for c in chunks)
    report = Report.model_validate_json(text)
    assert report.summary == "Echo: hi"  # the scripted text, in the first plain string
    assert len(report.places) == 2 and report.places[0] != report.places[1]
    assert report.places[0].population == 1010 and report.colour is Colour.RED
    assert "note" not in json.loads(text)

    generated = await client.generate("llama3.2", "hi", format=schema)
    Report.model_validate_json(generated.response)


def test_instances_follow_the_keywords() -> None:
    assert instance({"type": "object", "required": ["name"]}) == {"name": "example"}
    assert instance({"type": "integer", "exclusiveMinimum": 5, "maximum": 9}) == 6
    assert instance({"type": "number", "minimum": 2.5, "multipleOf": 0.5}) == 2.5
    assert instance({"type": "integer", "minimum": 10, "exclusiveMinimum": True}) == 11
    assert instance({"type": ["null", "boolean"]}) is False
    assert instance({"type": "string", "minLength": 9, "maxLength": 10}) == "examplexx"
    assert instance({"type": "string", "format": "date-time"}) == "2025-01-01T00:00:00Z"
    assert instance({"const": "fixed"}) == "fixed"
    assert instance({"type": "array", "items": {"type": "integer"}, "minItems": 3}) == [0, 1, 2]
    assert instance(
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "null"}], "minItems": 2}
    ) == ["example", None]
    assert instance(
        {
            "allOf": [
                {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"required": ["b"]},
            ]
        }
    ) == {"a": 0, "b": "example"}
    assert instance({"properties": {"a": {}, "b": {}}, "minProperties": 1}) == {"a": "example"}
    assert instance({}) == {}


@pytest.mark.parametrize(
    ("mode", "broken"),
    [
        ("auto", {"b": 0}),
        ("missing", {"b": 0}),
        ("type", {"a": 0, "b": 0}),
    ],
)
def test_violations_break_the_schema(mode: str, broken: dict[str, Any]) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    assert json.loads(violate({"a": "x", "b": 0}, schema, mode)) == broken
    with pytest.raises(ValueError):
        json.loads(violate({"a": "x", "b": 0}, schema, "invalid"))


async def test_violate_schema_breaks_the_next_answers_then_stops(
    emu: OllamaEmulator, client: ollama.AsyncClient
) -> None:
    schema = Place.model_json_schema()
    emu.violate_schema(times=2)
    await client.chat("llama3.2", USER_HI)  # no format: it does not count
    for _ in range(2):
        broken = await client.chat("llama3.2", USER_HI, format=schema)
        with pytest.raises(ValidationError, match="name"):
            Place.model_validate_json(broken.message.content or "")
    Place.model_validate_json(
        (await client.chat("llama3.2", USER_HI, format=schema)).message.content or ""
    )

    emu.violate_schema(mode="type")
    typed = await client.chat("llama3.2", USER_HI, format=schema)
    assert json.loads(typed.message.content or "")["name"] == 0
    emu.violate_schema(mode="invalid")
    cut = await client.chat("llama3.2", USER_HI, format=schema)
    with pytest.raises(ValueError):
        json.loads(cut.message.content or "")
    emu.violate_schema()
    not_an_object = await client.chat("llama3.2", USER_HI, format="json")
    assert json.loads(not_an_object.message.content or "") == "not an object"


def test_violate_schema_checks_its_arguments() -> None:
    emu = OllamaEmulator()
    with pytest.raises(ValueError, match="mode"):
        emu.violate_schema(mode="sometimes")
    with pytest.raises(ValueError, match="times"):
        emu.violate_schema(times=0)


async def test_num_predict_can_cut_structured_output_short(
    client: ollama.AsyncClient,
) -> None:
    # The one way a real constrained model returns broken JSON: it ran out of tokens.
    answer = await client.chat(
        "llama3.2", USER_HI, format=Report.model_json_schema(), options={"num_predict": 3}
    )
    assert answer.done_reason == "length"
    with pytest.raises(ValueError):
        json.loads(answer.message.content or "")


@pytest.mark.parametrize(
    ("fmt", "quoted"),
    [("xml", '"\\"xml\\""'), (5, '"5"'), (["a", 1], '"[\\"a\\",1]"'), (True, '"true"')],
)
async def test_an_invalid_format_is_the_runners_500(
    emu: OllamaEmulator, raw: httpx.AsyncClient, fmt: object, quoted: str
) -> None:
    body = {"model": "llama3.2", "messages": USER_HI, "format": fmt}
    emu.queue_replies("kept")
    emu.violate_schema(mode="invalid")
    response = await raw.post("/api/chat", json=body)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "error": f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'
    }
    # No model answered: the queued reply and the violation are still there.
    kept = await raw.post("/api/chat", json={**body, "format": "json", "stream": False})
    assert kept.json()["message"]["content"] == '{"response": "kept"}'[:10]
    # "" and null mean no format at all.
    for empty in ("", None):
        ok = await raw.post("/api/chat", json={**body, "format": empty, "stream": False})
        assert ok.json()["message"]["content"] == "Echo: hi"


class Weather(BaseModel):
    city: str
    temperature: float
    humidity: int
    sunny: bool
    tags: list[str]
    unit: str | None = None


async def test_format_always_yields_json(emu: OllamaEmulator, client: ollama.AsyncClient) -> None:
    as_json = await client.chat("llama3.2", USER_HI, format="json")
    assert isinstance(json.loads(as_json.message.content or ""), dict)

    schema = Weather.model_json_schema()
    structured = await client.chat("llama3.2", USER_HI, format=schema)
    Weather.model_validate_json(structured.message.content or "")
    chunks, _ = await collect(await client.generate("llama3.2", "hi", format=schema, stream=True))
    Weather.model_validate_json("".join(c.response or "" for c in chunks))

    emu.set_reply('{"city": "Paris", "temperature": 21.5}')
    passthrough = await client.chat("llama3.2", USER_HI, format="json")
    assert passthrough.message.content == '{"city": "Paris", "temperature": 21.5}'
