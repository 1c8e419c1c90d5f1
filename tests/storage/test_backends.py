"""What SQLite forgives and PostgreSQL does not, on the run's backend: Discord ids and row
ids past 2^31, NUL characters, case-insensitive search; and the server engine's pool."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.knowledge.records import Chunk, NewChunk
from bot.storage.engine import POOL_HEADROOM, open_engine
from bot.storage.live_replies import LiveReplyRecord
from tests.storage.stores import Stores, stores_of

SNOWFLAKE = 1_312_345_678_901_234_567  # a Discord id of 2024: 61 bits
PAST_INT32 = 2**31 + 10
# The tables whose ids a sequence (PostgreSQL) or the rowid (SQLite) numbers.
NUMBERED = ("messages", "message_images", "kb_documents", "kb_chunks", "member_notes")


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    async with stores_of(database_url) as opened:
        yield opened


# SQLite numbers a row after the largest rowid: one row of each table at 2^31 + 10 does it.
SQLITE_FILLERS = (
    "INSERT INTO sessions (id, options, created_at, updated_at) VALUES ('filler', '{}', 0, 0)",
    f"INSERT INTO messages (id, session_id, role, content, created_at)"
    f" VALUES ({PAST_INT32}, 'filler', 'user', '', 0)",
    f"INSERT INTO message_images (id, message_id, session_id, data)"
    f" VALUES ({PAST_INT32}, {PAST_INT32}, 'filler', x'00')",
    f"INSERT INTO kb_documents (id, scope, name, content_hash, characters, created_at)"
    f" VALUES ({PAST_INT32}, 'filler', 'filler', '', 0, 0)",
    f"INSERT INTO kb_chunks (id, document_id, position, text, content_hash)"
    f" VALUES ({PAST_INT32}, {PAST_INT32}, 0, '', '')",
    f"INSERT INTO member_notes (id, scope, user_id, text, created_at)"
    f" VALUES ({PAST_INT32}, 'filler', 0, '', 0)",
)


async def number_past_int32(engine: AsyncEngine) -> None:
    """Make the next id of every numbered table exceed 2^31, as after years of use."""
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for statement in SQLITE_FILLERS:
                await conn.execute(text(statement))
            return
        for table in NUMBERED:
            await conn.execute(text(f"SELECT setval('{table}_id_seq', {PAST_INT32})"))


async def test_discord_ids_keep_all_their_digits(stores: Stores) -> None:
    await stores.live.apply([LiveReplyRecord(SNOWFLAKE + 1, (SNOWFLAKE, SNOWFLAKE + 2))], [])
    (reply,) = await stores.live.all()
    assert (reply.channel_id, reply.message_ids) == (SNOWFLAKE + 1, (SNOWFLAKE, SNOWFLAKE + 2))

    note = await stores.memory.add_note(f"guild:{SNOWFLAKE}", SNOWFLAKE, "likes tea", limit=5)
    assert note is not None
    assert await stores.memory.notes(f"guild:{SNOWFLAKE}", SNOWFLAKE) == [note]

    chunk = NewChunk(Chunk("text", None, None, "hash"), "m", b"\0" * 8)
    await stores.knowledge.put_document(
        "guild:1", "doc", content_hash="h", characters=4, pages=None,
        channel_ids=[SNOWFLAKE], added_by=SNOWFLAKE, new_chunks=[chunk],
    )  # fmt: skip
    (document,) = await stores.knowledge.documents("guild:1", "m")
    assert (document.channel_ids, document.added_by) == ((SNOWFLAKE,), SNOWFLAKE)


async def test_row_ids_past_two_to_the_31st(stores: Stores) -> None:
    await number_past_int32(stores.engine)
    picture = b"\x89PNG-ish bytes"
    question = {"role": "user", "content": "look", "images": [picture]}
    await stores.sessions.append_turn("s", [question, {"role": "assistant", "content": "ok"}])
    assert (await stores.sessions.messages("s"))[0]["images"] == [picture]
    (spoken, *_) = await stores.memory.unembedded("m", 10, max_chars=100)
    assert spoken.id > PAST_INT32

    note = await stores.memory.add_note("dm", 1, "a note", limit=5)
    assert note is not None and note.id > PAST_INT32

    chunk = NewChunk(Chunk("text", None, None, "hash"), "m", b"\0" * 8)
    document_id, chunk_ids, _ = await stores.knowledge.put_document(
        "guild:1", "doc", content_hash="h", characters=4, pages=None,
        channel_ids=None, added_by=None, new_chunks=[chunk],
    )  # fmt: skip
    assert document_id > PAST_INT32 and chunk_ids[0] > PAST_INT32
    assert (await stores.knowledge.passages(chunk_ids))[chunk_ids[0]].text == "text"


async def test_a_nul_character_does_not_lose_the_turn(stores: Stores) -> None:
    # A tool's output may hold one. PostgreSQL refuses NUL in text; SQLite keeps it, but its
    # substr() stops there. Both keep U+FFFD instead, and what follows.
    tool = {"role": "tool", "content": "bytes\x00here", "tool_name": "fetch"}
    await stores.sessions.append_turn("s", [{"role": "user", "content": "q"}, tool])
    stored = (await stores.sessions.messages("s"))[1]["content"]
    assert stored == "bytes\ufffdhere"


async def test_search_ignores_case_on_every_backend(stores: Stores) -> None:
    await stores.sessions.append_turn("s", [{"role": "user", "content": "The Blue Whale"}])
    found = await stores.sessions.search_messages("s", "blue WHALE", 5)
    assert [m["content"] for m in found] == ["The Blue Whale"]
    assert await stores.sessions.search_messages("s", "50%", 5) == []  # % is no wildcard


async def test_a_server_engine_pools_a_connection_per_answer_and_hides_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.storage.engine")
    url = "postgresql+asyncpg://ollacord:s3cret-pw@db.example:5432/ollacord"
    engine = open_engine(url, concurrency=12)
    try:
        assert engine.pool.size() == 12 + POOL_HEADROOM  # type: ignore[attr-defined]
        assert engine.pool._pre_ping  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    assert "db.example" in caplog.text
    assert "s3cret-pw" not in caplog.text
