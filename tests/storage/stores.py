"""Every store of one database, migrated to head: what storage tests read and write through."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.knowledge import KnowledgeStore
from bot.storage.live_replies import LiveReplyStore
from bot.storage.memory import MemoryStore
from bot.storage.state import BotStateStore


@dataclass
class Stores:
    engine: AsyncEngine
    sessions: SessionStore
    memory: MemoryStore
    knowledge: KnowledgeStore
    live: LiveReplyStore
    state: BotStateStore


@contextlib.asynccontextmanager
async def stores_of(url: str) -> AsyncIterator[Stores]:
    """The stores of the database at ``url`` (migrated first); its engine disposed after."""
    engine = create_engine(url)
    await upgrade_database(engine)
    maker = create_sessionmaker(engine)
    sessions = SessionStore(maker)
    try:
        yield Stores(
            engine, sessions, MemoryStore(sessions), KnowledgeStore(maker),
            LiveReplyStore(maker), BotStateStore(maker),
        )  # fmt: skip
    finally:
        await engine.dispose()
