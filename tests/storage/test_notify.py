"""Changes reaching the other processes: NOTIFY in the writing transaction, a ChangeFeed
LISTENing in each process, on a real PostgreSQL server (each "process" an engine of its
own); and nothing of it on SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.knowledge.records import Chunk, NewChunk
from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.knowledge import KnowledgeStore
from bot.storage.memory import MemoryStore
from bot.storage.notify import (
    KNOWLEDGE,
    MAX_PAYLOAD_BYTES,
    SESSIONS,
    ChangeFeed,
    parse,
    payloads,
)

WAIT = 10.0  # the most a notification may take to arrive before the test fails


def test_long_lists_of_keys_are_split_under_postgresqls_limit() -> None:
    keys = [f"channel:{i}:user:{'9' * 170}" for i in range(400)]
    sent = list(payloads("origin", SESSIONS, keys))
    assert len(sent) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES < 8000 for p in sent)
    heard = [parse(p) for p in sent]
    assert all(h is not None and h[:2] == ("origin", SESSIONS) for h in heard)
    assert [k for h in heard if h and h[2] for k in h[2]] == keys
    assert [parse(p) for p in payloads("o", SESSIONS, None)] == [("o", SESSIONS, None)]


def test_notifications_not_ours_are_ignored() -> None:
    foreign = [
        {"o": "x", "k": 1, "v": None},
        {"o": "x", "k": SESSIONS, "v": [1, 2]},
        {"o": "x", "k": SESSIONS, "v": "channel:1"},
        {"o": "x"},
        [],
    ]
    for payload in ["hello", *map(json.dumps, foreign)]:
        assert parse(payload) is None


async def test_sqlite_writes_announce_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    statements: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    try:
        await upgrade_database(engine)
        store = SessionStore(create_sessionmaker(engine))
        await store.update_settings("channel:1", model="qwen3")
        await store.append_turn("channel:2", [{"role": "user", "content": "hi"}])
        await store.delete_all()
        assert statements and not any("pg_notify" in s for s in statements)
    finally:
        await engine.dispose()


# -- on PostgreSQL ---------------------------------------------------------------------------


@dataclass
class Process:
    """What one bot process has of the database: its engine, stores and change feed, and
    what the feed heard (kind, keys)."""

    engine: AsyncEngine
    sessions: SessionStore
    knowledge: KnowledgeStore
    feed: ChangeFeed
    heard: list[tuple[str, tuple[str, ...] | None]] = field(default_factory=list)
    news: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, kind: str) -> Callable[[tuple[str, ...] | None], None]:
        def handler(keys: tuple[str, ...] | None) -> None:
            self.heard.append((kind, keys))
            self.news.set()

        return handler

    async def hears(self, kind: str, keys: tuple[str, ...] | None) -> None:
        """Wait (boundedly) until the feed has heard this."""
        async with asyncio.timeout(WAIT):
            while (kind, keys) not in self.heard:
                self.news.clear()
                await self.news.wait()


StartProcess = Callable[[], Awaitable[Process]]


@pytest.fixture
async def processes(postgres_url: str) -> AsyncIterator[StartProcess]:
    made: list[Process] = []

    async def start() -> Process:
        engine = create_engine(postgres_url)
        maker = create_sessionmaker(engine)
        sessions = SessionStore(maker)
        feed = ChangeFeed(engine)
        process = Process(engine, sessions, KnowledgeStore(maker), feed)
        feed.subscribe(SESSIONS, sessions.changed_elsewhere)
        feed.subscribe(SESSIONS, process.record(SESSIONS))
        feed.subscribe(KNOWLEDGE, process.record(KNOWLEDGE))
        await feed.start()
        assert feed.listening
        assert process.heard == [(SESSIONS, None), (KNOWLEDGE, None)]  # anything, at first
        process.heard.clear()
        made.append(process)
        return process

    yield start
    for process in made:
        await process.feed.close()
        await process.engine.dispose()


postgresql = pytest.mark.postgresql_only


@postgresql
async def test_a_setting_changed_in_one_process_is_read_afresh_in_the_other(
    processes: StartProcess,
) -> None:
    a, b = await processes(), await processes()
    await a.sessions.update_settings("channel:1", model="llama3.2")
    await b.hears(SESSIONS, ("channel:1",))
    assert (await b.sessions.settings_of(["channel:1"]))["channel:1"].model == "llama3.2"

    b.heard.clear()
    await a.sessions.update_settings("channel:1", model="qwen3")  # b has llama3.2 cached
    await b.hears(SESSIONS, ("channel:1",))
    assert (await b.sessions.settings_of(["channel:1"]))["channel:1"].model == "qwen3"


@postgresql
async def test_a_conversation_started_elsewhere_is_no_longer_taken_for_absent(
    processes: StartProcess,
) -> None:
    a, b = await processes(), await processes()
    await b.sessions._cache.load_ids()  # b's snapshot: no such session, so no history read
    assert (await b.sessions.load_context("channel:1", 10))[1] == []
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    await a.sessions.append_turn("channel:1", turn)  # type: ignore[arg-type]
    await b.hears(SESSIONS, ("channel:1",))
    _, history = await b.sessions.load_context("channel:1", 10)
    assert [m["content"] for m in history] == ["hi", "hello"]

    await a.sessions.append_turn("channel:1", turn)  # type: ignore[arg-type]
    await a.sessions.update_settings("channel:9", model="qwen3")
    await b.hears(SESSIONS, ("channel:9",))
    # Turns in a conversation that exists change no settings: not announced.
    assert b.heard.count((SESSIONS, ("channel:1",))) == 1


@postgresql
async def test_each_kind_of_session_write_is_announced(processes: StartProcess) -> None:
    a, b = await processes(), await processes()
    turn = [{"role": "user", "content": "hi"}]
    await a.sessions.append_turn("channel:1", turn)  # type: ignore[arg-type]
    await b.hears(SESSIONS, ("channel:1",))
    for write in (
        lambda: a.sessions.clear_messages("channel:1"),
        lambda: a.sessions.reset("channel:1", "Be brief."),
        lambda: a.sessions.delete("channel:1"),
    ):
        b.heard.clear()
        await write()
        await b.hears(SESSIONS, ("channel:1",))

    memory = MemoryStore(a.sessions)
    await a.sessions.append_turn("channel:2", turn * 3)  # type: ignore[arg-type]
    state = await memory.fold_state("channel:2", keep_newest=1, limit=5, max_chars=100)
    assert state is not None and state.messages
    b.heard.clear()
    assert await memory.save_summary(
        "channel:2", "They said hi.", upto=state.messages[-1], previous_upto=None
    )
    await b.hears(SESSIONS, ("channel:2",))  # the summary is cached with the settings

    for many in (lambda: a.sessions.clear_messages_prefix("channel:"), a.sessions.delete_all):
        b.heard.clear()
        await many()
        await b.hears(SESSIONS, None)


@postgresql
async def test_knowledge_changes_name_their_server(processes: StartProcess) -> None:
    a, b = await processes(), await processes()
    chunk = NewChunk(Chunk("Bicycles go behind the greenhouse.", None, None, "h1"), "m", b"\0" * 8)
    document_id, chunk_ids, _ = await a.knowledge.put_document(
        "guild:1", "parking.txt", content_hash="d1", characters=34, pages=None,
        channel_ids=None, added_by=None, new_chunks=[chunk],
    )  # fmt: skip
    await b.hears(KNOWLEDGE, ("guild:1",))
    for write in (
        lambda: a.knowledge.set_channels(document_id, [5]),
        lambda: a.knowledge.set_embeddings([(chunk_ids[0], "other", b"\1" * 8)]),
        lambda: a.knowledge.delete_document("guild:1", "parking.txt"),
    ):
        b.heard.clear()
        await write()
        await b.hears(KNOWLEDGE, ("guild:1",))
    assert not [h for h in b.heard if h[1] != ("guild:1",)]


@postgresql
async def test_a_process_does_not_hear_its_own_writes(processes: StartProcess) -> None:
    a, b = await processes(), await processes()
    await a.sessions.update_settings("channel:1", model="qwen3")
    await b.hears(SESSIONS, ("channel:1",))
    # Notifications reach a listener in commit order: once a hears b's later write, it
    # would have heard its own earlier one.
    await b.sessions.update_settings("channel:2", model="qwen3")
    await a.hears(SESSIONS, ("channel:2",))
    assert a.heard == [(SESSIONS, ("channel:2",))]
    assert (SESSIONS, ("channel:2",)) not in b.heard


@postgresql
async def test_the_feed_listens_again_after_its_connection_is_killed_and_drops_everything(
    processes: StartProcess, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await processes(), await processes()
    await a.sessions.update_settings("channel:1", model="llama3.2")
    await b.hears(SESSIONS, ("channel:1",))
    assert (await b.sessions.settings_of(["channel:1"]))["channel:1"].model == "llama3.2"
    # A change no one announced, as one made while b's feed was away would be.
    async with a.engine.begin() as conn:
        await conn.execute(text("UPDATE sessions SET model = 'qwen3' WHERE id = 'channel:1'"))
    assert (await b.sessions.settings_of(["channel:1"]))["channel:1"].model == "llama3.2"

    b.heard.clear()
    pid = b.feed.server_pid
    assert pid is not None
    async with a.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await b.hears(SESSIONS, None)  # listening again: whatever it missed is dropped
    assert b.feed.listening and b.feed.connections == 2 and b.feed.server_pid != pid
    assert "change feed's connection was lost" in caplog.text
    assert (await b.sessions.settings_of(["channel:1"]))["channel:1"].model == "qwen3"

    await a.sessions.update_settings("channel:3", model="qwen3")
    await b.hears(SESSIONS, ("channel:3",))
