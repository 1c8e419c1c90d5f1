"""What several processes on one PostgreSQL share, and how the request manager gets it:
the conversation locks (``locks``) and the change feed (``notify``). SQLite has one
process, so it gets neither."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.locks import ConversationLocks, WaitCallback
from bot.storage.notify import SESSIONS, ChangeFeed, Handler
from bot.storage.store import SessionStore


@dataclass(frozen=True, slots=True)
class Coordination:
    locks: ConversationLocks
    changes: ChangeFeed
    store: SessionStore

    @contextlib.asynccontextmanager
    async def conversation(
        self, session_id: str, on_wait: WaitCallback | None = None
    ) -> AsyncIterator[None]:
        """Answer in this conversation alone among the processes (RequestQueue's hook)."""
        async with self.locks.hold(session_id, on_wait):
            # Another process may have answered here just before, and its notification
            # may not have been heard yet: what this answer reads of the conversation is
            # read afresh.
            self.store.changed_elsewhere((session_id,))
            yield

    def follow(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` with what other processes change of ``kind``."""
        self.changes.subscribe(kind, handler)

    async def close(self) -> None:
        await self.changes.close()
        await self.locks.close()


async def open_coordination(engine: AsyncEngine, store: SessionStore) -> Coordination | None:
    """Locks and the change feed on PostgreSQL (listening already, unless the database is
    slow to let it); None on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    changes = ChangeFeed(engine)
    changes.subscribe(SESSIONS, store.changed_elsewhere)
    await changes.start()
    return Coordination(ConversationLocks(engine), changes, store)
