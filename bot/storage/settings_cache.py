"""What the store knows about sessions without asking the database: settings and existence.

Every question needs its channel's and server's settings before it can ask the model, and
under load each database read is several trips through aiosqlite's thread, each waiting
for a turn of a busy event loop. So:

- settings once read are cached for SETTINGS_CACHE_TTL; concurrent misses share a query;
- the ids of all sessions are read every SNAPSHOT_REFRESH seconds (one small query, by
  ``keep_ids_fresh``), so that a session which doesn't exist yet, like every new
  channel's, needs no query at all.

Entries expire, so changes made by another process (the CLI) are seen within the TTL. Our
own writes call ``forget``: those sessions are read again, whatever the snapshot says. On
PostgreSQL the other processes' writes are announced (``bot.storage.notify``) and forgotten
the same way as they commit; ``drop`` forgets everything, the snapshot included, when some
announcements may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from bot.core.errors import StorageError
from bot.storage.records import SessionSettings

SETTINGS_CACHE_SIZE = 10_000
SETTINGS_CACHE_TTL = 30.0
# Beyond this many sessions the id snapshot is not kept (its refresh would cost more than
# the reads it saves); lookups then read settings per batch as before.
SNAPSHOT_MAX_IDS = 50_000
# The snapshot is taken again this often, so that it is fresh when a burst arrives.
SNAPSHOT_REFRESH = SETTINGS_CACHE_TTL / 2

ReadSettings = Callable[[list[str]], Awaitable[dict[str, SessionSettings]]]
ReadIds = Callable[[int], Awaitable[list[str]]]


class SettingsCache:
    def __init__(
        self,
        read_settings: ReadSettings,
        read_ids: ReadIds,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_settings = read_settings
        self._read_ids = read_ids
        self._clock = clock
        # session id -> (when read, its settings or None if the session doesn't exist)
        self._entries: OrderedDict[str, tuple[float, SessionSettings | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[SessionSettings | None]] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._ids: frozenset[str] | None = None  # every session id, as of _ids_at
        self._ids_at = float("-inf")
        self._unsure: set[str] = set()  # written since the snapshot was taken
        # Being read now, and forgotten meanwhile: what that read returns may be older than
        # the write, so it answers its callers but is not kept.
        self._reading: set[str] = set()
        self._overtaken: set[str] = set()
        self._drops = 0  # how many times drop() was called

    async def known(self, session_ids: Sequence[str]) -> dict[str, SessionSettings | None]:
        """Each id's settings, or None where the session does not exist."""
        now = self._clock()
        result: dict[str, SessionSettings | None] = {}
        missing = []
        for session_id in session_ids:
            cached = self._entries.get(session_id)
            if cached is not None and now - cached[0] < SETTINGS_CACHE_TTL:
                result[session_id] = cached[1]
            elif self._surely_absent(session_id, now):
                result[session_id] = None
            else:
                missing.append(session_id)
        if missing:
            result.update(await self._batched_read(missing))
        return result

    async def load_ids(self) -> None:
        """Take the snapshot of session ids now (at start, so the first questions use it)."""
        self._unsure = set()
        drops = self._drops
        ids = await self._read_ids(SNAPSHOT_MAX_IDS + 1)
        if drops != self._drops:  # dropped meanwhile: the read may predate what was missed
            return
        self._ids = frozenset(ids) if len(ids) <= SNAPSHOT_MAX_IDS else None
        self._ids_at = self._clock()

    async def keep_ids_fresh(self) -> None:
        """Retake the snapshot every SNAPSHOT_REFRESH seconds (runs until cancelled)."""
        while True:
            # A failure is logged by the store; the old snapshot expires, lookups read.
            with contextlib.suppress(StorageError):
                await self.load_ids()
            await asyncio.sleep(SNAPSHOT_REFRESH)

    def forget(self, *session_ids: str) -> None:
        """These sessions were written: read them again next time."""
        for session_id in session_ids:
            self._entries.pop(session_id, None)
        self._unsure.update(session_ids)
        self._overtaken.update(self._reading.intersection(session_ids))

    def forget_all(self) -> None:
        """Many sessions were deleted: cached settings may be gone (absence stays true)."""
        self._entries.clear()
        self._overtaken.update(self._reading)

    def drop(self) -> None:
        """Anything may have changed, sessions created too: forget it all, the snapshot of
        which sessions exist included (the next refresh takes it again)."""
        self.forget_all()
        self._ids = None
        self._ids_at = float("-inf")
        self._drops += 1

    # internals -----------------------------------------------------------------------------
    def _surely_absent(self, session_id: str, now: float) -> bool:
        return (
            self._ids is not None
            and now - self._ids_at < SETTINGS_CACHE_TTL
            and session_id not in self._ids
            and session_id not in self._unsure
        )

    def _remember(self, session_id: str, settings: SessionSettings | None) -> None:
        self._entries[session_id] = (self._clock(), settings)
        self._entries.move_to_end(session_id)
        while len(self._entries) > SETTINGS_CACHE_SIZE:
            self._entries.popitem(last=False)

    async def _batched_read(self, session_ids: list[str]) -> dict[str, SessionSettings | None]:
        """Read settings in one query shared by every caller of this event-loop turn.

        Fifty questions arriving together would otherwise make fifty queries queue for
        the connection pool; batched, they make one or two.
        """
        loop = asyncio.get_running_loop()
        futures = {}
        for session_id in session_ids:
            future = self._pending.get(session_id)
            if future is None:
                future = self._pending[session_id] = loop.create_future()
            futures[session_id] = future
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = loop.create_task(self._flush())
        return {i: await f for i, f in futures.items()}

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other callers of this loop turn join the batch
        while self._pending:
            batch, self._pending = self._pending, {}
            self._reading.update(batch)
            try:
                found = await self._read_settings(list(batch))
            except BaseException as exc:
                self._reading.difference_update(batch)
                self._overtaken.difference_update(batch)
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else StorageError())
                if not isinstance(exc, Exception):
                    raise
                continue
            self._reading.difference_update(batch)
            for session_id, future in batch.items():
                if session_id in self._overtaken:
                    self._overtaken.discard(session_id)
                else:
                    self._remember(session_id, found.get(session_id))
                if not future.done():
                    future.set_result(found.get(session_id))
