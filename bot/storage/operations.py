"""One database operation: its own session (and, for a write, its own transaction under the
store's write lock), with the driver's failures translated into StorageError once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession as DbSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.core.errors import StorageError

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def reading(sessionmaker: async_sessionmaker[DbSession]) -> AsyncIterator[DbSession]:
    try:
        async with sessionmaker() as db:
            yield db
    except (OperationalError, DBAPIError, OSError) as exc:  # OSError: a server unreachable
        log.error("database read failed: %s", exc)
        raise StorageError() from exc


@contextlib.asynccontextmanager
async def writing(
    sessionmaker: async_sessionmaker[DbSession], lock: asyncio.Lock
) -> AsyncIterator[DbSession]:
    """Writes are serialised in-process: SQLite admits one writer at a time, and many
    connections retrying inside its busy handler queue far worse than a lock does."""
    try:
        async with lock, sessionmaker() as db, db.begin():
            yield db
    except (OperationalError, DBAPIError, OSError) as exc:
        log.error("database write failed: %s", exc)
        raise StorageError() from exc


class Store:
    """What a store of its own tables shares: one session per operation, its writes
    serialised in-process under its own lock."""

    def __init__(self, sessionmaker: async_sessionmaker[DbSession]) -> None:
        self._sessionmaker = sessionmaker
        self._write_lock = asyncio.Lock()

    def _reading(self) -> contextlib.AbstractAsyncContextManager[DbSession]:
        return reading(self._sessionmaker)

    def _writing(self) -> contextlib.AbstractAsyncContextManager[DbSession]:
        return writing(self._sessionmaker, self._write_lock)
