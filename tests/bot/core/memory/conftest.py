"""The memory layer against the Ollama emulator, through a real OllamaRequestManager and its
SQLite store: ``memory_of(manager)`` builds a Memory the way the manager wires it (its
embedder, its ask as the summarizer, its history window), with short retry delays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot import OllamaRequestManager
from bot.core.embedding import Embedder
from bot.core.memory import Memory
from bot.core.memory.summary import Summarize
from bot.core.memory.turn_index import RetryDelays
from bot.storage.memory import MemoryStore

WAIT = 10.0  # seconds any wait may take before the test fails
QUICK_RETRY = RetryDelays(first=0.01, longest=0.05)

MemoryFactory = Callable[..., Memory]


def summarizer(manager: OllamaRequestManager) -> Summarize:
    """The manager's own ask, as it is meant to be wired (the conversation's model)."""

    async def summarize(prompt: str, model: str | None) -> str:
        return (await manager.ask(prompt=prompt, model=model)).content

    return summarize


@pytest.fixture
async def memory_of() -> AsyncIterator[MemoryFactory]:
    """Build (not start) Memory objects for managers; all are closed at the end."""
    made: list[Memory] = []

    def factory(
        manager: OllamaRequestManager,
        *,
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
            MemoryStore(manager.store), embedder, summarize or summarizer(manager), **options
        )
        made.append(memory)
        return memory

    yield factory
    for memory in made:
        await memory.close()


async def settled(memory: Memory) -> None:
    await asyncio.wait_for(memory.idle(), WAIT)


async def converse(
    manager: OllamaRequestManager, memory: Memory, session_id: str, *questions: str
) -> None:
    """Ask each question in the conversation, telling the memory as the executor will."""
    for question in questions:
        await manager.ask(prompt=question, session_id=session_id)
        memory.on_turn_stored(session_id)
