"""SessionStore against a real database (SQLite, or PostgreSQL with --db=postgresql)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from bot.core.errors import StorageError
from bot.storage import (
    SessionSettings,
    SessionStore,
    create_engine,
    create_sessionmaker,
    upgrade_database,
)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SessionStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield SessionStore(create_sessionmaker(engine))
    await engine.dispose()


async def test_turns_are_appended_in_order(store: SessionStore) -> None:
    await store.append_turn(
        "s", [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    )
    await store.append_turn(
        "s", [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    )
    assert [m["content"] for m in await store.messages("s")] == ["q1", "a1", "q2", "a2"]
    assert [m["content"] for m in await store.messages("s", limit=3)] == ["a1", "q2", "a2"]
    record = await store.get("s")
    assert record is not None and record.message_count == 4
    assert record.created_at.tzinfo is not None


async def test_delete_cascades_to_messages(store: SessionStore) -> None:
    await store.append_turn("s", [{"role": "user", "content": "q"}])
    assert await store.delete("s")
    assert await store.messages("s") == []
    assert await store.get("s") is None


async def test_settings_keep_unnamed_fields(store: SessionStore) -> None:
    _, created = await store.update_settings("s", model="qwen3", options={"temperature": 0.2})
    assert created
    settings, created = await store.update_settings("s", system_prompt="Be kind.")
    assert not created
    assert settings.model == "qwen3" and settings.options == {"temperature": 0.2}
    settings, _ = await store.update_settings("s", model=None)
    assert settings.model is None and settings.system_prompt == "Be kind."


async def test_clear_messages_keeps_settings(store: SessionStore) -> None:
    await store.update_settings("s", model="qwen3")
    await store.append_turn("s", [{"role": "user", "content": "q"}])
    assert await store.clear_messages("s") == 1
    record = await store.get("s")
    assert record is not None and record.settings.model == "qwen3" and record.message_count == 0


async def test_concurrent_writers_do_not_lose_turns(store: SessionStore) -> None:
    async def write(i: int) -> None:
        await store.append_turn(f"s{i % 3}", [{"role": "user", "content": str(i)}])

    await asyncio.gather(*(write(i) for i in range(30)))
    counts = [len(await store.messages(f"s{i}")) for i in range(3)]
    assert counts == [10, 10, 10]


async def test_a_large_batch_is_written_in_parts_and_tells_new_from_existing(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.storage.store.IDS_PER_STATEMENT", 3)
    for i in (1, 4, 5):
        await store.append_turn(f"s{i}", [{"role": "user", "content": "before"}])
    created = await asyncio.gather(
        *(store.append_turn(f"s{i}", [{"role": "user", "content": f"q{i}"}]) for i in range(8))
    )
    assert created == [i not in (1, 4, 5) for i in range(8)]
    counts = [len(await store.messages(f"s{i}")) for i in range(8)]
    assert counts == [2 if i in (1, 4, 5) else 1 for i in range(8)]


@pytest.mark.parametrize("forget", ["reset", "delete", "clear_messages"])
async def test_forgetting_comes_after_turns_still_waiting_for_their_commit(
    store: SessionStore, forget: str
) -> None:
    await store.append_turn("s", [{"role": "user", "content": "before"}])
    # Shown to the user already, but still inside its group-commit window:
    pending = asyncio.create_task(store.append_turn("s", [{"role": "user", "content": "q"}]))
    await asyncio.sleep(0)
    await getattr(store, forget)("s")
    await pending
    assert await store.messages("s") == []


async def test_list_and_delete_idle(store: SessionStore) -> None:
    await store.append_turn("old", [{"role": "user", "content": "q"}])
    await store.append_turn("new", [{"role": "user", "content": "q"}])
    listed = await store.list()
    assert {r.id for r in listed} == {"old", "new"}
    assert all(r.message_count == 1 for r in listed)
    assert await store.delete_idle(datetime.now(UTC) - timedelta(days=1)) == 0
    assert await store.delete_idle(datetime.now(UTC) + timedelta(seconds=1)) == 2
    assert await store.count() == 0


async def test_database_failures_become_storage_errors(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    store = SessionStore(create_sessionmaker(engine))  # never migrated: no tables
    with pytest.raises(StorageError) as info:
        await store.append_turn("s", [{"role": "user", "content": "q"}])
    assert "database" in info.value.user_message
    with pytest.raises(StorageError):
        await store.load_context("s", 10)
    await engine.dispose()


async def test_settings_are_cached_and_invalidated_by_writes(store: SessionStore) -> None:
    await store.update_settings("s", model="qwen3")
    assert (await store.settings_of(["s", "nope"]))["s"].model == "qwen3"
    await store.update_settings("s", model="llama3.2")
    assert (await store.settings_of(["s"]))["s"].model == "llama3.2"
    await store.delete("s")
    assert await store.settings_of(["s"]) == {}


async def test_concurrent_settings_reads_are_batched(store: SessionStore) -> None:
    await store.update_settings("a", model="qwen3")
    store._cache.forget_all()
    statements: list[str] = []
    engine = store._sessionmaker.kw["bind"]

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        results = await asyncio.gather(*(store.settings_of([f"s{i}", "a"]) for i in range(30)))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert all(r == {"a": results[0]["a"]} for r in results)
    assert results[0]["a"].model == "qwen3"
    assert len(statements) <= 2


async def test_with_the_session_index_new_sessions_read_nothing(store: SessionStore) -> None:
    await store.append_turn("old", [{"role": "user", "content": "q"}])
    await store._cache.load_ids()  # what keep_index_fresh() does every few seconds
    statements: list[str] = []
    engine = store._sessionmaker.kw["bind"]

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    try:
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        assert await store.settings_of(["new1", "new2"]) == {}
        assert await store.load_context("new3", 10) == (SessionSettings(), [])
        assert statements == []
        # What we write is seen at once, index or not.
        await store.update_settings("new1", model="qwen3")
        assert (await store.settings_of(["new1"]))["new1"].model == "qwen3"
        assert (await store.load_context("old", 10))[1] == [{"role": "user", "content": "q"}]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_turns_finishing_together_share_one_transaction(store: SessionStore) -> None:
    engine = store._sessionmaker.kw["bind"]
    commits: list[object] = []

    def count(conn: object) -> None:
        commits.append(conn)

    event.listen(engine.sync_engine, "commit", count)
    try:
        created = await asyncio.gather(
            *(store.append_turn(f"s{i}", [{"role": "user", "content": f"q{i}"}]) for i in range(20))
        )
    finally:
        event.remove(engine.sync_engine, "commit", count)
    assert all(created)
    assert len(commits) <= 2
    assert [len(await store.messages(f"s{i}")) for i in range(20)] == [1] * 20
    assert not await store.append_turn("s0", [{"role": "assistant", "content": "a"}])


async def test_idle_cleanup_keeps_what_admins_chose(store: SessionStore) -> None:
    await store.update_settings("guild:1", model="qwen3", member_notes=True)
    await store.update_settings("channel:2", preset="creative")
    await store.append_turn("channel:2", [{"role": "user", "content": "old talk"}])
    await store.append_turn("dm:3", [{"role": "user", "content": "q"}])

    assert await store.delete_idle(datetime.now(UTC) + timedelta(seconds=1)) == 1  # dm:3
    assert await store.get("dm:3") is None
    kept = await store.settings_of(["guild:1", "channel:2"])
    assert kept["guild:1"].model == "qwen3" and kept["guild:1"].member_notes is True
    assert kept["channel:2"].preset == "creative"
    assert await store.messages("channel:2") == []  # the conversation itself is forgotten
