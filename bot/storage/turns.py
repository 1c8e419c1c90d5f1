"""Writing completed turns: group commits, and the images that come with a question.

Also the row conversions the store's reads share (a stored message back into a ChatMessage,
with its images).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession as DbSession

from bot.core.history import ChatMessage
from bot.storage import notify
from bot.storage.models import ChatSession, MessageImage, StoredMessage, utcnow

# The images a conversation keeps for follow-up questions: the newest few, each already
# bounded in bytes by bot.core.images. Older ones are deleted as new ones arrive.
MAX_STORED_IMAGES = 4

MESSAGE_COLUMNS = select(
    StoredMessage.id, StoredMessage.role, StoredMessage.content, StoredMessage.tool_calls,
    StoredMessage.tool_name, StoredMessage.image_count,
)  # fmt: skip


def _image_bytes(image: bytes | str) -> bytes:
    """An image as stored: its bytes (base64 text from a seed-API caller is decoded)."""
    return image if isinstance(image, bytes) else base64.b64decode(image)


def message_of(row: Any) -> ChatMessage:
    message: ChatMessage = {"role": row.role, "content": row.content}
    if row.tool_calls:
        message["tool_calls"] = row.tool_calls
    if row.tool_name:
        message["tool_name"] = row.tool_name
    return message


async def with_images(db: DbSession, rows: Sequence[Any]) -> list[ChatMessage]:
    """The messages of ``rows``, each with the images it still keeps (base64, as Ollama
    takes them). The images table is read only when some message had images."""
    messages = [message_of(r) for r in rows]
    wanted = [r.id for r in rows if r.image_count]
    if not wanted:
        return messages
    query = (
        select(MessageImage.message_id, MessageImage.data)
        .where(MessageImage.message_id.in_(wanted))
        .order_by(MessageImage.id)
    )
    images: dict[int, list[str]] = {}
    for message_id, data in (await db.execute(query)).all():
        images.setdefault(message_id, []).append(data)
    for row, message in zip(rows, messages, strict=True):
        if row.id in images:
            message["images"] = images[row.id]
    return messages


def insert_ignore(db: DbSession, **values: Any) -> Insert:
    """INSERT a session unless it exists: race-free where get-then-add is not."""
    return insert_ignore_many(db, [values])


def insert_ignore_many(db: DbSession, sessions: Sequence[dict[str, Any]]) -> Insert:
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


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(slots=True)
class _Turn:
    session_id: str
    messages: list[ChatMessage]
    model: str | None
    done: asyncio.Future[bool]


WritingContext = Callable[..., contextlib.AbstractAsyncContextManager[DbSession]]


class TurnWriter:
    """Stores completed turns, many at once when they end together."""

    def __init__(self, writing: WritingContext) -> None:
        self._writing = writing  # the store's one writer, which also refreshes its cache
        self._turns: list[_Turn] = []
        self._turn_writer: asyncio.Task[None] | None = None
        self._commit_now = asyncio.Event()

    async def append(
        self, session_id: str, messages: Sequence[ChatMessage], *, model: str | None = None
    ) -> bool:
        """Queue a turn for the next group commit; True once written if its session is new."""
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

    async def settle(self) -> None:
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
        # Announced are the sessions created (other processes may hold them as absent), not
        # every session written: turns change no settings.
        async with self._writing(*sessions, announce=False) as db:
            # A constant number of statements per batch: each one is a round trip to the
            # database thread, and fifty of them would keep the event loop busy while the
            # final edits of those same answers are going out.
            for part in chunks(sessions, IDS_PER_STATEMENT):
                existing = set(
                    await db.scalars(select(ChatSession.id).where(ChatSession.id.in_(part)))
                )
                new = [{"id": session_id} for session_id in part if session_id not in existing]
                if new:
                    await db.execute(insert_ignore_many(db, new))
                    await notify.announce(db, notify.SESSIONS, [row["id"] for row in new])
                created.update((session_id, session_id not in existing) for session_id in part)
                touch = update(ChatSession).where(ChatSession.id.in_(part))
                await db.execute(touch.values(updated_at=now))
            rows = [
                {
                    "session_id": turn.session_id,
                    "role": m["role"],
                    "content": m.get("content", ""),
                    "tool_calls": m.get("tool_calls") or None,
                    "tool_name": m.get("tool_name") or None,
                    "image_count": len(m.get("images") or ()) or None,
                    "model": turn.model if m["role"] == "assistant" else None,
                    "created_at": now,
                }
                for turn in batch
                for m in turn.messages
            ]
            if any(row["image_count"] for row in rows):
                await self._insert_with_images(db, batch, rows)
            elif rows:
                await db.execute(insert(StoredMessage), rows)
        return created

    @staticmethod
    async def _insert_with_images(
        db: DbSession, batch: list[_Turn], rows: list[dict[str, Any]]
    ) -> None:
        """Insert a batch in which some messages carry images: those one by one, for their
        ids; then drop each conversation's images beyond its budget."""
        messages = [m for turn in batch for m in turn.messages]
        with_images: set[str] = set()
        for row, message in zip(rows, messages, strict=True):
            if not row["image_count"]:
                await db.execute(insert(StoredMessage), [row])
                continue
            message_id = await db.scalar(insert(StoredMessage).returning(StoredMessage.id), row)
            images = [
                {"message_id": message_id, "session_id": row["session_id"], "data": data}
                for data in map(_image_bytes, message.get("images") or ())
            ]
            await db.execute(insert(MessageImage), images)
            with_images.add(row["session_id"])
        for session_id in with_images:
            keep = (
                select(MessageImage.id)
                .where(MessageImage.session_id == session_id)
                .order_by(MessageImage.id.desc())
                .limit(MAX_STORED_IMAGES)
            )
            await db.execute(
                delete(MessageImage).where(
                    MessageImage.session_id == session_id, MessageImage.id.not_in(keep)
                )
            )
