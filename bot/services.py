"""What the request manager opens at start and releases at close, built in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.execution import QueryDefaults, QueryExecutor
from bot.model_catalog import ModelCatalog
from bot.ollama_client import OllamaClient
from bot.queueing import RequestQueue
from bot.stats import RequestStats
from bot.storage import SessionStore, create_sessionmaker, open_engine, upgrade_database
from bot.storage.state import BotStateStore


@dataclass(frozen=True, slots=True)
class Services:
    engine: AsyncEngine
    store: SessionStore
    state: BotStateStore
    client: OllamaClient
    catalog: ModelCatalog
    executor: QueryExecutor
    upkeep: asyncio.Task[None]  # keeps the store's index of sessions fresh
    session_count: int  # at start


async def open_services(
    database_url: str,
    host: str,
    *,
    request_timeout: float,
    queue: RequestQueue,
    stats: RequestStats,
    defaults: QueryDefaults,
    on_session_created: Callable[[], None],
) -> Services:
    """Open the database (migrated to head) and the pooled Ollama client."""
    engine = open_engine(database_url)
    try:
        await upgrade_database(engine)
        sessionmaker = create_sessionmaker(engine)
        store = SessionStore(sessionmaker)
        session_count = await store.count()
    except Exception:
        await engine.dispose()
        raise
    client = OllamaClient(host, timeout=request_timeout, max_streams=queue.capacity)
    executor = QueryExecutor(store, client, queue, stats, defaults, on_session_created)
    upkeep = asyncio.create_task(store.keep_index_fresh(), name="session-index")
    return Services(
        engine,
        store,
        BotStateStore(sessionmaker),
        client,
        ModelCatalog(client),
        executor,
        upkeep,
        session_count,
    )


async def close_services(services: Services) -> None:
    services.upkeep.cancel()
    await asyncio.gather(services.upkeep, return_exceptions=True)
    await services.client.close()
    await services.engine.dispose()
