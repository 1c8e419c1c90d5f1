"""Changes that reach the other processes on the same PostgreSQL: NOTIFY and LISTEN.

Every write that changes something a process keeps in memory (a session's settings, which
sessions exist, a server's knowledge-base vectors) announces it in its own transaction
(``announce``), so the notification leaves exactly when the change is committed, and only
if it is. Each process LISTENs on one dedicated connection (``ChangeFeed``) and drops the
entries named. A connection that drops may have missed some: after every (re)connection,
everything is dropped. The process that wrote has updated its own memory already and
ignores its own notifications (they carry its engine's origin).

On SQLite (one process) nothing is announced; the caches' TTLs stay as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession as DbSession

log = logging.getLogger(__name__)

CHANNEL = "ollacord_changes"
# Kinds of change, each with the keys it names.
SESSIONS = "sessions"  # session ids: their settings, their existence
KNOWLEDGE = "knowledge"  # scopes ("guild:<id>"): their knowledge base's documents and vectors
# PostgreSQL refuses payloads of 8000 bytes or more; longer lists of keys are split.
MAX_PAYLOAD_BYTES = 7000
RECONNECT_FIRST = 0.2  # seconds before the first attempt to listen again
RECONNECT_MAX = 30.0
# An idle connection that died without a word (a network gone) is noticed by a query.
PING_INTERVAL = 10.0
PING_TIMEOUT = 5.0
# How long start() waits to be listening before carrying on (the feed keeps trying).
FIRST_LISTEN_WAIT = 5.0

# None: everything of that kind may have changed.
Handler = Callable[[tuple[str, ...] | None], None]

_ORIGINS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def origin_of(engine: Engine) -> str:
    """A random name for the writes of one engine, i.e. of one process (or one of a test's
    managers): how a feed recognises its own notifications."""
    origin = _ORIGINS.get(engine)
    if origin is None:
        origin = _ORIGINS[engine] = secrets.token_hex(8)
    return origin


def shared(db: DbSession) -> bool:
    """Whether other processes may use this database (PostgreSQL), so changes are announced."""
    return db.get_bind().dialect.name == "postgresql"


async def announce(db: DbSession, kind: str, keys: Iterable[str] | None = None) -> None:
    """Tell the other processes, when this transaction commits, that these ``keys`` of
    ``kind`` changed (None: any of them). Nothing on SQLite."""
    if not shared(db):
        return
    bind = db.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    for payload in payloads(origin_of(engine), kind, None if keys is None else list(keys)):
        await db.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


def payloads(origin: str, kind: str, keys: list[str] | None) -> Iterator[str]:
    """The notifications that say it: as few as fit PostgreSQL's limit (none for no keys)."""

    def encoded(part: list[str] | None) -> str:
        return json.dumps({"o": origin, "k": kind, "v": part}, separators=(",", ":"))

    if keys is None:
        yield encoded(None)
        return
    part: list[str] = []
    size = len(encoded([]).encode())
    for key in dict.fromkeys(keys):
        cost = len(json.dumps(key).encode()) + 1
        if part and size + cost > MAX_PAYLOAD_BYTES:
            yield encoded(part)
            part, size = [], len(encoded([]).encode())
        part.append(key)
        size += cost
    if part:
        yield encoded(part)


def parse(payload: str) -> tuple[str, str, tuple[str, ...] | None] | None:
    """(origin, kind, keys) of a notification; None if it is not one of ours."""
    try:
        message = json.loads(payload)
        origin, kind, keys = message["o"], message["k"], message["v"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(origin, str) or not isinstance(kind, str):
        return None
    if keys is None:
        return origin, kind, None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return None
    return origin, kind, tuple(keys)


class ChangeFeed:
    """One process's ear: a dedicated connection LISTENing on CHANNEL, and the handlers
    that drop what other processes changed. Reconnects with backoff for as long as it runs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.origin = origin_of(engine.sync_engine)
        self._handlers: dict[str, list[Handler]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connections = 0  # how many times it started listening (tests, logs)
        self.server_pid: int | None = None  # the listening connection's server process

    def subscribe(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` with the keys of each change of ``kind`` made elsewhere, and with
        None whenever it (re)starts listening: changes may have been missed meanwhile."""
        self._handlers.setdefault(kind, []).append(handler)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def start(self) -> None:
        """Start listening, waiting a little for it (a database that does not answer now
        is retried in the background; the caches' TTLs cover the gap)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="change-feed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), FIRST_LISTEN_WAIT)

    async def wait_listening(self) -> None:
        await self._listening.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # internals -----------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            try:
                async with self._engine.connect() as conn:
                    try:
                        await self._listen(conn)
                    finally:
                        # Never back to the pool: it would go on listening for whoever
                        # borrows it next.
                        with contextlib.suppress(Exception):
                            await conn.invalidate()
                delay = RECONNECT_FIRST
                log.warning("the change feed's connection was lost; listening again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "cannot listen for other processes' changes (%s); again in %.1f s",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    delay,
                )
            finally:
                self._listening.clear()
                self.server_pid = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _listen(self, conn: AsyncConnection) -> None:
        """LISTEN until the connection is lost."""
        raw = (await conn.get_raw_connection()).driver_connection
        lost = asyncio.Event()
        raw.add_termination_listener(lambda _connection: lost.set())
        await raw.add_listener(CHANNEL, self._heard)
        self.connections += 1
        self.server_pid = raw.get_server_pid()
        # Listening now: whatever changed before is dropped, whatever changes after is heard.
        self._dispatch_everything()
        self._listening.set()
        log.debug("listening for other processes' changes")
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_INTERVAL)
                return
            await asyncio.wait_for(raw.fetchval("SELECT 1"), PING_TIMEOUT)

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        message = parse(payload)
        if message is None:
            log.debug("ignored a notification that is not ours")
            return
        origin, kind, keys = message
        if origin == self.origin:  # our own write: our memory is up to date already
            return
        for handler in self._handlers.get(kind, ()):
            self._call(handler, keys)

    def _dispatch_everything(self) -> None:
        for handlers in self._handlers.values():
            for handler in handlers:
                self._call(handler, None)

    @staticmethod
    def _call(handler: Handler, keys: tuple[str, ...] | None) -> None:
        try:
            handler(keys)
        except Exception:
            log.exception("a change handler failed")
