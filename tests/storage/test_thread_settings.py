"""A channel's threads switch (sessions.threads) in the store: read with the cached
settings, changed and reset through update_settings, kept by the idle clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SessionStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield SessionStore(create_sessionmaker(engine))
    await engine.dispose()


async def test_the_threads_switch_is_stored_read_and_reset(store: SessionStore) -> None:
    assert (await store.settings_of(["channel:1"])) == {}
    settings, created = await store.update_settings("channel:1", threads=True)
    assert created and settings.threads is True
    assert (await store.settings_of(["channel:1"]))["channel:1"].threads is True
    settings, _ = await store.update_settings("channel:1", model="qwen3")
    assert settings.threads is True  # left out: kept
    settings, _ = await store.update_settings("channel:1", threads=False)
    assert settings.threads is False
    settings, _ = await store.update_settings("channel:1", threads=None)
    assert settings.threads is None and settings.model == "qwen3"


async def test_idle_cleanup_keeps_a_channel_that_only_chose_threads(store: SessionStore) -> None:
    await store.update_settings("channel:2", threads=False)
    await store.append_turn("channel:2", [{"role": "user", "content": "old talk"}])
    await store.delete_idle(datetime.now(UTC) + timedelta(seconds=1))
    assert (await store.settings_of(["channel:2"]))["channel:2"].threads is False
