"""Conversation locks across processes: PostgreSQL advisory locks, one per conversation.

Several bot processes (shards, the CLI, the HTTP API) may answer in one conversation; its
answers must still come one at a time, each seeing the turn before. The request queue
serialises a conversation within a process; this lock, taken inside that lane for the
whole answer (plan, generation, tool rounds, the stored turn), serialises it between them.

All of a process's locks are held on one dedicated connection, not one pooled connection
per answer: answers read their history and store their turns through the pool, and with a
connection held by each running (or capacity-waiting) conversation a busy process would
take the whole pool and wait on itself. A process that dies, or whose connection drops,
has its locks released by the server. Waiting takes no connection: the lock is tried,
then tried again after a short, growing pause (only the lane's one waiter per process
polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.core.errors import StorageError

log = logging.getLogger(__name__)

# Pauses between tries while another process answers: a freed lock is taken within the
# longest, and a waiter costs the database at most a query every this often.
POLL_FIRST = 0.05
POLL_MAX = 0.25
# Keys are per database; this names ours apart from other applications' advisory locks.
_KEY_PERSON = b"ollacord-conv"

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")

WaitCallback = Callable[[], Awaitable[None]]


def lock_key(session_id: str) -> int:
    """The conversation's advisory-lock key: a stable 64-bit hash of its id (signed, as
    PostgreSQL's bigint). Two ids sharing a key would only wait for each other."""
    digest = hashlib.blake2b(session_id.encode(), digest_size=8, person=_KEY_PERSON).digest()
    return int.from_bytes(digest, "big", signed=True)


class ConversationLocks:
    """The process's conversation locks, on its one lock connection (opened on first use,
    opened again when lost)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        # Counts the lock connections: a lock taken on an older one went with it.
        self._generation = 0
        self._using = asyncio.Lock()  # one statement at a time on the connection
        self._held: set[int] = set()
        self._undoing: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def hold(
        self, session_id: str, on_wait: WaitCallback | None = None
    ) -> AsyncIterator[None]:
        """Hold the conversation's lock for the block; ``on_wait`` is awaited once if
        another process holds it now. StorageError if the database cannot be reached."""
        key = lock_key(session_id)
        generation = await self._acquire(key, on_wait)
        try:
            yield
        finally:
            # Shielded: an answer cancelled (stopped, shut down) must still let go.
            await asyncio.shield(self._release(key, generation))

    async def close(self) -> None:
        """Close the lock connection; the server releases whatever it held."""
        async with self._using:
            await self._drop()
        if self._undoing:
            await asyncio.gather(*self._undoing, return_exceptions=True)

    # internals -----------------------------------------------------------------------------
    async def _acquire(self, key: int, on_wait: WaitCallback | None) -> int:
        pause = POLL_FIRST
        told = False
        while True:
            generation = await self._try(key)
            if generation is not None:
                return generation
            if not told and on_wait is not None:
                told = True
                await on_wait()
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_MAX)

    async def _try(self, key: int) -> int | None:
        """The lock connection's generation if the lock was taken, else None.

        Shielded: a lock the server granted while the waiter was being cancelled would
        otherwise be held by nobody until the process ends; it is released instead."""
        attempt = asyncio.ensure_future(self._run(_TRY_LOCK, key))
        try:
            taken, generation = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(lambda done: self._undo(done, key))
            raise
        if not taken:
            return None
        self._held.add(key)
        return generation

    def _undo(self, attempt: asyncio.Future[tuple[bool, int]], key: int) -> None:
        if attempt.cancelled() or attempt.exception() is not None:
            return
        taken, generation = attempt.result()
        if taken:
            self._held.add(key)
            task = asyncio.ensure_future(self._release(key, generation))
            self._undoing.add(task)
            task.add_done_callback(self._undoing.discard)

    async def _release(self, key: int, generation: int) -> None:
        self._held.discard(key)
        if generation != self._generation:
            return  # its connection is gone, and the lock with it
        try:
            await self._run(_UNLOCK, key, generation=generation)
        except StorageError:
            log.warning("could not release a conversation lock; its connection was closed")

    async def _run(
        self, statement: TextClause, key: int, *, generation: int | None = None
    ) -> tuple[bool, int]:
        """Run a lock statement: (its boolean, the connection's generation). A connection
        found dead is replaced, once. With ``generation`` (an unlock), only on that
        connection: on another, the lock is gone already."""
        async with self._using:
            attempts = 1 if generation is not None else 2
            for attempt in range(attempts):
                if generation is not None and (
                    generation != self._generation or self._conn is None
                ):
                    return False, self._generation
                conn = await self._connection()
                try:
                    result = await conn.execute(statement, {"key": key})
                    return bool(result.scalar()), self._generation
                except DBAPIError as exc:
                    await self._drop()
                    if attempt == attempts - 1 or not exc.connection_invalidated:
                        log.error("conversation lock failed: %s", str(exc).splitlines()[0])
                        raise StorageError() from exc
        raise AssertionError("unreachable")

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            try:
                conn = await self._engine.connect()
                self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            except (DBAPIError, OSError) as exc:
                log.error("cannot open the conversation-lock connection: %s", exc)
                raise StorageError() from exc
        return self._conn

    async def _drop(self) -> None:
        """Close the lock connection for good (never back to the pool, which would lend
        it, locks and all, to someone else)."""
        conn, self._conn = self._conn, None
        self._generation += 1
        if conn is None:
            return
        if self._held:
            log.warning(
                "the connection holding %d conversation locks was closed; those answers go "
                "on, and other processes may answer in their conversations meanwhile",
                len(self._held),
            )
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()
