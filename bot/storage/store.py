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
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession as DbSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.core.history import ChatMessage
from bot.storage import notify
from bot.storage.models import ChatSession, StoredMessage, utcnow
from bot.storage.operations import reading, writing
from bot.storage.records import SessionRecord, SessionSettings
from bot.storage.settings_cache import SettingsCache
from bot.storage.turns import (
    IDS_PER_STATEMENT,
    MESSAGE_COLUMNS,
    TurnWriter,
    chunks,
    insert_ignore,
    message_of,
    with_images,
)

log = logging.getLogger(__name__)

_UNSET: Any = object()
_SETTINGS = select(
    ChatSession.id, ChatSession.model, ChatSession.system_prompt, ChatSession.options,
    ChatSession.scope, ChatSession.preset, ChatSession.keep_alive, ChatSession.tools,
    ChatSession.knowledge, ChatSession.knowledge_passages, ChatSession.member_notes,
    ChatSession.summary, ChatSession.persona, ChatSession.threads,
)  # fmt: skip
SEARCH_EXCERPT_LIMIT = 50  # messages a search may return at most


def _settings(row: Any) -> SessionSettings:
    return SessionSettings(
        row.model,
        row.system_prompt,
        dict(row.options or {}),
        row.scope,
        row.preset,
        row.keep_alive,
        None if row.tools is None else tuple(row.tools),
        row.knowledge,
        row.knowledge_passages,
        row.member_notes,
        row.summary,
        persona=row.persona,
        threads=row.threads,
    )


def _configured(settings: SessionSettings) -> bool:
    """Whether a session holds settings someone chose (not only a conversation)."""
    return bool(
        settings.model or settings.system_prompt or settings.options or settings.scope
        or settings.preset or settings.keep_alive or settings.knowledge_passages
        or settings.tools is not None or settings.knowledge is not None
        or settings.member_notes is not None or settings.persona
        or settings.threads is not None
    )  # fmt: skip


def _record(row: ChatSession, count: int) -> SessionRecord:
    return SessionRecord(row.id, _settings(row), row.created_at, row.updated_at, count)


