"""SQLAlchemy models. Schema changes go through Alembic (migrations/), never create_all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


# Row ids, and columns that hold them: BIGINT (BIGSERIAL) on PostgreSQL, whose INTEGER stops
# at 2^31. SQLite's INTEGER already holds 64 bits, and only "INTEGER PRIMARY KEY" is the
# rowid that numbers new rows: "BIGINT PRIMARY KEY" would leave them without an id.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class PlainText(TypeDecorator[str]):
    """Text without NUL characters, on every database. PostgreSQL refuses them; SQLite keeps
    them, but its functions (substr, length) stop at the first, so what embedding and the
    running summary read of a message would end there. A NUL (from a tool's output, say)
    becomes U+FFFD rather than losing the whole turn or the rest of the message."""

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        return value


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns aware datetimes (SQLite drops the zone on the way in)."""

    impl = DateTime()
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[dict[str, Any]]: JSON,
        list[str]: JSON,
        list[int]: JSON,
    }


class ChatSession(Base):
    """A conversation (a channel, or a user in a channel) and its own settings."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(PlainText)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # For channel sessions: "channel" (one conversation) or "user" (one per member).
    scope: Mapped[str | None] = mapped_column(String(20))
    # A named preset of generation options (bot.core.presets); explicit options win over it.
    preset: Mapped[str | None] = mapped_column(String(40))
    keep_alive: Mapped[str | None] = mapped_column(String(40))
    # The tools the model may use here; None: the default ones.
    tools: Mapped[list[str] | None] = mapped_column(JSON)
    # The running summary of the turns that fell out of the history window, and the id of
    # the last message folded into it.
    summary: Mapped[str | None] = mapped_column(PlainText)
    summary_upto: Mapped[int | None] = mapped_column(RowId)
    knowledge: Mapped[bool | None] = mapped_column(Boolean)  # None: on where a base exists
    knowledge_passages: Mapped[int | None] = mapped_column(Integer)
    member_notes: Mapped[bool | None] = mapped_column(Boolean)  # a server's opt-in
    # The persona (a row of ``personas``, by name) a channel answers as; None: none.
    persona: Mapped[str | None] = mapped_column(String(40))
    # A channel whose questions are always answered in a thread of their own.
    threads: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    messages: Mapped[list[StoredMessage]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="StoredMessage.id",
    )


class StoredMessage(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_session_id_id", "session_id", "id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(PlainText, nullable=False, default="")
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tool_name: Mapped[str | None] = mapped_column(String(200))  # of a "tool" message
    # How many images came with the message (some may since have left the image budget);
    # history reads the images table only for messages that had any.
    image_count: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[ChatSession] = relationship(back_populates="messages")


class MessageImage(Base):
    """An image a member attached, kept (within a budget) so follow-ups still see it."""

    __tablename__ = "message_images"
    __table_args__ = (Index("ix_message_images_session_id", "session_id", "id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(
        RowId, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True
    )
    session_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class BotState(Base):
    """Small facts the bot keeps between runs, such as the hash of the synced command tree."""

    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LiveReply(Base):
    """A reply being written (its last message shows a cursor, maybe a Stop button). Kept
    so that the next start can end the replies a crash interrupted; deleted once final."""

    __tablename__ = "live_replies"

    # The id of the reply's first message.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    channel_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Every message of the reply so far, in order (the last one is the live one).
    message_ids: Mapped[list[int]] = mapped_column(JSON, nullable=False)
    # Interaction replies only: edits go through the interaction's webhook, which lasts 15
    # minutes. A credential: deleted with the row, never logged.
    interaction_token: Mapped[str | None] = mapped_column(Text)
    ephemeral: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class KbDocument(Base):
    """A document of a server's knowledge base."""

    __tablename__ = "kb_documents"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_kb_documents_scope_name"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(200), nullable=False)  # "guild:<id>"
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel_ids: Mapped[list[int] | None] = mapped_column(JSON)  # None: every channel
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    characters: Mapped[int] = mapped_column(Integer, nullable=False)
    pages: Mapped[int | None] = mapped_column(Integer)
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class KbChunk(Base):
    """A passage of a document, with its embedding (float32, little-endian) and the model
    that made it: vectors of two models are never compared."""

    __tablename__ = "kb_chunks"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(
        RowId, ForeignKey("kb_documents.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(PlainText, nullable=False)
    page: Mapped[int | None] = mapped_column(Integer)
    heading: Mapped[str | None] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    model: Mapped[str | None] = mapped_column(String(200))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class MessageEmbedding(Base):
    """The embedding of a stored user or assistant message, for search by meaning."""

    __tablename__ = "message_embeddings"

    message_id: Mapped[int] = mapped_column(
        RowId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class MemberNote(Base):
    """A short fact a member asked the bot to remember about them, in one server."""

    __tablename__ = "member_notes"
    __table_args__ = (Index("ix_member_notes_scope_user_id", "scope", "user_id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(200), nullable=False)  # "guild:<id>" or "dm"
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    text: Mapped[str] = mapped_column(PlainText, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class BenchRun(Base):
    """A benchmark of one model (``/model bench``, ``ollacord bench``), kept so that later
    runs can be shown beside earlier ones."""

    __tablename__ = "bench_runs"
    __table_args__ = (Index("ix_bench_runs_scope_model", "scope", "model", "id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(200), nullable=False)  # "guild:<id>" or "cli"
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    requested_by: Mapped[int | None] = mapped_column(BigInteger)
    # The run's figures (averages, medians, per-prompt results), as the runner reports them.
    results: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Persona(Base):
    """A named persona of a server (seed 003's assistants): a system prompt, and optionally
    a model, a preset, options and tools of its own."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_personas_scope_name"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(200), nullable=False)  # "guild:<id>"
    name: Mapped[str] = mapped_column(String(40), nullable=False)
    description: Mapped[str | None] = mapped_column(String(100))
    system_prompt: Mapped[str | None] = mapped_column(PlainText)
    model: Mapped[str | None] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(40))
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tools: Mapped[list[str] | None] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )


class QuotaPolicy(Base):
    """A server's fair-use quotas; a server without a row has none (off by default)."""

    __tablename__ = "quota_policies"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # "guild:<id>"
    tokens_per_hour: Mapped[int | None] = mapped_column(BigInteger)  # None: no hourly limit
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)  # None: no daily limit
    # Per role id (as a string): {"hour": int | None, "day": int | None, "exempt": bool}.
    role_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )


class TokenUsage(Base):
    """The tokens a member used in one server during one hour (UTC), for quotas, ``/usage``
    and the top users in ``/stats``."""

    __tablename__ = "token_usage"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # "guild:<id>" or "dm"
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the hour's start
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    questions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
