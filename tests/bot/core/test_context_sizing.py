"""What a query sends fits the window it asks for: history, the answer's room, and a
tokenizer denser than the first guess, learned from the server's own counts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot import OllamaRequestManager
from bot.core.context_window import prompt_budget
from bot.core.tools.registry import Tool, ToolContext
from tests.conftest import ManagerFactory
from tests.emulators import ollama_answers
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator


@pytest.fixture
async def dense_emu() -> AsyncIterator[OllamaEmulator]:
    # Two characters per token: a tokenizer that splits this text finer than the bot's
    # first guess of three (non-English text, code).
    model = EmulatedModel(
        "llama3.2:latest",
        context_length=131_072,
        chars_per_token=2.0,
        capabilities=("completion", "tools"),
    )
    async with OllamaEmulator([model]) as emu:
        yield emu


def question(i: int) -> str:
    return f"Question {i}: " + " ".join(f"detail-{i}-{j}" for j in range(30))


@pytest.fixture
async def manager(
    make_manager: ManagerFactory, database_url: str, dense_emu: OllamaEmulator
) -> OllamaRequestManager:
    """A 2048-token window, without the running summary, which would take some of it
    (tested elsewhere); every answer about 300 characters."""
    manager = make_manager(
        host=dense_emu.url,
        database_url=database_url,
        default_num_ctx=2048,
        conversation_memory=False,
    )
    await manager.start()
    dense_emu.set_reply(lambda body: "An answer of some length. " * 12)
    return manager


async def test_a_long_conversation_keeps_to_the_window_with_room_for_the_answer(
    manager: OllamaRequestManager, dense_emu: OllamaEmulator
) -> None:
    model = dense_emu.models["llama3.2:latest"]
    for i in range(40):
        await manager.query(prompt=question(i), session_id="long")

    bodies = [r.json or {} for r in dense_emu.requests if r.path == "/api/chat"]
    assert dense_emu.truncations == []  # Ollama never had to drop a word
    for body in bodies:
        assert body["options"] == {"num_ctx": 2048}
        # The prompt leaves the answer its room (a quarter of the window).
        assert ollama_answers.prompt_tokens(body, model) <= prompt_budget(2048)
    # Still a conversation: the last question came with the turns before it.
    assert len(bodies[-1]["messages"]) > 6
    # ... and the bot learned this model's tokenizer is denser than it first assumed.
    assert manager.tokens.chars_per_token("llama3.2") < 2.0


def tool_schema(i: int) -> dict[str, Any]:
    """A tool whose schema takes room in the prompt: Ollama renders the tools into it."""
    properties = {
        f"field_{j}": {"type": "string", "description": f"Field {j} of the record {i}."}
        for j in range(4)
    }
    return {
        "type": "function",
        "function": {
            "name": f"lookup_{i}",
            "description": f"Look up record {i} in the archive by its fields.",
            "parameters": {"type": "object", "properties": properties},
        },
    }


async def test_the_tools_offered_take_their_room_in_the_window(
    manager: OllamaRequestManager, dense_emu: OllamaEmulator
) -> None:
    # The real-model stage found it: the history was sized as if the tools took no room, so
    # a conversation already filling its window went over it once tools were offered.
    model = dense_emu.models["llama3.2:latest"]
    for i in range(12):
        await manager.query(prompt=question(i), session_id="long")
    tools = [tool_schema(i) for i in range(2)]
    assert ollama_answers.count_tokens(json.dumps(tools), model) > 400  # a fifth of it
    for i in range(12, 16):
        await manager.query(prompt=question(i), session_id="long", tools=tools)

    bodies = [r.json or {} for r in dense_emu.requests if r.path == "/api/chat"]
    assert dense_emu.truncations == []
    for body in bodies:
        assert ollama_answers.prompt_tokens(body, model) <= prompt_budget(2048)
    assert bodies[-1]["tools"] == tools
    assert len(bodies[-1]["messages"]) >= 3  # still a conversation: the last turn came too


async def test_the_bots_tools_are_left_out_of_a_window_they_would_crowd(
    make_manager: ManagerFactory, database_url: str, dense_emu: OllamaEmulator
) -> None:
    manager = make_manager(host=dense_emu.url, database_url=database_url, default_num_ctx=512)
    await manager.start()
    names = []
    for i in range(2):
        schema = tool_schema(i)["function"]
        manager.tools.add(
            Tool(schema["name"], schema["description"], schema["parameters"], handler=unused)
        )
        names.append(schema["name"])
    toolset = manager.tools.select(names, ToolContext(session_id="small"))
    dense_emu.set_reply("Answered without them.")

    result = await manager.ask(prompt="Look it up.", session_id="small", toolset=toolset)

    (body,) = [r.json or {} for r in dense_emu.requests if r.path == "/api/chat"]
    assert not body.get("tools") and dense_emu.truncations == []
    assert result.content == "Answered without them." and result.tools_without_room
    wide = await manager.ask(prompt="And now?", num_ctx=8192, toolset=toolset)
    assert not wide.tools_without_room
    assert [r.json or {} for r in dense_emu.requests if r.path == "/api/chat"][-1]["tools"]


async def unused(arguments: dict[str, Any], context: ToolContext) -> str:
    raise AssertionError("not called in these tests")
