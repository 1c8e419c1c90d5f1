"""The turn index against the Ollama emulator (bag-of-words embeddings: a query sharing
distinctive words with a message is close to it, one sharing none is not) and a real SQLite
store: turns embedded in the background and found by meaning, never delaying an answer,
nothing dropped when the queue is full, a failing model retried, a restart caught up, and a
change of embedding model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from bot import OllamaRequestManager
from bot.core.embedding import Embedder, Embeddings
from bot.core.errors import OllamaUnavailableError
from bot.core.memory.turn_index import DEFAULT_MIN_SCORE, TurnIndex
from bot.core.tools.builtin import search_conversation_tool
from bot.core.tools.registry import ToolContext, ToolSet
from bot.storage.memory import MemoryStore
from tests.bot.core.memory.conftest import (
    WAIT,
    MemoryFactory,
    converse,
    settled,
)
from tests.conftest import ManagerFactory
from tests.emulators.ollama_models import second_embedding_model
from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import wait_until

NOMIC = "nomic-embed-text:latest"
LIGHTHOUSE = "Our lighthouse keeper Marta repaints the tower every spring."
RELEASE = "The release of version two slipped to March because of the database migration."
PASTA = "My favourite pasta is carbonara with guanciale."
# Shares four of LIGHTHOUSE's seven words, in another order: close in meaning, but not a
# phrase of it, so a search for the words themselves finds nothing.
ABOUT_LIGHTHOUSE = "tower lighthouse Marta keeper"


def embedded_texts(emu: OllamaEmulator, since: int = 0) -> list[str]:
    texts: list[str] = []
    for request in emu.requests[since:]:
        if request.path == "/api/embed" and request.json:
            raw = request.json.get("input")
            texts.extend([raw] if isinstance(raw, str) else raw or [])
    return texts


def embed_calls(emu: OllamaEmulator) -> int:
    return sum(r.path == "/api/embed" for r in emu.requests)


@pytest.fixture
async def manager(make_manager: ManagerFactory, ollama_emu: OllamaEmulator) -> OllamaRequestManager:
    ollama_emu.set_reply(lambda body: "Noted.")
    m = make_manager()
    await m.start()
    return m


async def test_turns_are_embedded_in_the_background_and_found_by_meaning(
    manager: OllamaRequestManager, memory_of: MemoryFactory, ollama_emu: OllamaEmulator
) -> None:
    memory = memory_of(manager)
    memory.start()
    await converse(manager, memory, "channel:1", LIGHTHOUSE, RELEASE, PASTA)
    await converse(manager, memory, "channel:2", "The lighthouse keeper Marta is my aunt.")
    await settled(memory)

    found = await memory.search("channel:1", ABOUT_LIGHTHOUSE, 5)
    assert found is not None
    assert [(turn.message["role"], turn.message["content"]) for turn in found] == [
        ("user", LIGHTHOUSE)
    ]
    assert found[0].score > DEFAULT_MIN_SCORE
    # The words as typed are in no message: only the meaning finds it.
    assert await manager.store.search_messages("channel:1", ABOUT_LIGHTHOUSE, 5) == []

    release = await memory.search("channel:1", "release version March migration", 5)
    assert release is not None and [t.message["content"] for t in release] == [RELEASE]
    # Nothing of the conversation is about this: nothing clears the floor.
    assert await memory.search("channel:1", "quantum chromodynamics", 5) == []
    # No vectors for a conversation: None, so the caller searches another way.
    assert await memory.search("channel:404", ABOUT_LIGHTHOUSE, 5) is None
    # Every user and assistant message was embedded, with the configured model.
    assert sorted(set(embedded_texts(ollama_emu))) == sorted(
        {LIGHTHOUSE, RELEASE, PASTA, "The lighthouse keeper Marta is my aunt.", "Noted."}
        | {ABOUT_LIGHTHOUSE, "release version March migration", "quantum chromodynamics"}
    )
    embeds = [r for r in ollama_emu.requests if r.path == "/api/embed"]
    assert embeds and {r.json["model"] for r in embeds if r.json} == {"nomic-embed-text"}


async def test_search_ranks_best_first_and_keeps_k(
    manager: OllamaRequestManager, memory_of: MemoryFactory, ollama_emu: OllamaEmulator
) -> None:
    memory = memory_of(manager, min_score=0.1)
    memory.start()
    await converse(
        manager,
        memory,
        "s",
        "lighthouse",
        "lighthouse keeper",
        "lighthouse keeper Marta",
        "lighthouse keeper Marta tower",
    )
    await settled(memory)
    found = await memory.search("s", ABOUT_LIGHTHOUSE, 3)
    assert found is not None
    assert [t.message["content"] for t in found] == [
        "lighthouse keeper Marta tower",
        "lighthouse keeper Marta",
        "lighthouse keeper",
    ]
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert found[0].score > found[1].score > found[2].score


class GatedEmbedder(Embedder):
    """The manager's embedder, held at a gate: embedding that takes as long as a test likes."""

    def __init__(self, inner: Embedder) -> None:
        self.__dict__.update(inner.__dict__)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def embed(self, texts: Sequence[str], *, model: str | None = None) -> Embeddings:
        self.waiting.set()
        await self.gate.wait()
        return await super().embed(texts, model=model)


