"""BotStateStore: a few named values the bot keeps between runs."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession as DbSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.storage.models import BotState, utcnow


class BotStateStore:
    def __init__(self, sessionmaker: async_sessionmaker[DbSession]) -> None:
        self._sessionmaker = sessionmaker

    async def get(self, key: str) -> str | None:
        async with self._sessionmaker() as db:
            row = await db.get(BotState, key)
            return None if row is None else row.value

    async def set(self, key: str, value: str) -> None:
        try:
            await self._write(key, value)
        except IntegrityError:
            # Another process (a shard starting at the same time) added the key between
            # the read and the insert: it exists now, so this write updates it.
            await self._write(key, value)

    async def _write(self, key: str, value: str) -> None:
        async with self._sessionmaker() as db, db.begin():
            row = await db.get(BotState, key)
            if row is None:
                db.add(BotState(key=key, value=value))
            else:
                row.value, row.updated_at = value, utcnow()
