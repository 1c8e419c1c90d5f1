"""SessionStore: every method is one database operation in its own session and transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession as DbSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.history import ChatMessage
from bot.storage.models import ChatSession, StoredMessage, utcnow

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Per-session overrides; None means "use the bot's default"."""

    model: str | None = None
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    settings: SessionSettings
    created_at: datetime
    updated_at: datetime
    message_count: int


def _to_chat_message(row: StoredMessage) -> ChatMessage:
    message: ChatMessage = {"role": row.role, "content": row.content}  # type: ignore[typeddict-item]
    if row.tool_calls:
        message["tool_calls"] = row.tool_calls
    return message


def _settings(row: ChatSession) -> SessionSettings:
    return SessionSettings(row.model, row.system_prompt, dict(row.options or {}), row.scope)


def _record(row: ChatSession, count: int) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        settings=_settings(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
        message_count=count,
    )


def _insert_ignore(db: DbSession, **values: Any) -> Insert:
    """INSERT a session unless it exists: race-free where get-then-add is not."""
    now = utcnow()
    row = {"options": {}, "created_at": now, "updated_at": now, **values}
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(ChatSession).values(**row).on_conflict_do_nothing(index_elements=["id"])


_SETTINGS = select(
    ChatSession.model, ChatSession.system_prompt, ChatSession.options, ChatSession.scope
)
_MESSAGES = select(StoredMessage.role, StoredMessage.content, StoredMessage.tool_calls)


