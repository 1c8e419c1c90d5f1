"""The memory layer against the Ollama emulator, through a real OllamaRequestManager and
SQLite stores.

Two ways in:
- ``wired(manager)``: the manager's own Memory, as it runs in the bot (the executor tells it
  of every stored turn; its summaries go through the manager's ask);
- ``memory_of(manager, store=side_store, ...)``: a Memory of the test's own, with knobs
  (short retry delays, a floor, a summarizer held at a gate), on a database of its own
  (``side_store``) so that the manager's Memory never sees its conversations. It embeds
  and summarizes through the manager all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot import OllamaRequestManager
from bot.core.embedding import Embedder
from bot.core.memory import Memory
from bot.core.memory.summary import Summarize
from bot.core.memory.turn_index import RetryDelays
from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.memory import MemoryStore

WAIT = 10.0  # seconds any wait may take before the test fails
QUICK_RETRY = RetryDelays(first=0.01, longest=0.05)

MemoryFactory = Callable[..., Memory]


def summarizer(manager: OllamaRequestManager) -> Summarize:
    """A question to the manager (the conversation's model), as the manager's own is."""

    async def summarize(prompt: str, model: str | None) -> str:
        return (await manager.ask(prompt=prompt, model=model)).content

    return summarize


def wired(manager: OllamaRequestManager) -> Memory:
    memory = manager.memory
    assert memory is not None, "the manager has a database, so it has a Memory"
    return memory


@pytest.fixture
async def side_store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}")
    await upgrade_database(engine)
    yield SessionStore(create_sessionmaker(engine))
    await engine.dispose()


@pytest.fixture
async def memory_of() -> AsyncIterator[MemoryFactory]:
    """Build (not start) Memory objects; all are closed at the end."""
    made: list[Memory] = []

    def factory(
        manager: OllamaRequestManager,
        *,
        store: SessionStore | None = None,
        embedding_model: str | None = None,
        summarize: Summarize | None = None,
        **options: Any,
    ) -> Memory:
        embedder = manager.embedder
        if embedding_model is not None:
            embedder = Embedder(manager.client, manager.stats, embedding_model, manager.limits)
        options.setdefault("max_history_messages", manager.max_history_length)
        options.setdefault("retry", QUICK_RETRY)
        memory = Memory(
            MemoryStore(store or manager.store),
            embedder,
            summarize or summarizer(manager),
            **options,
        )
        made.append(memory)
        return memory

    yield factory
    for memory in made:
        await memory.close()


async def settled(memory: Memory) -> None:
    await asyncio.wait_for(memory.idle(), WAIT)


async def converse(manager: OllamaRequestManager, session_id: str, *questions: str) -> None:
    """Ask each question in the conversation, and let the manager's memory catch up."""
    for question in questions:
        await manager.ask(prompt=question, session_id=session_id)
        await settled(wired(manager))


async def store_turn(
    store: SessionStore, memory: Memory, session_id: str, question: str, answer: str = "Noted."
) -> None:
    """A turn stored as the executor stores it, and the memory told, without a model."""
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    await store.append_turn(session_id, messages, model="llama3.2")  # type: ignore[arg-type]
    memory.on_turn_stored(session_id)
