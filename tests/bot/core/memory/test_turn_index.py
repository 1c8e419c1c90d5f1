"""The turn index against the Ollama emulator (bag-of-words embeddings: a query sharing
distinctive words with a message is close to it, one sharing none is not) and real SQLite
stores: turns embedded in the background and found by meaning, the conversation search tool,
answers unaffected by a missing embedding model, nothing dropped when the queue is full, a
failing model retried, a restart caught up, and a change of embedding model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from bot import OllamaRequestManager
from bot.core.embedding import Embedder, Embeddings
from bot.core.errors import OllamaUnavailableError
from bot.core.memory.turn_index import DEFAULT_MIN_SCORE, TurnIndex
from bot.core.tools.registry import ToolContext, ToolOutcome
from bot.storage import SessionStore
from bot.storage.memory import MemoryStore
from tests.bot.core.memory.conftest import (
    WAIT,
    MemoryFactory,
    converse,
    settled,
    store_turn,
    wired,
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
ABOUT_PASTA = "favourite pasta carbonara guanciale"


def embedded_texts(emu: OllamaEmulator, since: int = 0) -> list[str]:
    texts: list[str] = []
    for request in emu.requests[since:]:
        if request.path == "/api/embed" and request.json:
            raw = request.json.get("input")
            texts.extend([raw] if isinstance(raw, str) else raw or [])
    return texts


def embed_calls(emu: OllamaEmulator) -> int:
    return sum(r.path == "/api/embed" for r in emu.requests)


def contents(found: Sequence[tuple[dict[str, str], float]] | None) -> list[str] | None:
    return None if found is None else [message["content"] for message, _ in found]


@pytest.fixture
async def manager(make_manager: ManagerFactory, ollama_emu: OllamaEmulator) -> OllamaRequestManager:
    ollama_emu.set_reply(lambda body: "Noted.")
    m = make_manager()
    await m.start()
    return m


async def search_tool(manager: OllamaRequestManager, session_id: str, query: str) -> ToolOutcome:
    """The search_conversation tool as a question in ``session_id`` gets it."""
    tools = manager.tools.select(["search_conversation"], ToolContext(session_id))
    call = {"function": {"name": "search_conversation", "arguments": {"query": query}}}
    [outcome] = await tools.run([call])
    return outcome


# --- the manager's own memory -------------------------------------------------------------


async def test_turns_are_embedded_in_the_background_and_found_by_meaning(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    memory = wired(manager)
    await converse(manager, "channel:1", LIGHTHOUSE, RELEASE, PASTA)
    await converse(manager, "channel:2", "The lighthouse keeper Marta is my aunt.")

    found = await memory.search("channel:1", ABOUT_LIGHTHOUSE, 5)
    assert found is not None
    assert [(turn.message["role"], turn.message["content"]) for turn in found] == [
        ("user", LIGHTHOUSE)
    ]
    assert found[0].score > DEFAULT_MIN_SCORE
    # The words as typed are in no message: only the meaning finds it.
    assert await manager.store.search_messages("channel:1", ABOUT_LIGHTHOUSE, 5) == []
    assert contents(await memory.search("channel:1", "release version March migration", 5)) == [
        RELEASE
    ]
    # Nothing of the conversation is about this: nothing clears the floor.
    assert await memory.search("channel:1", "quantum chromodynamics", 5) == []
    # No vectors for a conversation: None, so the caller searches another way.
    assert await memory.search("channel:404", ABOUT_LIGHTHOUSE, 5) is None
    # Every user and assistant message was embedded, with the configured model.
    assert set(embedded_texts(ollama_emu)) == {
        LIGHTHOUSE, RELEASE, PASTA, "The lighthouse keeper Marta is my aunt.", "Noted.",
        ABOUT_LIGHTHOUSE, "release version March migration", "quantum chromodynamics",
    }  # fmt: skip
    embeds = [r for r in ollama_emu.requests if r.path == "/api/embed"]
    assert {r.json["model"] for r in embeds if r.json} == {"nomic-embed-text"}

    # The conversation search tool the model calls finds it the same way.
    outcome = await search_tool(manager, "channel:1", ABOUT_LIGHTHOUSE)
    header, *lines = outcome.content.splitlines()
    assert "closest in meaning" in header
    assert lines == [f"user ({found[0].score:.2f}): {LIGHTHOUSE}"]


async def test_answers_go_on_while_the_embedding_model_is_missing(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    del ollama_emu.models[NOMIC]
    for question in (LIGHTHOUSE, PASTA):
        result = await asyncio.wait_for(manager.ask(prompt=question, session_id="s"), WAIT)
        assert result.content == "Noted."
    assert len(await manager.store.messages("s")) == 4
    await wait_until(lambda: embed_calls(ollama_emu) >= 1, WAIT)  # tried, and failed
    assert await wired(manager).search("s", ABOUT_LIGHTHOUSE, 5) is None
    # The search tool falls back to the words.
    outcome = await search_tool(manager, "s", "lighthouse keeper")
    assert outcome.content.splitlines() == [
        "Messages of this conversation containing 'lighthouse keeper':",
        f"user: {LIGHTHOUSE}",
    ]


async def test_a_restart_embeds_what_the_last_run_did_not(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.set_reply(lambda body: "Noted.")
    first = make_manager()
    await first.start()
    await converse(first, "s", LIGHTHOUSE)
    embedding_model = ollama_emu.models.pop(NOMIC)  # gone while the next turn is stored
    await first.ask(prompt=PASTA, session_id="s")
    await first.close()
    ollama_emu.models[NOMIC] = embedding_model

    since = len(ollama_emu.requests)
    second = make_manager()  # the same database
    await second.start()
    await settled(wired(second))
    # Only what the first run left: its last question and answer, not the first turn again.
    assert sorted(embedded_texts(ollama_emu, since)) == sorted([PASTA, "Noted."])
    memory = wired(second)
    assert contents(await memory.search("s", ABOUT_PASTA, 5)) == [PASTA]
    assert contents(await memory.search("s", ABOUT_LIGHTHOUSE, 5)) == [LIGHTHOUSE]


# --- a memory of the test's own, on a database of its own ---------------------------------


async def test_search_ranks_best_first_and_keeps_k(
    manager: OllamaRequestManager, memory_of: MemoryFactory, side_store: SessionStore
) -> None:
    memory = memory_of(manager, store=side_store, min_score=0.1)
    memory.start()
    for text in ("lighthouse", "lighthouse keeper", "lighthouse keeper Marta", ABOUT_LIGHTHOUSE):
        await store_turn(side_store, memory, "s", text)
    await settled(memory)
    found = await memory.search("s", ABOUT_LIGHTHOUSE, 3)
    assert contents(found) == [ABOUT_LIGHTHOUSE, "lighthouse keeper Marta", "lighthouse keeper"]
    assert found is not None
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


async def test_turns_noted_while_embedding_is_stuck_wait_for_nothing(
    manager: OllamaRequestManager, side_store: SessionStore, ollama_emu: OllamaEmulator
) -> None:
    embedder = GatedEmbedder(manager.embedder)
    store = MemoryStore(side_store)
    index = TurnIndex(store, embedder)
    index.start()
    try:
        await side_store.append_turn("s", [{"role": "user", "content": LIGHTHOUSE}])
        index.note_stored("s")
        await asyncio.wait_for(embedder.waiting.wait(), WAIT)  # the worker is embedding
        # ...and stays stuck there while more turns are stored and noted.
        for text in (RELEASE, PASTA):
            await side_store.append_turn("s", [{"role": "user", "content": text}])
            index.note_stored("s")
        assert embed_calls(ollama_emu) == 0
        embedder.gate.set()
        await asyncio.wait_for(index.idle(), WAIT)
        assert await store.unembedded(index.model, 10, max_chars=99) == []
    finally:
        await index.close()


async def test_a_full_queue_drops_nothing(
    manager: OllamaRequestManager, side_store: SessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(side_store)
    index = TurnIndex(store, manager.embedder, queue_size=1)
    index.start()
    try:
        await asyncio.wait_for(index.idle(), WAIT)  # the catch-up at start found nothing
        for session_id in ("a", "b", "c"):
            await side_store.append_turn(
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
    manager: OllamaRequestManager, side_store: SessionStore, ollama_emu: OllamaEmulator
) -> None:
    for i in range(4):
        await side_store.append_turn(
            f"s{i % 2}",
            [{"role": "user", "content": f"question {i}"},
             {"role": "assistant", "content": f"answer {i}"}],
        )  # fmt: skip
    store = MemoryStore(side_store)
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
    side_store: SessionStore,
    ollama_emu: OllamaEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    embedding_model = ollama_emu.models.pop(NOMIC)
    memory = memory_of(manager, store=side_store)
    caplog.set_level(logging.DEBUG, logger="bot.core.memory.turn_index")
    memory.start()
    await store_turn(side_store, memory, "s", LIGHTHOUSE)
    await wait_until(lambda: embed_calls(ollama_emu) >= 3, WAIT)  # tried again, and again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nomic-embed-text" in warnings[0].getMessage()
    assert await memory.search("s", ABOUT_LIGHTHOUSE, 5) is None  # nothing indexed yet

    ollama_emu.models[NOMIC] = embedding_model  # pulled at last
    await settled(memory)
    assert contents(await memory.search("s", ABOUT_LIGHTHOUSE, 5)) == [LIGHTHOUSE]
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_ollama_down_then_back(
    manager: OllamaRequestManager,
    memory_of: MemoryFactory,
    side_store: SessionStore,
    ollama_emu: OllamaEmulator,
) -> None:
    memory = memory_of(manager, store=side_store)
    memory.start()
    await store_turn(side_store, memory, "s", LIGHTHOUSE)
    await settled(memory)
    ollama_emu.refuse_connections()
    await store_turn(side_store, memory, "s", PASTA)
    calls = embed_calls(ollama_emu)
    # Searching meanwhile fails as Ollama does (the tool then searches words).
    with pytest.raises(OllamaUnavailableError):
        await memory.search("s", ABOUT_PASTA, 5)
    await ollama_emu.accept_connections()
    await settled(memory)
    assert embed_calls(ollama_emu) > calls
    assert contents(await memory.search("s", ABOUT_PASTA, 5)) == [PASTA]


async def test_vectors_of_another_model_are_ignored_then_replaced(
    manager: OllamaRequestManager,
    memory_of: MemoryFactory,
    side_store: SessionStore,
    ollama_emu: OllamaEmulator,
) -> None:
    mxbai = second_embedding_model()
    ollama_emu.models[mxbai.name] = mxbai
    memory = memory_of(manager, store=side_store)
    memory.start()
    await store_turn(side_store, memory, "s", LIGHTHOUSE)
    await store_turn(side_store, memory, "s", PASTA)
    await settled(memory)
    await memory.close()

    changed = memory_of(manager, store=side_store, embedding_model="mxbai-embed-large")
    # Not started yet: nomic-embed-text's vectors are never compared with mxbai's.
    assert await changed.search("s", ABOUT_LIGHTHOUSE, 5) is None
    since = len(ollama_emu.requests)
    changed.start()
    await settled(changed)
    assert sorted(embedded_texts(ollama_emu, since)) == sorted(
        [LIGHTHOUSE, "Noted.", PASTA, "Noted."]
    )
    store = MemoryStore(side_store)
    assert await store.vectors_of("s", "nomic-embed-text") == []
    vectors = await store.vectors_of("s", "mxbai-embed-large")
    assert len(vectors) == 4 and {len(blob) for _, blob in vectors} == {mxbai.embedding_length * 4}
    assert contents(await changed.search("s", ABOUT_LIGHTHOUSE, 5)) == [LIGHTHOUSE]
