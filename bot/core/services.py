"""What the request manager opens at start and releases at close, built in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.embedding import Embedder
from bot.core.execution import QueryExecutor
from bot.core.generation import GenerationLimits
from bot.core.hosts.pool import HostPool
from bot.core.hosts.spec import HostSpec
from bot.core.model_catalog import ModelCatalog
from bot.core.planning import QueryDefaults
from bot.core.queueing import RequestQueue
from bot.core.stats import RequestStats

if TYPE_CHECKING:  # a manager without a database never loads SQLAlchemy
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.storage import SessionStore
    from bot.storage.coordination import Coordination
    from bot.storage.state import BotStateStore


@dataclass(frozen=True, slots=True)
class Services:
    # The database's three are None when the manager was started without one.
    engine: AsyncEngine | None
    store: SessionStore | None
    state: BotStateStore | None
    hosts: HostPool
    catalog: ModelCatalog
    executor: QueryExecutor
    embedder: Embedder
    upkeep: asyncio.Task[None] | None  # keeps the store's index of sessions fresh
    session_count: int  # at start
    # With other processes on the database (PostgreSQL): their locks and changes.
    coordination: Coordination | None = None


async def open_services(
    database_url: str | None,
    hosts: Sequence[HostSpec],
    *,
    request_timeout: float,
    queue: RequestQueue,
    stats: RequestStats,
    defaults: QueryDefaults,
    on_session_created: Callable[[], None],
    embedding_model: str,
    limits: GenerationLimits,
) -> Services:
    """Open the database (migrated to head; none without a URL) and the Ollama hosts (a
    pooled client each)."""
    # Before the database: its pool is sized for the answers all hosts run at once. No
    # connection is made before start() (nothing to close if the database fails to open).
    pool = HostPool.open(
        hosts, default_capacity=queue.max_concurrent, timeout=request_timeout, slots=queue.slots
    )
    engine, store, state, session_count = None, None, None, 0
    if database_url is not None:
        engine, store, state, session_count = await _open_database(database_url, queue.capacity)
    catalog = ModelCatalog(pool)
    executor = QueryExecutor(
        store, pool, queue, stats, defaults, on_session_created, catalog=catalog
    )
    embedder = Embedder(pool, stats, embedding_model, limits)
    upkeep, coordination = None, None
    if engine is not None and store is not None:
        coordination = await _coordinate(engine, store, queue)
        upkeep = asyncio.create_task(store.keep_index_fresh(), name="session-index")
    await pool.start()  # with several hosts: what each has and has loaded
    return Services(
        engine,
        store,
        state,
        pool,
        catalog,
        executor,
        embedder,
        upkeep,
        session_count,
        coordination,
    )


async def _open_database(
    database_url: str, concurrency: int
) -> tuple[AsyncEngine, SessionStore, BotStateStore, int]:
    from bot.storage import SessionStore, create_sessionmaker, open_engine, upgrade_database
    from bot.storage.state import BotStateStore

    engine = open_engine(database_url, concurrency=concurrency)  # a pool for each answer
    try:
        await upgrade_database(engine)
        sessionmaker = create_sessionmaker(engine)
        store = SessionStore(sessionmaker)
        session_count = await store.count()
    except Exception:
        await engine.dispose()
        raise
    return engine, store, BotStateStore(sessionmaker), session_count


async def _coordinate(
    engine: AsyncEngine, store: SessionStore, queue: RequestQueue
) -> Coordination | None:
    """On a database other processes share: a conversation answers in one process at a
    time, and what one process changes reaches the others' caches."""
    from bot.storage.coordination import open_coordination

    coordination = await open_coordination(engine, store)
    if coordination is not None:
        queue.conversation_lock = coordination.conversation
    return coordination


async def close_services(services: Services) -> None:
    if services.upkeep is not None:
        services.upkeep.cancel()
        await asyncio.gather(services.upkeep, return_exceptions=True)
    if services.coordination is not None:
        await services.coordination.close()
    await services.hosts.close()
    if services.engine is not None:
        await services.engine.dispose()
