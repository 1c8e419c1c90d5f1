"""What a query sends fits the window it asks for: history, the answer's room, and a
tokenizer denser than the first guess, learned from the server's own counts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.core.context_window import prompt_budget
from tests.conftest import ManagerFactory
from tests.emulators import ollama_answers
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator


@pytest.fixture
async def dense_emu() -> AsyncIterator[OllamaEmulator]:
    # Two characters per token: a tokenizer that splits this text finer than the bot's
    # first guess of three (non-English text, code).
    model = EmulatedModel("llama3.2:latest", context_length=131_072, chars_per_token=2.0)
    async with OllamaEmulator([model]) as emu:
        yield emu


def question(i: int) -> str:
    return f"Question {i}: " + " ".join(f"detail-{i}-{j}" for j in range(30))


async def test_a_long_conversation_keeps_to_the_window_with_room_for_the_answer(
    make_manager: ManagerFactory, database_url: str, dense_emu: OllamaEmulator
) -> None:
    # Without the running summary, which would take some of the window (tested elsewhere).
    manager = make_manager(
        host=dense_emu.url,
        database_url=database_url,
        default_num_ctx=2048,
        conversation_memory=False,
    )
    await manager.start()
    model = dense_emu.models["llama3.2:latest"]
    dense_emu.set_reply(lambda body: "An answer of some length. " * 12)
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
