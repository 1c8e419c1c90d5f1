"""MemoryStore: what the bot remembers beyond the history window, as the database keeps it.

- turn embeddings: the vector of each stored user and assistant message, and the model that
  made it (a message whose vector is missing or of another model is "unembedded");
- the running summary of a conversation (``sessions.summary`` and ``summary_upto``, the id
  of the last message folded into it);
- members' notes, per scope ("guild:<id>" or "dm") and member.

It works through the SessionStore's plumbing: the same single writer (SQLite admits one),
and the same settings cache, so a summary written here is what the next question reads.
Vectors are bytes here; the core turns them into arrays (``bot.core.embedding``).

Background work races deletions: a vector or summary computed while its messages were
cleared must not land on whatever comes next. SQLite may give a cleared message's id to a
new one, so writes check each message's ``created_at`` as well as its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession as DbSession

from bot.storage.models import ChatSession, MemberNote, MessageEmbedding, StoredMessage, utcnow
from bot.storage.store import SessionStore
from bot.storage.turns import IDS_PER_STATEMENT

# The roles whose messages are embedded and summarized: what people and the model said.
SPOKEN_ROLES = ("user", "assistant")
BLANKS = " \t\r\n"  # a message of only these has nothing to embed


@dataclass(frozen=True, slots=True)
class StoredText:
    """A stored message's text (its start, up to what the reader asked for)."""

    id: int
    session_id: str
    role: str
    content: str
    created_at: datetime
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TurnVector:
    """What the index needs to write a message's vector: which message, and which version
    of it (``created_at``: the id alone may have been reused)."""

    message_id: int
    created_at: datetime
    model: str
    embedding: bytes


@dataclass(frozen=True, slots=True)
class FoldState:
    """A conversation's summary so far, and the messages that fell out of the window after
    it: ``pending`` of them, the oldest ``messages`` of those given."""

    summary: str | None
    upto: int | None
    pending: int
    messages: list[StoredText]
    model: str | None  # the model that answered last, None if none did


@dataclass(frozen=True, slots=True)
class NoteRecord:
    id: int
    text: str
    created_at: datetime


def _text(row: Any) -> StoredText:
    return StoredText(row.id, row.session_id, row.role, row.content, row.created_at, row.model)


def _texts(max_chars: int) -> Select[Any]:
    """Messages with the start of their text only: what embedding and folding read."""
    return select(
        StoredMessage.id,
        StoredMessage.session_id,
        StoredMessage.role,
        func.substr(StoredMessage.content, 1, max_chars).label("content"),
        StoredMessage.created_at,
        StoredMessage.model,
    )


