"""LiveReplyStore: the replies being written, as rows of ``live_replies``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession as DbSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.core.errors import StorageError
from bot.storage.models import LiveReply, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveReplyRecord:
    """Where a reply being written is. ``interaction_token`` is a credential: never log it."""

    channel_id: int
    message_ids: tuple[int, ...]
    interaction_token: str | None = field(default=None, repr=False)
    ephemeral: bool = False
    started_at: datetime = field(default_factory=utcnow)

    @property
    def id(self) -> int:
        return self.message_ids[0]


class LiveReplyStore:
    def __init__(self, sessionmaker: async_sessionmaker[DbSession]) -> None:
        self._sessionmaker = sessionmaker

    async def all(self) -> list[LiveReplyRecord]:
        try:
            async with self._sessionmaker() as db:
                rows = (await db.execute(select(LiveReply).order_by(LiveReply.id))).scalars()
                return [
                    LiveReplyRecord(
                        row.channel_id,
                        tuple(row.message_ids),
                        row.interaction_token,
                        row.ephemeral,
                        row.started_at,
                    )
                    for row in rows
                ]
        except (OperationalError, DBAPIError, OSError) as exc:  # OSError: server unreachable
            log.error("database read failed: %s", exc)
            raise StorageError() from exc

    async def apply(self, save: Sequence[LiveReplyRecord], forget: Sequence[int]) -> None:
        """Write ``save`` (replacing rows with the same id) and delete ``forget``, at once."""
        stale = [*forget, *(record.id for record in save)]
        try:
            async with self._sessionmaker() as db, db.begin():
                if stale:
                    await db.execute(delete(LiveReply).where(LiveReply.id.in_(stale)))
                if save:
                    await db.execute(
                        insert(LiveReply),
                        [
                            {
                                "id": r.id,
                                "channel_id": r.channel_id,
                                "message_ids": list(r.message_ids),
                                "interaction_token": r.interaction_token,
                                "ephemeral": r.ephemeral,
                                "started_at": r.started_at,
                            }
                            for r in save
                        ],
                    )
        except (OperationalError, DBAPIError, OSError) as exc:  # OSError: server unreachable
            log.error("database write failed: %s", exc)
            raise StorageError() from exc