class SessionStore:
    def __init__(self, sessionmaker: async_sessionmaker[DbSession]) -> None:
        self._sessionmaker = sessionmaker

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._sessionmaker() as db:
            row = await db.get(ChatSession, session_id)
            if row is None:
                return None
            return _record(row, await self._count(db, session_id))

    async def ensure(
        self, session_id: str, system_prompt: str | None = None
    ) -> tuple[SessionRecord, bool]:
        """Return the session and whether it was created (with ``system_prompt``) just now."""
        async with self._sessionmaker() as db, db.begin():
            insert = _insert_ignore(db, id=session_id, system_prompt=system_prompt)
            created = (await db.execute(insert)).rowcount == 1
            row = await db.get(ChatSession, session_id)
            assert row is not None
            count = 0 if created else await self._count(db, session_id)
            return _record(row, count), created

    async def load_context(
        self, session_id: str, history_limit: int | None
    ) -> tuple[SessionSettings, bool, list[ChatMessage]]:
        """What a query needs, in one transaction: settings, created-now, newest messages."""
        # Core statements, not ORM objects: this runs before every answer's first token.
        async with self._sessionmaker() as db, db.begin():
            created = (await db.execute(_insert_ignore(db, id=session_id))).rowcount == 1
            row = (await db.execute(_SETTINGS.where(ChatSession.id == session_id))).one()
            settings = SessionSettings(
                row.model, row.system_prompt, dict(row.options or {}), row.scope
            )
            if created or history_limit == 0:
                return settings, created, []
            newest = (
                _MESSAGES.where(StoredMessage.session_id == session_id)
                .order_by(StoredMessage.id.desc())
                .limit(history_limit)
            )
            rows = (await db.execute(newest)).all()
            messages: list[ChatMessage] = []
            for r in reversed(rows):
                message: ChatMessage = {"role": r.role, "content": r.content}
                if r.tool_calls:
                    message["tool_calls"] = r.tool_calls
                messages.append(message)
            return settings, created, messages

    async def reset(self, session_id: str, system_prompt: str | None = None) -> SessionRecord:
        """Create the session anew: its messages are dropped, its settings replaced."""
        async with self._sessionmaker() as db, db.begin():
            await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
            row = ChatSession(id=session_id, system_prompt=system_prompt, options={})
            db.add(row)
            await db.flush()
            return _record(row, 0)

    async def delete(self, session_id: str) -> bool:
        async with self._sessionmaker() as db, db.begin():
            result = await db.execute(delete(ChatSession).where(ChatSession.id == session_id))
            return bool(result.rowcount)

    async def clear_messages(self, session_id: str) -> int:
        """Forget a session's messages but keep its settings."""
        async with self._sessionmaker() as db, db.begin():
            result = await db.execute(
                delete(StoredMessage).where(StoredMessage.session_id == session_id)
            )
            return int(result.rowcount or 0)

    async def clear_messages_prefix(self, prefix: str) -> int:
        """Forget the messages of every session whose id starts with ``prefix``."""
        matching = StoredMessage.session_id.startswith(prefix, autoescape=True)
        async with self._sessionmaker() as db, db.begin():
            result = await db.execute(delete(StoredMessage).where(matching))
            return int(result.rowcount or 0)

    async def delete_all(self) -> int:
        async with self._sessionmaker() as db, db.begin():
            result = await db.execute(delete(ChatSession))
            return int(result.rowcount or 0)

    async def count(self) -> int:
        async with self._sessionmaker() as db:
            return int(await db.scalar(select(func.count()).select_from(ChatSession)) or 0)

    async def list(self, limit: int = 100) -> list[SessionRecord]:
        async with self._sessionmaker() as db:
            counts = (
                select(StoredMessage.session_id, func.count().label("n"))
                .group_by(StoredMessage.session_id)
                .subquery()
            )
            rows = await db.execute(
                select(ChatSession, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.session_id == ChatSession.id)
                .order_by(ChatSession.updated_at.desc())
                .limit(limit)
            )
            return [_record(row, n) for row, n in rows.all()]

    async def messages(self, session_id: str, limit: int | None = None) -> list[ChatMessage]:
        """The session's messages, oldest first; with ``limit``, only the newest ones."""
        async with self._sessionmaker() as db:
            query = select(StoredMessage).where(StoredMessage.session_id == session_id)
            if limit is None:
                rows = (await db.scalars(query.order_by(StoredMessage.id))).all()
            else:
                newest = query.order_by(StoredMessage.id.desc()).limit(limit)
                rows = list(reversed((await db.scalars(newest)).all()))
            return [_to_chat_message(r) for r in rows]

    async def append_turn(
        self, session_id: str, messages: Sequence[ChatMessage], *, model: str | None = None
    ) -> None:
        """Store a completed turn atomically: either every message lands or none does."""
        async with self._sessionmaker() as db, db.begin():
            await db.execute(_insert_ignore(db, id=session_id))
            await db.execute(
                update(ChatSession).where(ChatSession.id == session_id).values(updated_at=utcnow())
            )
            now = utcnow()
            await db.execute(
                insert(StoredMessage),
                [
                    {
                        "session_id": session_id,
                        "role": m["role"],
                        "content": m.get("content", ""),
                        "tool_calls": m.get("tool_calls") or None,
                        "model": model if m["role"] == "assistant" else None,
                        "created_at": now,
                    }
                    for m in messages
                ],
            )

    async def update_settings(
        self,
        session_id: str,
        *,
        model: str | None = _UNSET,
        system_prompt: str | None = _UNSET,
        options: dict[str, Any] | None = _UNSET,
        scope: str | None = _UNSET,
    ) -> SessionSettings:
        """Change some settings; a keyword left out keeps its value, None resets it."""
        changes: dict[str, Any] = {"updated_at": utcnow()}
        if model is not _UNSET:
            changes["model"] = model
        if system_prompt is not _UNSET:
            changes["system_prompt"] = system_prompt
        if options is not _UNSET:
            changes["options"] = dict(options or {})
        if scope is not _UNSET:
            changes["scope"] = scope
        async with self._sessionmaker() as db, db.begin():
            await db.execute(_insert_ignore(db, id=session_id))
            await db.execute(
                update(ChatSession).where(ChatSession.id == session_id).values(**changes)
            )
            row = await db.get(ChatSession, session_id, populate_existing=True)
            assert row is not None
            return _settings(row)

    async def settings_of(self, session_ids: Sequence[str]) -> dict[str, SessionSettings]:
        """Settings of the sessions that exist among ``session_ids``, in one query."""
        async with self._sessionmaker() as db:
            rows = await db.scalars(select(ChatSession).where(ChatSession.id.in_(session_ids)))
            return {row.id: _settings(row) for row in rows}

    async def delete_idle(self, older_than: datetime) -> int:
        async with self._sessionmaker() as db, db.begin():
            result = await db.execute(
                delete(ChatSession).where(ChatSession.updated_at < older_than)
            )
            return int(result.rowcount or 0)

    @staticmethod
    async def _count(db: DbSession, session_id: str) -> int:
        query = select(func.count()).where(StoredMessage.session_id == session_id)
        return int(await db.scalar(query) or 0)
