"""The running summary against the Ollama emulator and a real SQLite store: a long
conversation whose early fact reaches later questions through the summary, folds one at a
time per conversation, a failed fold tried again, the summary bounded, and /reset's
clear_messages deleting it (a fold in flight included)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from bot import OllamaRequestManager
from bot.core.memory.summary import MAX_SUMMARY_CHARS, PROMPT, SUMMARY_MAX_TOKENS
from bot.core.planning import SUMMARY_HEADING
from bot.storage import SessionStore
from tests.bot.core.memory.conftest import (
    WAIT,
    MemoryFactory,
    converse,
    settled,
    store_turn,
    summarizer,
)
from tests.conftest import ManagerFactory
from tests.emulators.ollama_models import EmulatedModel, RecordedRequest
from tests.emulators.ollama_server import OllamaEmulator

WINDOW = 4  # messages of history sent: two turns
PROMPT_START = PROMPT.split("\n", 1)[0]
CAT = "My cat is called Miso."
SMALL_TALK = ["I live in Lyon.", "What is 2+2?", "Tell me a joke.", "Another one, please."]


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def summary_model(body: dict[str, Any]) -> str:
    """A model that summarizes faithfully: the previous summary, then every user line."""
    prompt = last_user_text(body)
    previous = re.search(r"Previous summary:\n(.*?)\n\nMessages", prompt, re.DOTALL)
    kept = [] if previous is None or previous.group(1) == "(none yet)" else [previous.group(1)]
    kept += re.findall(r"^user: (.*)$", prompt, re.MULTILINE)
    return " ".join(kept)


def scripted(body: dict[str, Any]) -> str:
    if last_user_text(body).startswith(PROMPT_START):
        return summary_model(body)
    return "Noted."


def summary_requests(emu: OllamaEmulator) -> list[RecordedRequest]:
    return [
        r
        for r in emu.requests
        if r.path == "/api/chat" and r.json and last_user_text(r.json).startswith(PROMPT_START)
    ]


def questions(emu: OllamaEmulator) -> list[RecordedRequest]:
    return [
        r
        for r in emu.requests
        if r.path == "/api/chat" and r.json and not last_user_text(r.json).startswith(PROMPT_START)
    ]


@pytest.fixture
async def manager(make_manager: ManagerFactory, ollama_emu: OllamaEmulator) -> OllamaRequestManager:
    ollama_emu.set_reply(scripted)
    m = make_manager(max_history_length=WINDOW)
    await m.start()
    return m


async def fill(store: SessionStore, session_id: str, turns: int, first: int = 0) -> None:
    """Turns stored as the executor stores them, without asking a model."""
    for i in range(first, first + turns):
        await store.append_turn(
            session_id,
            [{"role": "user", "content": f"question {i}"},
             {"role": "assistant", "content": f"answer {i}"}],
            model="llama3.2",
        )  # fmt: skip


async def summary_of(store: SessionStore, session_id: str) -> str | None:
    record = await store.get(session_id)
    return None if record is None else record.settings.summary


async def test_an_early_fact_outlives_the_window_through_the_summary(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await converse(manager, "s", CAT, *SMALL_TALK[:2])
    # Four places: the question and one turn. The two turns before it fell out and were
    # folded (a fold waits for two turns' worth), with the conversation's model.
    [fold] = summary_requests(ollama_emu)
    assert fold.json is not None and fold.json["model"] == "llama3.2"
    assert f"user: {CAT}" in last_user_text(fold.json)
    assert "assistant: Noted." in last_user_text(fold.json)
    assert SMALL_TALK[1] not in last_user_text(fold.json)  # still sent
    assert await summary_of(manager.store, "s") == f"{CAT} {SMALL_TALK[0]}"

    await converse(manager, "s", "What is my cat called?")
    asked = questions(ollama_emu)[-1].messages
    assert asked[0]["role"] == "system"
    assert f"{SUMMARY_HEADING}\n{CAT} {SMALL_TALK[0]}" in asked[0]["content"]
    # The fact is no longer in the history sent: only the summary carries it.
    assert [m["content"] for m in asked[1:]] == [SMALL_TALK[1], "Noted.", "What is my cat called?"]

    # The next fold starts from the previous summary.
    await converse(manager, "s", "One more.")
    _, second = summary_requests(ollama_emu)
    assert f"Previous summary:\n{CAT} {SMALL_TALK[0]}\n" in last_user_text(second.json or {})
    assert await summary_of(manager.store, "s") == " ".join(
        [CAT, SMALL_TALK[0], SMALL_TALK[1], "What is my cat called?"]
    )

    # /reset clears the conversation: the summary goes with it.
    await manager.store.clear_messages("s")
    assert await summary_of(manager.store, "s") is None
    await converse(manager, "s", "Hello again.")
    assert SUMMARY_HEADING not in str(questions(ollama_emu)[-1].messages[0].get("content"))


async def test_a_fold_is_bounded_and_asked_without_thinking(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    # A model that would ramble on: a fold holds a slot the members' questions need.
    thinker = EmulatedModel("qwen3:latest", capabilities=("completion", "thinking"))
    ollama_emu.models[thinker.name] = thinker
    ollama_emu.set_reply(lambda body: "word " * 3000 if scripted(body) != "Noted." else "Noted.")
    manager = make_manager(max_history_length=WINDOW, default_model="qwen3")
    await manager.start()
    await converse(manager, "s", CAT, *SMALL_TALK[:2])
    [fold] = summary_requests(ollama_emu)
    assert fold.json is not None
    assert fold.json["options"]["num_predict"] == SUMMARY_MAX_TOKENS
    assert fold.json["think"] is False  # a thinking model's thoughts would count against it
    summary = await summary_of(manager.store, "s")
    assert summary is not None and 0 < len(summary) <= MAX_SUMMARY_CHARS


async def test_nothing_is_folded_before_two_turns_fell_out(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    await converse(manager, "s", CAT, SMALL_TALK[0])
    # One turn out of the window: not yet worth a request.
    assert summary_requests(ollama_emu) == []
    assert await summary_of(manager.store, "s") is None


async def test_one_fold_at_a_time_per_conversation(
    manager: OllamaRequestManager,
    memory_of: MemoryFactory,
    side_store: SessionStore,
    ollama_emu: OllamaEmulator,
) -> None:
    memory = memory_of(manager, store=side_store)
    await fill(side_store, "s", 10)
    for _ in range(5):  # five turns noted together, as a busy channel would
        memory.on_turn_stored("s")
    await settled(memory)
    [fold] = summary_requests(ollama_emu)  # one request for the eighteen that fell out
    assert "user: question 8" in last_user_text(fold.json or {})
    assert "question 9" not in last_user_text(fold.json or {})  # still in the window
    summary = await summary_of(side_store, "s")
    assert summary == " ".join(f"question {i}" for i in range(9))


async def test_a_failed_fold_is_tried_again_at_the_next_turn(
    manager: OllamaRequestManager,
    memory_of: MemoryFactory,
    side_store: SessionStore,
    ollama_emu: OllamaEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = memory_of(manager, store=side_store)
    await fill(side_store, "s", 3)
    ollama_emu.fail_next(status=400, error="invalid request")
    with caplog.at_level(logging.WARNING, logger="bot.core.memory.summary"):
        await store_turn(side_store, memory, "s", "question 3")
        await settled(memory)
    assert ["summary of s not updated" in r.getMessage() for r in caplog.records] == [True]
    assert await summary_of(side_store, "s") is None

    await store_turn(side_store, memory, "s", "question 4")
    await settled(memory)
    assert await summary_of(side_store, "s") == " ".join(f"question {i}" for i in range(4))


async def test_the_summary_is_bounded(
    manager: OllamaRequestManager,
    memory_of: MemoryFactory,
    side_store: SessionStore,
    ollama_emu: OllamaEmulator,
) -> None:
    sentence = "The member said something worth keeping. "
    ollama_emu.set_reply(sentence * 200)
    memory = memory_of(manager, store=side_store)
    await fill(side_store, "s", 4)
    memory.on_turn_stored("s")
    await settled(memory)
    summary = await summary_of(side_store, "s")
    assert summary is not None and len(sentence * 200) > MAX_SUMMARY_CHARS
    assert MAX_SUMMARY_CHARS // 2 < len(summary) <= MAX_SUMMARY_CHARS
    assert summary.endswith("keeping.")  # cut after a sentence


async def test_a_fold_under_way_when_the_conversation_is_cleared_is_dropped(
    manager: OllamaRequestManager, memory_of: MemoryFactory, side_store: SessionStore
) -> None:
    asked = asyncio.Event()
    go_on = asyncio.Event()
    summarize = summarizer(manager)

    async def held(prompt: str, model: str | None) -> str:
        asked.set()
        await go_on.wait()
        return await summarize(prompt, model)

    memory = memory_of(manager, store=side_store, summarize=held)
    await fill(side_store, "s", 4)
    memory.on_turn_stored("s")
    await asyncio.wait_for(asked.wait(), WAIT)
    await side_store.clear_messages("s")  # what /reset does, while the model summarizes
    await fill(side_store, "s", 1)
    go_on.set()
    await settled(memory)
    assert await summary_of(side_store, "s") is None

    # Not a fold that cannot write at all: with nothing cleared, the same one lands.
    await fill(side_store, "s", 3, first=1)
    memory.on_turn_stored("s")
    await settled(memory)
    assert await summary_of(side_store, "s") == "question 0 question 1 question 2"
