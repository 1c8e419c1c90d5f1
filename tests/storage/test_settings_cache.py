"""SettingsCache: cached settings, batched misses, and the snapshot of which sessions exist."""

from __future__ import annotations

import asyncio

import pytest

from bot.storage.records import SessionSettings
from bot.storage.settings_cache import SETTINGS_CACHE_TTL, SettingsCache


class FakeDatabase:
    """The two reads the cache makes, counted; ``sessions`` is what the table holds."""

    def __init__(self, sessions: dict[str, SessionSettings]) -> None:
        self.sessions = sessions
        self.settings_reads: list[list[str]] = []
        self.id_reads = 0
        self.during_id_read: asyncio.Event | None = None

    async def read_settings(self, ids: list[str]) -> dict[str, SessionSettings]:
        self.settings_reads.append(sorted(ids))
        await asyncio.sleep(0)
        return {i: self.sessions[i] for i in ids if i in self.sessions}

    async def read_ids(self, limit: int) -> list[str]:
        self.id_reads += 1
        ids = list(self.sessions)[:limit]
        if self.during_id_read is not None:
            await self.during_id_read.wait()
        return ids


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase({"channel:1": SessionSettings(model="qwen3")})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(db: FakeDatabase, clock: Clock) -> SettingsCache:
    return SettingsCache(db.read_settings, db.read_ids, clock=clock)


async def test_without_a_snapshot_every_miss_is_read_once_and_cached(
    cache: SettingsCache, db: FakeDatabase
) -> None:
    first = await cache.known(["channel:1", "channel:2"])
    again = await cache.known(["channel:1", "channel:2"])
    assert first == again == {"channel:1": SessionSettings(model="qwen3"), "channel:2": None}
    assert db.settings_reads == [["channel:1", "channel:2"]]


async def test_concurrent_misses_share_one_read(cache: SettingsCache, db: FakeDatabase) -> None:
    results = await asyncio.gather(*(cache.known([f"channel:{i}"]) for i in range(20)))
    assert results[1] == {"channel:1": SessionSettings(model="qwen3")}
    assert len(db.settings_reads) == 1 and len(db.settings_reads[0]) == 20


async def test_with_a_snapshot_a_new_session_needs_no_read(
    cache: SettingsCache, db: FakeDatabase
) -> None:
    await cache.load_ids()
    assert await cache.known(["channel:9", "guild:5"]) == {"channel:9": None, "guild:5": None}
    assert db.settings_reads == []
    # An existing session is still read for its settings.
    assert (await cache.known(["channel:1"]))["channel:1"] == SessionSettings(model="qwen3")
    assert db.settings_reads == [["channel:1"]]


async def test_a_session_we_wrote_is_read_again_whatever_the_snapshot_says(
    cache: SettingsCache, db: FakeDatabase
) -> None:
    await cache.load_ids()
    assert (await cache.known(["channel:9"]))["channel:9"] is None
    db.sessions["channel:9"] = SessionSettings(system_prompt="Be brief.")
    cache.forget("channel:9")
    assert (await cache.known(["channel:9"]))["channel:9"] == SessionSettings(
        system_prompt="Be brief."
    )


async def test_the_snapshot_expires(cache: SettingsCache, db: FakeDatabase, clock: Clock) -> None:
    await cache.load_ids()
    db.sessions["channel:7"] = SessionSettings(model="llama3.2")  # another process wrote it
    assert (await cache.known(["channel:7"]))["channel:7"] is None
    clock.now += SETTINGS_CACHE_TTL + 1
    assert (await cache.known(["channel:7"]))["channel:7"] == SessionSettings(model="llama3.2")


async def test_a_write_during_the_snapshot_read_stays_unsure(
    cache: SettingsCache, db: FakeDatabase
) -> None:
    db.during_id_read = asyncio.Event()
    loading = asyncio.create_task(cache.load_ids())
    await asyncio.sleep(0)
    # Created after the snapshot's read began: the snapshot may not include it.
    db.sessions["channel:8"] = SessionSettings(model="phi4")
    cache.forget("channel:8")
    db.during_id_read.set()
    await loading
    assert "channel:8" not in (cache._ids or ())  # the read saw the table before the write
    assert (await cache.known(["channel:8"]))["channel:8"] == SessionSettings(model="phi4")


async def test_too_many_sessions_for_a_snapshot_fall_back_to_reads(
    db: FakeDatabase, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.storage.settings_cache.SNAPSHOT_MAX_IDS", 0)
    cache = SettingsCache(db.read_settings, db.read_ids, clock=clock)
    await cache.load_ids()
    assert (await cache.known(["channel:9"]))["channel:9"] is None
    assert db.settings_reads == [["channel:9"]]


async def test_keep_ids_fresh_retakes_the_snapshot(
    cache: SettingsCache, db: FakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.storage.settings_cache.SNAPSHOT_REFRESH", 0.01)
    third = asyncio.Event()
    read_ids = db.read_ids

    async def counting(limit: int) -> list[str]:
        if db.id_reads == 2:
            third.set()
        return await read_ids(limit)

    cache._read_ids = counting
    task = asyncio.create_task(cache.keep_ids_fresh())
    try:
        await asyncio.wait_for(third.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert db.id_reads >= 3


async def test_a_read_overtaken_by_a_write_answers_but_is_not_kept(
    cache: SettingsCache, db: FakeDatabase
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_read(ids: list[str]) -> dict[str, SessionSettings]:
        found = {i: db.sessions[i] for i in ids if i in db.sessions}  # the table as it was
        started.set()
        await release.wait()
        return found

    cache._read_settings = slow_read
    reading = asyncio.create_task(cache.known(["channel:1"]))
    await started.wait()
    # Another process changes it meanwhile, and says so before the read returns.
    db.sessions["channel:1"] = SessionSettings(model="phi4")
    cache.forget("channel:1")
    release.set()
    assert (await reading)["channel:1"] == SessionSettings(model="qwen3")
    cache._read_settings = db.read_settings
    assert (await cache.known(["channel:1"]))["channel:1"] == SessionSettings(model="phi4")


async def test_drop_forgets_the_snapshot_too(cache: SettingsCache, db: FakeDatabase) -> None:
    await cache.load_ids()
    assert (await cache.known(["channel:7"]))["channel:7"] is None
    # Created while this process was not hearing about it (its feed reconnecting).
    db.sessions["channel:7"] = SessionSettings(model="llama3.2")
    db.sessions["channel:1"] = SessionSettings(model="phi4")
    cache.drop()
    assert await cache.known(["channel:7", "channel:1"]) == {
        "channel:7": SessionSettings(model="llama3.2"),
        "channel:1": SessionSettings(model="phi4"),
    }


async def test_a_snapshot_read_overlapping_a_drop_is_not_kept(
    cache: SettingsCache, db: FakeDatabase
) -> None:
    db.during_id_read = asyncio.Event()
    loading = asyncio.create_task(cache.load_ids())
    await asyncio.sleep(0)
    cache.drop()  # what the read began before may be what was missed
    db.during_id_read.set()
    await loading
    assert cache._ids is None
    assert (await cache.known(["channel:9"]))["channel:9"] is None
    assert db.settings_reads == [["channel:9"]]  # read, not taken from the snapshot
