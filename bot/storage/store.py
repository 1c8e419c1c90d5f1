"""SessionStore: every method is one database operation in its own session and transaction.

Writes are serialised in-process: SQLite admits one writer at a time, and many connections
retrying inside its busy handler (with growing sleeps) queue far worse than a lock does.
Settings, and which sessions exist, are cached (``bot.storage.settings_cache``): every
question reads its channel's and server's, and a session that doesn't exist yet needs no
history query either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession as DbSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.core.errors import StorageError
from bot.core.history import ChatMessage
from bot.storage.models import ChatSession, StoredMessage, utcnow
from bot.storage.records import SessionRecord, SessionSettings
from bot.storage.settings_cache import SettingsCache

log = logging.getLogger(__name__)

_UNSET: Any = object()
_SETTINGS = select(
    ChatSession.id, ChatSession.model, ChatSession.system_prompt, ChatSession.options,
    ChatSession.scope,
)  # fmt: skip
_MESSAGES = select(StoredMessage.role, StoredMessage.content, StoredMessage.tool_calls)


def _settings(row: Any) -> SessionSettings:
    return SessionSettings(row.model, row.system_prompt, dict(row.options or {}), row.scope)


def _record(row: ChatSession, count: int) -> SessionRecord:
    return SessionRecord(row.id, _settings(row), row.created_at, row.updated_at, count)


def _message(row: Any) -> ChatMessage:
    message: ChatMessage = {"role": row.role, "content": row.content}
    if row.tool_calls:
        message["tool_calls"] = row.tool_calls
    return message


def _insert_ignore(db: DbSession, **values: Any) -> Insert:
    """INSERT a session unless it exists: race-free where get-then-add is not."""
    return _insert_ignore_many(db, [values])


def _insert_ignore_many(db: DbSession, sessions: Sequence[dict[str, Any]]) -> Insert:
    now = utcnow()
    rows = [{"options": {}, "created_at": now, "updated_at": now, **values} for values in sessions]
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(ChatSession).values(rows).on_conflict_do_nothing(index_elements=["id"])


# SQLite allows 32766 bound parameters per statement (999 before 3.32).
IDS_PER_STATEMENT = 150
# Turns ending within this window share a transaction; it also keeps the write out of the
# moment those answers send their final edits, which matter more to the people waiting.
GROUP_COMMIT_WINDOW = 0.05


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(slots=True)
class _Turn:
    session_id: str
    messages: list[ChatMessage]
    model: str | None
    done: asyncio.Future[bool]


class SessionStore:
    def __init__(self, sessionmaker: async_sessionmaker[DbSession]) -> None:
        self._sessionmaker = sessionmaker
        self._write_lock = asyncio.Lock()
        self._turns: list[_Turn] = []
        self._turn_writer: asyncio.Task[None] | None = None
        self._commit_now = asyncio.Event()
        self._cache = SettingsCache(self._read_settings, self._read_ids)

    # plumbing ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[DbSession]:
        try:
            async with self._sessionmaker() as db:
                yield db
        except (OperationalError, DBAPIError) as exc:
            log.error("database read failed: %s", exc)
            raise StorageError() from exc

    @contextlib.asynccontextmanager
    async def _writing(self, *invalidate: str) -> AsyncIterator[DbSession]:
        try:
            async with self._write_lock, self._sessionmaker() as db, db.begin():
                yield db
        except (OperationalError, DBAPIError) as exc:
            log.error("database write failed: %s", exc)
            raise StorageError() from exc
        finally:
            self._cache.forget(*invalidate)

    async def _read_settings(self, session_ids: list[str]) -> dict[str, SessionSettings]:
        found = {}
        async with self._reading() as db:
            for part in _chunks(session_ids, IDS_PER_STATEMENT):
                rows = (await db.execute(_SETTINGS.where(ChatSession.id.in_(part)))).all()
                found.update((row.id, _settings(row)) for row in rows)
        return found

    async def _read_ids(self, limit: int) -> list[str]:
        async with self._reading() as db:
            return list(await db.scalars(select(ChatSession.id).limit(limit)))

    # reads ---------------------------------------------------------------------------------
    async def settings_of(self, session_ids: Sequence[str]) -> dict[str, SessionSettings]:
        """Settings of the sessions that exist among ``session_ids`` (cached)."""
        known = await self._cache.known(session_ids)
        return {i: s for i, s in known.items() if s is not None}

    async def keep_index_fresh(self) -> None:
        """Keep knowing which sessions exist, so questions in new ones read nothing.

        Runs until cancelled (the request manager runs it from start to close).
        """
        await self._cache.keep_ids_fresh()

    async def load_context(
        self, session_id: str, history_limit: int
    ) -> tuple[SessionSettings, list[ChatMessage]]:
        """What a question needs before its first token: settings and newest messages.

        Read-only, so questions never wait for the database's single writer here.
        """
        settings = (await self._cache.known([session_id]))[session_id]
        if settings is None:  # no session yet, so no history either
            return SessionSettings(), []
        if history_limit <= 0:
            return settings, []
        newest = (
            _MESSAGES.where(StoredMessage.session_id == session_id)
            .order_by(StoredMessage.id.desc())
            .limit(history_limit)
        )
        async with self._reading() as db:
            rows = (await db.execute(newest)).all()
        return settings, [_message(r) for r in reversed(rows)]

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._reading() as db:
            row = await db.get(ChatSession, session_id)
            return None if row is None else _record(row, await self._count(db, session_id))

    async def count(self) -> int:
        async with self._reading() as db:
            return int(await db.scalar(select(func.count()).select_from(ChatSession)) or 0)

    async def list(self, limit: int = 100) -> list[SessionRecord]:
        counts = (
            select(StoredMessage.session_id, func.count().label("n"))
            .group_by(StoredMessage.session_id)
            .subquery()
        )
        query = (
            select(ChatSession, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.session_id == ChatSession.id)
            .order_by(ChatSession.updated_at.desc())
            .limit(limit)
        )
        async with self._reading() as db:
            return [_record(row, n) for row, n in (await db.execute(query)).all()]

    async def messages(self, session_id: str, limit: int | None = None) -> list[ChatMessage]:
        """The session's messages, oldest first; with ``limit``, only the newest ones."""
        query = _MESSAGES.where(StoredMessage.session_id == session_id)
        async with self._reading() as db:
            if limit is None:
                rows = (await db.execute(query.order_by(StoredMessage.id))).all()
                return [_message(r) for r in rows]
            newest = query.order_by(StoredMessage.id.desc()).limit(limit)
            return [_message(r) for r in reversed((await db.execute(newest)).all())]

    # writes --------------------------------------------------------------------------------
    async def append_turn(
        self, session_id: str, messages: Sequence[ChatMessage], *, model: str | None = None
    ) -> bool:
        """Store a completed turn atomically (creating the session); True if it was new.

        Turns finishing together are written in one transaction (a group commit): fifty
        answers ending at once cost one write, not fifty queued behind each other.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._turns.append(_Turn(session_id, list(messages), model, future))
        if self._turn_writer is None or self._turn_writer.done():
            self._turn_writer = loop.create_task(self._write_turns())
        # Shielded: a caller that gives up waiting must not undo a turn being written.
        return await asyncio.shield(future)

    async def _write_turns(self) -> None:
        with contextlib.suppress(TimeoutError):  # a reset or delete may need them sooner
            await asyncio.wait_for(self._commit_now.wait(), GROUP_COMMIT_WINDOW)
        self._commit_now.clear()
        while self._turns:
            batch, self._turns = self._turns, []
            try:
                created = await self._write_batch(batch)
            except Exception as exc:
                for turn in batch:
                    if not turn.done.done():
                        turn.done.set_exception(exc)
                continue
            for turn in batch:
                if not turn.done.done():
                    turn.done.set_result(created[turn.session_id])

    async def _settle_turns(self) -> None:
        """Write the turns waiting for their group commit now: an answer already shown
        must not reappear after a reset or delete that came after it."""
        writer = self._turn_writer
        if writer is not None and not writer.done():
            self._commit_now.set()
            await asyncio.shield(writer)

    async def _write_batch(self, batch: list[_Turn]) -> dict[str, bool]:
        now = utcnow()
        sessions = list(dict.fromkeys(turn.session_id for turn in batch))
        created: dict[str, bool] = {}
        async with self._writing(*sessions) as db:
            # A constant number of statements per batch: each one is a round trip to the
            # database thread, and fifty of them would keep the event loop busy while the
            # final edits of those same answers are going out.
            for part in _chunks(sessions, IDS_PER_STATEMENT):
                existing = set(
                    await db.scalars(select(ChatSession.id).where(ChatSession.id.in_(part)))
                )
                new = [{"id": session_id} for session_id in part if session_id not in existing]
                if new:
                    await db.execute(_insert_ignore_many(db, new))
                created.update((session_id, session_id not in existing) for session_id in part)
                touch = update(ChatSession).where(ChatSession.id.in_(part))
                await db.execute(touch.values(updated_at=now))
            rows = [
                {
                    "session_id": turn.session_id,
                    "role": m["role"],
                    "content": m.get("content", ""),
                    "tool_calls": m.get("tool_calls") or None,
                    "model": turn.model if m["role"] == "assistant" else None,
                    "created_at": now,
                }
                for turn in batch
                for m in turn.messages
            ]
            if rows:
                await db.execute(insert(StoredMessage), rows)
        return created

    async def reset(self, session_id: str, system_prompt: str | None = None) -> SessionRecord:
        """Create the session anew: its messages are dropped, its settings replaced."""
        await self._settle_turns()
        async with self._writing(session_id) as db:
            await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
            row = ChatSession(id=session_id, system_prompt=system_prompt, options={})
            db.add(row)
            await db.flush()
            return _record(row, 0)

    async def update_settings(
        self,
        session_id: str,
        *,
        model: str | None = _UNSET,
        system_prompt: str | None = _UNSET,
        options: dict[str, Any] | None = _UNSET,
        scope: str | None = _UNSET,
    ) -> tuple[SessionSettings, bool]:
        """Change some settings (a keyword left out keeps its value, None resets it).

        Returns the new settings and whether the session was created for them.
        """
        changes: dict[str, Any] = {"updated_at": utcnow()}
        for name, value in (
            ("model", model),
            ("system_prompt", system_prompt),
            ("options", options),
            ("scope", scope),
        ):
            if value is not _UNSET:
                changes[name] = dict(value or {}) if name == "options" else value
        async with self._writing(session_id) as db:
            created = (await db.execute(_insert_ignore(db, id=session_id))).rowcount == 1
            await db.execute(
                update(ChatSession).where(ChatSession.id == session_id).values(**changes)
            )
            row = (await db.execute(_SETTINGS.where(ChatSession.id == session_id))).one()
            return _settings(row), created

    async def delete(self, session_id: str) -> bool:
        await self._settle_turns()
        async with self._writing(session_id) as db:
            result = await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
            return bool(result.rowcount)

    async def clear_messages(self, session_id: str) -> int:
        """Forget a session's messages but keep its settings."""
        await self._settle_turns()
        async with self._writing() as db:
            result = await db.execute(
                delete(StoredMessage).where(StoredMessage.session_id == session_id)
            )
            return int(result.rowcount or 0)

    async def clear_messages_prefix(self, prefix: str) -> int:
        """Forget the messages of every session whose id starts with ``prefix``."""
        await self._settle_turns()
        matching = StoredMessage.session_id.startswith(prefix, autoescape=True)
        async with self._writing() as db:
            result = await db.execute(delete(StoredMessage).where(matching))
            return int(result.rowcount or 0)

    async def delete_all(self) -> int:
        await self._settle_turns()
        try:
            async with self._writing() as db:
                return int((await db.execute(delete(ChatSession))).rowcount or 0)
        finally:
            self._cache.forget_all()

    async def delete_idle(self, older_than: datetime) -> int:
        await self._settle_turns()
        try:
            async with self._writing() as db:
                stale = delete(ChatSession).where(ChatSession.updated_at < older_than)
                return int((await db.execute(stale)).rowcount or 0)
        finally:
            self._cache.forget_all()

    @staticmethod
    async def _count(db: DbSession, session_id: str) -> int:
        query = select(func.count()).where(StoredMessage.session_id == session_id)
        return int(await db.scalar(query) or 0)