async def test_answers_never_wait_for_embedding(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    embedder = GatedEmbedder(manager.embedder)
    index = TurnIndex(MemoryStore(manager.store), embedder)
    index.start()
    try:
        await manager.ask(prompt=LIGHTHOUSE, session_id="s")
        index.note_stored("s")
        await asyncio.wait_for(embedder.waiting.wait(), WAIT)  # the worker is embedding
        # ...and stays stuck there while more questions are answered and noted.
        for question in (RELEASE, PASTA):
            result = await asyncio.wait_for(manager.ask(prompt=question, session_id="s"), WAIT)
            assert result.content == "Noted."
            index.note_stored("s")
        assert embed_calls(ollama_emu) == 0
        embedder.gate.set()
        await asyncio.wait_for(index.idle(), WAIT)
        assert await MemoryStore(manager.store).unembedded(index.model, 10, max_chars=99) == []
    finally:
        await index.close()


async def test_a_full_queue_drops_nothing(
    manager: OllamaRequestManager, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(manager.store)
    index = TurnIndex(store, manager.embedder, queue_size=1)
    index.start()
    try:
        await asyncio.wait_for(index.idle(), WAIT)  # the catch-up at start found nothing
        for session_id in ("a", "b", "c"):
            await manager.store.append_turn(
                session_id,
                [{"role": "user", "content": f"{session_id} asks"},
                 {"role": "assistant", "content": f"{session_id} answered"}],
            )  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="bot.core.memory.turn_index"):
            # Together: the worker takes none meanwhile. "a" twice is queued once.
            for session_id in ("a", "a"):
                index.note_stored(session_id)
            assert caplog.records == []
            for session_id in ("b", "c"):
                index.note_stored(session_id)
        assert ["queue full" in r.getMessage() for r in caplog.records] == [True]
        await asyncio.wait_for(index.idle(), WAIT)
        assert await store.unembedded(index.model, 10, max_chars=99) == []
    finally:
        await index.close()


async def test_the_catch_up_pages_through_the_backlog(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    for i in range(4):
        await manager.store.append_turn(
            f"s{i % 2}",
            [{"role": "user", "content": f"question {i}"},
             {"role": "assistant", "content": f"answer {i}"}],
        )  # fmt: skip
    store = MemoryStore(manager.store)
    index = TurnIndex(store, manager.embedder, batch=3)
    index.start()
    try:
        await asyncio.wait_for(index.idle(), WAIT)
    finally:
        await index.close()
    assert await store.unembedded(index.model, 10, max_chars=99) == []
    # Newest first, three at a time: each message once.
    assert embedded_texts(ollama_emu) == [
        "answer 3", "question 3", "answer 2",
        "question 2", "answer 1", "question 1",
        "answer 0", "question 0",
    ]  # fmt: skip


async def test_a_missing_model_is_logged_once_and_retried(
    manager: OllamaRequestManager,
    memory_of: MemoryFactory,
    ollama_emu: OllamaEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    embedding_model = ollama_emu.models.pop(NOMIC)
    memory = memory_of(manager)
    caplog.set_level(logging.DEBUG, logger="bot.core.memory.turn_index")
    memory.start()
    await converse(manager, memory, "s", LIGHTHOUSE)  # answered all the same
    await wait_until(lambda: embed_calls(ollama_emu) >= 3, WAIT)  # tried again, and again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nomic-embed-text" in warnings[0].getMessage()
    assert await memory.search("s", ABOUT_LIGHTHOUSE, 5) is None  # nothing indexed yet

    ollama_emu.models[NOMIC] = embedding_model  # pulled at last
    await settled(memory)
    found = await memory.search("s", ABOUT_LIGHTHOUSE, 5)
    assert found is not None and [t.message["content"] for t in found] == [LIGHTHOUSE]
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_ollama_down_then_back(
    manager: OllamaRequestManager, memory_of: MemoryFactory, ollama_emu: OllamaEmulator
) -> None:
    memory = memory_of(manager)
    memory.start()
    await settled(memory)
    await converse(manager, memory, "s", LIGHTHOUSE)
    await settled(memory)
    await manager.store.append_turn("s", [{"role": "user", "content": PASTA}])
    ollama_emu.refuse_connections()
    memory.on_turn_stored("s")
    calls = embed_calls(ollama_emu)
    # Searching meanwhile fails as Ollama does (the tool then searches words).
    with pytest.raises(OllamaUnavailableError):
        await memory.search("s", "pasta carbonara", 5)
    await ollama_emu.accept_connections()
    await settled(memory)
    assert embed_calls(ollama_emu) > calls
    found = await memory.search("s", "favourite pasta carbonara guanciale", 5)
    assert found is not None and [t.message["content"] for t in found] == [PASTA]


async def test_a_restart_embeds_what_the_last_run_did_not(
    make_manager: ManagerFactory, memory_of: MemoryFactory, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply(lambda body: "Noted.")
    first = make_manager()
    await first.start()
    memory = memory_of(first)
    memory.start()
    await converse(first, memory, "s", LIGHTHOUSE)
    await settled(memory)
    await memory.close()
    await first.ask(prompt=PASTA, session_id="s")  # stored while nothing embeds
    await first.close()

    second = make_manager()  # the same database
    await second.start()
    since = len(ollama_emu.requests)
    memory = memory_of(second)
    memory.start()
    await settled(memory)
    # Only what the first run left: its last question and answer, not the first turn again.
    assert sorted(embedded_texts(ollama_emu, since)) == sorted([PASTA, "Noted."])
    found = await memory.search("s", "favourite pasta carbonara guanciale", 5)
    assert found is not None and [t.message["content"] for t in found] == [PASTA]
    found = await memory.search("s", ABOUT_LIGHTHOUSE, 5)
    assert found is not None and [t.message["content"] for t in found] == [LIGHTHOUSE]


async def test_vectors_of_another_model_are_ignored_then_replaced(
    manager: OllamaRequestManager, memory_of: MemoryFactory, ollama_emu: OllamaEmulator
) -> None:
    mxbai = second_embedding_model()
    ollama_emu.models[mxbai.name] = mxbai
    memory = memory_of(manager)
    memory.start()
    await converse(manager, memory, "s", LIGHTHOUSE, PASTA)
    await settled(memory)
    await memory.close()

    changed = memory_of(manager, embedding_model="mxbai-embed-large")
    # Not started yet: nomic-embed-text's vectors are never compared with mxbai's.
    assert await changed.search("s", ABOUT_LIGHTHOUSE, 5) is None
    since = len(ollama_emu.requests)
    changed.start()
    await settled(changed)
    assert sorted(embedded_texts(ollama_emu, since)) == sorted(
        [LIGHTHOUSE, "Noted.", PASTA, "Noted."]
    )
    store = MemoryStore(manager.store)
    assert await store.vectors_of("s", "nomic-embed-text") == []
    vectors = await store.vectors_of("s", "mxbai-embed-large")
    assert len(vectors) == 4 and {len(blob) for _, blob in vectors} == {mxbai.embedding_length * 4}
    found = await changed.search("s", ABOUT_LIGHTHOUSE, 5)
    assert found is not None and [t.message["content"] for t in found] == [LIGHTHOUSE]


async def test_the_search_tool_uses_the_index_once_it_has_the_conversation(
    manager: OllamaRequestManager, memory_of: MemoryFactory
) -> None:
    memory = memory_of(manager)
    tool = search_conversation_tool(manager.store.search_messages, memory.search)
    tools = ToolSet({tool.name: tool}, ToolContext("s"))
    call = {"function": {"name": tool.name, "arguments": {"query": "lighthouse keeper"}}}
    await converse(manager, memory, "s", LIGHTHOUSE)  # not started: nothing indexed

    [by_words] = await tools.run([call])
    assert by_words.content.splitlines() == [
        "Messages of this conversation containing 'lighthouse keeper':",
        f"user: {LIGHTHOUSE}",
    ]
    memory.start()
    await settled(memory)
    [by_meaning] = await tools.run([call])
    header, *lines = by_meaning.content.splitlines()
    assert "closest in meaning" in header
    assert lines == [f"user (0.53): {LIGHTHOUSE}"]  # two of its seven words: 2/sqrt(2*7)
