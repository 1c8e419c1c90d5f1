"""LiveReplies keeps the replies in flight in the database, cheaply: batched, and nothing at
all for a reply that ends before the next flush."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from bot.discord_app.live_replies import LiveReplies
from bot.storage import create_engine, create_sessionmaker, upgrade_database
from bot.storage.live_replies import LiveReplyRecord, LiveReplyStore


class Db:
    def __init__(self, store: LiveReplyStore) -> None:
        self.store = store
        self.writes: list[str] = []  # the statements that touched live_replies

    def note(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "live_replies" in statement and not statement.lstrip().startswith("SELECT"):
            self.writes.append(statement.split()[0])


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    value = Db(LiveReplyStore(create_sessionmaker(engine)))
    event.listen(engine.sync_engine, "before_cursor_execute", value.note)
    yield value
    await engine.dispose()


def record(first: int, *more: int, token: str | None = None) -> LiveReplyRecord:
    return LiveReplyRecord(channel_id=7, message_ids=(first, *more), interaction_token=token)


async def test_a_reply_that_ends_before_the_flush_is_never_written(db: Db) -> None:
    live = LiveReplies(db.store)
    live.shown(record(1))
    live.shown(record(1, 2))
    live.settled(1)
    await live.flush()
    assert db.writes == []
    assert await db.store.all() == []


async def test_replies_are_written_together_and_forgotten_once_final(db: Db) -> None:
    live = LiveReplies(db.store)
    for first in (10, 20, 30):
        live.shown(record(first, token=f"secret{first}"))
    live.shown(record(10, 11, token="secret10"))  # a second page: only the latest counts
    await live.flush()
    assert db.writes == ["DELETE", "INSERT"]  # one transaction for all of them
    rows = {r.id: r for r in await db.store.all()}
    assert set(rows) == {10, 20, 30}
    assert rows[10].message_ids == (10, 11) and rows[10].interaction_token == "secret10"
    assert "secret" not in repr(rows[10])  # a credential: kept out of logs

    db.writes.clear()
    live.settled(10)
    live.settled(30)
    await live.close()
    assert db.writes == ["DELETE"]
    assert [r.id for r in await db.store.all()] == [20]  # still in flight: stays recorded