class MemoryStore:
    def __init__(self, sessions: SessionStore) -> None:
        self._sessions = sessions
        # The session store's plumbing: its one writer and its cache of settings.
        self._reading = sessions._reading
        self._writing = sessions._writing

    # turn embeddings -----------------------------------------------------------------------
    async def unembedded(
        self,
        model: str,
        limit: int,
        *,
        session_id: str | None = None,
        before: int | None = None,
        max_chars: int,
    ) -> list[StoredText]:
        """User and assistant messages with text but no vector of ``model``, newest first
        (of one session, or of all; with ``before``, older than that message id, so a pass
        over many pages reads each message once): recent conversations are the likeliest
        searched."""
        vector = MessageEmbedding
        query = (
            _texts(max_chars)
            .outerjoin(vector, vector.message_id == StoredMessage.id)
            .where(
                StoredMessage.role.in_(SPOKEN_ROLES),
                func.trim(StoredMessage.content, BLANKS) != "",
                or_(vector.message_id.is_(None), vector.model != model),
            )
            .order_by(StoredMessage.id.desc())
            .limit(limit)
        )
        if session_id is not None:
            query = query.where(StoredMessage.session_id == session_id)
        if before is not None:
            query = query.where(StoredMessage.id < before)
        async with self._reading() as db:
            return [_text(row) for row in (await db.execute(query)).all()]

    async def save_vectors(self, vectors: Sequence[TurnVector]) -> int:
        """Store (or replace) these messages' vectors; those whose message is gone or was
        replaced meanwhile are skipped. Returns how many were stored."""
        if not vectors:
            return 0
        stored = 0
        async with self._writing() as db:
            for start in range(0, len(vectors), IDS_PER_STATEMENT):
                part = vectors[start : start + IDS_PER_STATEMENT]
                live = {
                    (row.id, row.created_at): row.session_id
                    for row in await db.execute(
                        select(
                            StoredMessage.id, StoredMessage.created_at, StoredMessage.session_id
                        ).where(StoredMessage.id.in_([v.message_id for v in part]))
                    )
                }
                rows = [
                    {
                        "message_id": v.message_id,
                        "session_id": live[(v.message_id, v.created_at)],
                        "model": v.model,
                        "embedding": v.embedding,
                    }
                    for v in part
                    if (v.message_id, v.created_at) in live
                ]
                if rows:
                    await db.execute(_upsert_vectors(db, rows))
                    stored += len(rows)
        return stored

    async def vectors_of(self, session_id: str, model: str) -> list[tuple[int, bytes]]:
        """(message id, vector) of a session's messages embedded with ``model``."""
        query = select(MessageEmbedding.message_id, MessageEmbedding.embedding).where(
            MessageEmbedding.session_id == session_id, MessageEmbedding.model == model
        )
        async with self._reading() as db:
            return [(row.message_id, row.embedding) for row in (await db.execute(query)).all()]

    async def texts(self, session_id: str, ids: Sequence[int], max_chars: int) -> list[StoredText]:
        """These messages of the session (others' are never returned), in id order."""
        query = (
            _texts(max_chars)
            .where(StoredMessage.session_id == session_id, StoredMessage.id.in_(list(ids)))
            .order_by(StoredMessage.id)
        )
        async with self._reading() as db:
            return [_text(row) for row in (await db.execute(query)).all()]

    # running summary -----------------------------------------------------------------------
    async def fold_state(
        self, session_id: str, *, keep_newest: int, limit: int, max_chars: int
    ) -> FoldState | None:
        """The summary so far and the messages that fell out of the history window since:
        older than the newest ``keep_newest`` (the stored messages a question's window holds
        besides the question), or than the first question among those (a window never opens
        on an answer). The oldest ``limit`` of them are given; None without a session."""
        ours = StoredMessage.session_id == session_id
        async with self._reading() as db:
            found = (
                await db.execute(
                    select(ChatSession.summary, ChatSession.summary_upto).where(
                        ChatSession.id == session_id
                    )
                )
            ).one_or_none()
            if found is None:
                return None
            summary, upto = found
            newest = (
                await db.execute(
                    select(StoredMessage.id, StoredMessage.role)
                    .where(ours)
                    .order_by(StoredMessage.id.desc())
                    .limit(keep_newest + 1)
                )
            ).all()
            if len(newest) <= keep_newest:  # all of it is still sent
                return FoldState(summary, upto, 0, [], None)
            sent = newest[:keep_newest][::-1]
            questions = [row.id for row in sent if row.role == "user"]
            first_sent = questions[0] if questions else newest[0].id + 1
            fallen = and_(ours, StoredMessage.id > (upto or 0), StoredMessage.id < first_sent)
            pending = int(await db.scalar(select(func.count()).where(fallen)) or 0)
            rows = (
                await db.execute(
                    _texts(max_chars).where(fallen).order_by(StoredMessage.id).limit(limit)
                )
            ).all()
            model = await db.scalar(
                select(StoredMessage.model)
                .where(ours, StoredMessage.role == "assistant", StoredMessage.model.is_not(None))
                .order_by(StoredMessage.id.desc())
                .limit(1)
            )
        return FoldState(summary, upto, pending, [_text(row) for row in rows], model)

    async def save_summary(
        self, session_id: str, summary: str, *, upto: StoredText, previous_upto: int | None
    ) -> bool:
        """Store the summary covering the messages up to ``upto``, unless the conversation
        changed since ``previous_upto`` was read (another fold, a clear, a reset)."""
        unchanged = (
            ChatSession.summary_upto.is_(None)
            if previous_upto is None
            else ChatSession.summary_upto == previous_upto
        )
        still_there = exists().where(
            StoredMessage.id == upto.id,
            StoredMessage.session_id == session_id,
            StoredMessage.created_at == upto.created_at,
        )
        statement = (
            update(ChatSession)
            .where(ChatSession.id == session_id, unchanged, still_there)
            .values(summary=summary, summary_upto=upto.id)
        )
        async with self._writing(session_id) as db:
            return bool((await db.execute(statement)).rowcount)

    # members' notes ------------------------------------------------------------------------
    async def notes_enabled(self, scope: str) -> bool:
        """Whether the server has opted in: the settings session named like the scope
        ("guild:<id>") has ``member_notes`` on."""
        settings = (await self._sessions.settings_of([scope])).get(scope)
        return bool(settings and settings.member_notes)

    async def notes(self, scope: str, user_id: int) -> list[NoteRecord]:
        """One member's notes in a scope, oldest first."""
        query = (
            select(MemberNote.id, MemberNote.text, MemberNote.created_at)
            .where(MemberNote.scope == scope, MemberNote.user_id == user_id)
            .order_by(MemberNote.id)
        )
        async with self._reading() as db:
            return [NoteRecord(*row) for row in (await db.execute(query)).all()]

    async def add_note(
        self, scope: str, user_id: int, text: str, *, limit: int
    ) -> NoteRecord | None:
        """Add a note (or find the same one already there); None if the member has
        ``limit`` notes already. Counted and added in one transaction."""
        mine = and_(MemberNote.scope == scope, MemberNote.user_id == user_id)
        async with self._writing() as db:
            same = (
                await db.execute(
                    select(MemberNote.id, MemberNote.text, MemberNote.created_at)
                    .where(mine, MemberNote.text == text)
                    .limit(1)
                )
            ).one_or_none()
            if same is not None:
                return NoteRecord(*same)
            if int(await db.scalar(select(func.count()).where(mine)) or 0) >= limit:
                return None
            note = MemberNote(scope=scope, user_id=user_id, text=text, created_at=utcnow())
            db.add(note)
            await db.flush()
            return NoteRecord(note.id, note.text, note.created_at)

    async def forget_note(self, scope: str, user_id: int, note_id: int) -> bool:
        """Delete one of this member's notes; another member's is never touched."""
        return bool(
            await self._delete_notes(
                MemberNote.scope == scope, MemberNote.user_id == user_id, MemberNote.id == note_id
            )
        )

    async def forget_notes(self, scope: str, user_id: int) -> int:
        """Delete every note of this member in the scope."""
        return await self._delete_notes(MemberNote.scope == scope, MemberNote.user_id == user_id)

    async def purge_notes(self, scope: str) -> int:
        """Delete every member's notes in the scope (an admin turning the feature off)."""
        return await self._delete_notes(MemberNote.scope == scope)

    async def _delete_notes(self, *where: Any) -> int:
        async with self._writing() as db:
            deleted = int((await db.execute(delete(MemberNote).where(*where))).rowcount or 0)
        if deleted:
            await self._sessions._scrub()  # deleted notes must not linger in the WAL
        return deleted


def _upsert_vectors(db: DbSession, rows: list[dict[str, Any]]) -> Insert:
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(MessageEmbedding).values(rows)
    return statement.on_conflict_do_update(
        index_elements=["message_id"],
        set_={"model": statement.excluded.model, "embedding": statement.excluded.embedding},
    )
