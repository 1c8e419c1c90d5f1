"""JSON and schema answers end to end: /ask format:JSON and a schema file attached to /ask,
the answer shown as a ```json block once it is known to be valid."""

from __future__ import annotations

import json
from typing import Any

from bot.discord_app.routing import channel_key
from tests.e2e.conftest import World, chat_bodies, ollama_paths, stored_messages, wait_private_note
from tests.e2e.test_ask import finished, footer_of, pages_without_footer
from tests.emulators.discord_server import InteractionRecord, Upload

CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


async def ask_json(w: World, prompt: str, **options: Any) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": prompt, **options}
    )


def schema_file(schema: object, name: str = "city.schema.json") -> Upload:
    return Upload(name, json.dumps(schema).encode())


def json_block(text: str) -> Any:
    """The value of a reply that is one ```json block, and nothing else."""
    assert text.startswith("```json\n") and text.endswith("\n```"), text
    return json.loads(text[len("```json\n") : -len("\n```")])


def public_text(rec: InteractionRecord) -> str:
    shown = [rec.original, *rec.followups]
    return "\n".join(m.content for m in shown if m and not m.ephemeral and not m.deleted)


async def test_format_json_shows_a_json_block(w: World) -> None:
    w.ollama.set_reply('{"answer": 42, "unit": "none"}')
    rec = await ask_json(w, "The answer, as JSON.", format="json")
    messages = await finished(rec)

    [text] = pages_without_footer(messages)
    assert json_block(text) == {"answer": 42, "unit": "none"}
    assert footer_of(messages).startswith("-# llama3.2")
    [body] = chat_bodies(w.ollama)
    assert body["format"] == "json"
    stored = await stored_messages(w, channel_key(w.channel.id), 2)
    assert json.loads(stored[-1]["content"]) == {"answer": 42, "unit": "none"}


async def test_a_schema_file_shapes_the_answer(w: World) -> None:
    rec = await ask_json(w, "A big city.", schema=schema_file(CITY_SCHEMA))
    messages = await finished(rec)

    [text] = pages_without_footer(messages)
    value = json_block(text)
    assert set(value) == {"city", "population"}
    assert isinstance(value["city"], str) and isinstance(value["population"], int)
    [body] = chat_bodies(w.ollama)
    assert body["format"] == CITY_SCHEMA


async def test_an_answer_that_misses_its_schema_once_is_asked_again(w: World) -> None:
    w.ollama.violate_schema(1, mode="missing")
    rec = await ask_json(w, "A big city.", schema=schema_file(CITY_SCHEMA))
    messages = await finished(rec)

    assert len(chat_bodies(w.ollama)) == 2
    assert set(json_block(pages_without_footer(messages)[0])) == {"city", "population"}
    stored = await stored_messages(w, channel_key(w.channel.id), 2)
    assert [m["role"] for m in stored] == ["user", "assistant"]  # the valid answer only
    assert set(json.loads(stored[-1]["content"])) == {"city", "population"}


async def test_an_answer_that_misses_its_schema_twice_is_refused(w: World) -> None:
    w.ollama.violate_schema(2, mode="type")
    rec = await ask_json(w, "A big city.", schema=schema_file(CITY_SCHEMA))
    await rec.wait_done(lambda r: r.original is not None and "⚠️" in r.original.content)
    await rec.wait_quiet()

    assert len(chat_bodies(w.ollama)) == 2
    assert rec.original is not None
    assert rec.original.content == (
        "⚠️ The model's answer did not match the requested format: at $.city: 0 is not of "
        "type 'string' Try again, or simplify the schema."
    )
    assert "```" not in rec.original.content  # the invalid answer is not shown as one
    assert await w.bot.manager.store.messages(channel_key(w.channel.id)) == []
    assert w.bot.manager.get_statistics()["failed_requests"] == 1


async def test_an_invalid_schema_file_is_refused_before_asking(w: World) -> None:
    rec = await ask_json(w, "A big city.", schema=schema_file({"type": "town"}))
    note = await wait_private_note(rec)
    await rec.wait_quiet()

    assert note.startswith("The JSON schema is invalid: 'town' is not valid under")
    assert public_text(rec) == ""
    assert "/api/chat" not in ollama_paths(w.ollama)
    assert await w.bot.manager.store.messages(channel_key(w.channel.id)) == []


async def test_a_schema_file_that_is_not_json_is_refused(w: World) -> None:
    rec = await ask_json(w, "A big city.", schema=Upload("city.json", b"{not json"))
    note = await wait_private_note(rec)
    await rec.wait_quiet()

    assert note == "`city.json` is not valid JSON, so it cannot be a JSON schema."
    assert public_text(rec) == ""
    assert "/api/chat" not in ollama_paths(w.ollama)