class SessionStore:
    def __init__(self, sessionmaker: async_sessionmaker[DbSession]) -> None:
        self._sessionmaker = sessionmaker
        self._write_lock = asyncio.Lock()
        self._turns = TurnWriter(self._writing)
        self._cache = SettingsCache(self._read_settings, self._read_ids)

    # plumbing ------------------------------------------------------------------------------
    def _reading(self) -> contextlib.AbstractAsyncContextManager[DbSession]:
        return reading(self._sessionmaker)

    @contextlib.asynccontextmanager
    async def _writing(self, *invalidate: str, announce: bool = True) -> AsyncIterator[DbSession]:
        """One write; the cached settings of ``invalidate`` are forgotten after it, here and
        (``announce``: told in the same transaction) in the other processes."""
        try:
            async with writing(self._sessionmaker, self._write_lock) as db:
                yield db
                if announce and invalidate:
                    await notify.announce(db, notify.SESSIONS, invalidate)
        finally:
            self._cache.forget(*invalidate)

    def changed_elsewhere(self, session_ids: Sequence[str] | None) -> None:
        """Another process changed these sessions (None: perhaps any): read them again."""
        if session_ids is None:
            self._cache.drop()
        else:
            self._cache.forget(*session_ids)

    async def _read_settings(self, session_ids: list[str]) -> dict[str, SessionSettings]:
        found = {}
        async with self._reading() as db:
            for part in chunks(session_ids, IDS_PER_STATEMENT):
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
            MESSAGE_COLUMNS.where(StoredMessage.session_id == session_id)
            .order_by(StoredMessage.id.desc())
            .limit(history_limit)
        )
        async with self._reading() as db:
            rows = (await db.execute(newest)).all()
            return settings, await with_images(db, rows[::-1])

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
        query = MESSAGE_COLUMNS.where(StoredMessage.session_id == session_id)
        async with self._reading() as db:
            if limit is None:
                rows = (await db.execute(query.order_by(StoredMessage.id))).all()
                return await with_images(db, rows)
            newest = query.order_by(StoredMessage.id.desc()).limit(limit)
            return await with_images(db, (await db.execute(newest)).all()[::-1])

    async def search_messages(self, session_id: str, text: str, limit: int) -> list[ChatMessage]:
        """The newest user and assistant messages of a session that contain ``text``
        (case-insensitive), oldest first."""
        needle = text.strip()
        if not needle:
            return []
        query = (
            MESSAGE_COLUMNS.where(
                StoredMessage.session_id == session_id,
                StoredMessage.role.in_(("user", "assistant")),
                StoredMessage.content.icontains(needle, autoescape=True),
            )
            .order_by(StoredMessage.id.desc())
            .limit(max(1, min(limit, SEARCH_EXCERPT_LIMIT)))
        )
        async with self._reading() as db:
            rows = (await db.execute(query)).all()
        return [message_of(r) for r in reversed(rows)]

    # writes --------------------------------------------------------------------------------
    async def append_turn(
        self, session_id: str, messages: Sequence[ChatMessage], *, model: str | None = None
    ) -> bool:
        """Store a completed turn atomically (creating the session); True if it was new.

        Turns finishing together are written in one transaction (a group commit): fifty
        answers ending at once cost one write, not fifty queued behind each other.
        """
        return await self._turns.append(session_id, messages, model=model)

    async def _scrub(self) -> None:
        """Make deleted messages and images unrecoverable from the database files.

        SQLite zeroes deleted content in the main file (``secure_delete``, set per
        connection), but older copies of those pages stay in the write-ahead log until a
        checkpoint overwrites them: truncating it removes them now.
        """
        if self._sessionmaker.kw["bind"].dialect.name != "sqlite":
            return
        try:
            async with self._write_lock, self._sessionmaker() as db:
                connection = await db.connection()
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except (OperationalError, DBAPIError) as exc:  # the delete itself succeeded
            log.warning("could not truncate the database's write-ahead log: %s", exc)

    async def reset(self, session_id: str, system_prompt: str | None = None) -> SessionRecord:
        """Create the session anew: its messages are dropped, its settings replaced."""
        await self._turns.settle()
        async with self._writing(session_id) as db:
            await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
            row = ChatSession(id=session_id, system_prompt=system_prompt, options={})
            db.add(row)
            await db.flush()
            record = _record(row, 0)
        await self._scrub()
        return record

    async def update_settings(
        self,
        session_id: str,
        *,
        model: str | None = _UNSET,
        system_prompt: str | None = _UNSET,
        options: dict[str, Any] | None = _UNSET,
        scope: str | None = _UNSET,
        preset: str | None = _UNSET,
        keep_alive: str | None = _UNSET,
        tools: Sequence[str] | None = _UNSET,
        knowledge: bool | None = _UNSET,
        knowledge_passages: int | None = _UNSET,
        member_notes: bool | None = _UNSET,
        persona: str | None = _UNSET,
        threads: bool | None = _UNSET,
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
            ("preset", preset),
            ("keep_alive", keep_alive),
            ("tools", tools),
            ("knowledge", knowledge),
            ("knowledge_passages", knowledge_passages),
            ("member_notes", member_notes),
            ("persona", persona),
            ("threads", threads),
        ):
            if value is _UNSET:
                continue
            if name == "options":
                value = dict(value or {})
            elif name == "tools" and value is not None:
                value = list(value)
            changes[name] = value
        async with self._writing(session_id) as db:
            created = (await db.execute(insert_ignore(db, id=session_id))).rowcount == 1
            await db.execute(
                update(ChatSession).where(ChatSession.id == session_id).values(**changes)
            )
            row = (await db.execute(_SETTINGS.where(ChatSession.id == session_id))).one()
            return _settings(row), created

    async def delete(self, session_id: str) -> bool:
        await self._turns.settle()
        async with self._writing(session_id) as db:
            result = await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
        await self._scrub()
        return bool(result.rowcount)

    async def clear_messages(self, session_id: str) -> int:
        """Forget a session's messages, and its summary of them, but keep its settings.

        The messages' embeddings go with them (foreign keys, ON DELETE CASCADE)."""
        await self._turns.settle()
        async with self._writing(session_id) as db:
            result = await db.execute(
                delete(StoredMessage).where(StoredMessage.session_id == session_id)
            )
            await db.execute(
                update(ChatSession)
                .where(ChatSession.id == session_id)
                .values(summary=None, summary_upto=None)
            )
        await self._scrub()
        return int(result.rowcount or 0)

    async def clear_messages_prefix(self, prefix: str) -> int:
        """Forget the messages (and summaries) of every session whose id starts with
        ``prefix``."""
        await self._turns.settle()
        matching = StoredMessage.session_id.startswith(prefix, autoescape=True)
        try:
            async with self._writing() as db:
                result = await db.execute(delete(StoredMessage).where(matching))
                await db.execute(
                    update(ChatSession)
                    .where(ChatSession.id.startswith(prefix, autoescape=True))
                    .values(summary=None, summary_upto=None)
                )
                await notify.announce(db, notify.SESSIONS)
        finally:
            self._cache.forget_all()  # the summaries cached with those sessions' settings
        await self._scrub()
        return int(result.rowcount or 0)

    async def delete_all(self) -> int:
        await self._turns.settle()
        try:
            async with self._writing() as db:
                deleted = int((await db.execute(delete(ChatSession))).rowcount or 0)
                await notify.announce(db, notify.SESSIONS)
        finally:
            self._cache.forget_all()
        await self._scrub()
        return deleted

    async def delete_idle(self, older_than: datetime) -> int:
        """Forget the conversations not used since ``older_than``: a session holding only a
        conversation is deleted; one that also holds settings (a channel's model, a server's
        defaults and opt-ins) keeps them and loses its messages. Returns how many sessions
        were deleted."""
        await self._turns.settle()
        try:
            async with self._writing() as db:
                rows = (
                    await db.execute(_SETTINGS.where(ChatSession.updated_at < older_than))
                ).all()
                keep = [row.id for row in rows if _configured(_settings(row))]
                drop = [row.id for row in rows if not _configured(_settings(row))]
                deleted = 0
                for part in chunks(drop, IDS_PER_STATEMENT):
                    result = await db.execute(delete(ChatSession).where(ChatSession.id.in_(part)))
                    deleted += int(result.rowcount or 0)
                for part in chunks(keep, IDS_PER_STATEMENT):
                    await db.execute(
                        delete(StoredMessage).where(StoredMessage.session_id.in_(part))
                    )
                    forget = update(ChatSession).where(ChatSession.id.in_(part))
                    await db.execute(forget.values(summary=None, summary_upto=None))
                if rows:
                    await notify.announce(db, notify.SESSIONS, [row.id for row in rows])
        finally:
            self._cache.forget_all()
        if rows:
            await self._scrub()
        return deleted

    @staticmethod
    async def _count(db: DbSession, session_id: str) -> int:
        query = select(func.count()).where(StoredMessage.session_id == session_id)
        return int(await db.scalar(query) or 0)
