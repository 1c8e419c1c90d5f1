"""The database fails under the real bot (create_bot, against the emulators): SQLite locked by
another connection for longer than the bot's busy timeout, and SQLite full.

The answer is shown as it streams, before its turn is stored; when storing it fails, the
member is told under the answer that it was not saved. Nothing of that turn is stored, the
earlier turns are intact, and once the database is writable again the next question is
answered and stored with the history the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bot.presentation.answering import NOT_SAVED
from tests.chaos.invariants import check_turns, settled_turns
from tests.e2e.conftest import World, chat_bodies, world
from tests.e2e.test_ask import finished, pages_without_footer
from tests.emulators.discord_server import InteractionRecord

BEFORE = "before the fault"
DURING = "during the fault"
AFTER = "after the fault"
# Longer than a database page (4 KiB) several times over: storing it must take new pages.
LONG_ANSWER = " ".join(f"word{i}" for i in range(1500))

LOCK_WAIT = 60.0  # seconds the test waits to take the write lock itself


def answer_to(prompt: str) -> str:
    return LONG_ANSWER if prompt == DURING else f"Answer to {prompt}."


def replying(body: dict[str, Any]) -> str:
    return answer_to(str(body["messages"][-1]["content"]))


def database_path(w: World) -> Path:
    path = make_url(w.settings.database_url).database
    assert path, w.settings.database_url
    return Path(path)


async def ask(w: World, prompt: str) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, options={"prompt": prompt}, **w.where
    )


def shown(rec: InteractionRecord) -> str:
    assert rec.original is not None
    return "\n".join(m.content for m in [rec.original, *rec.followups] if not m.deleted)


def session_of(w: World) -> str:
    return f"channel:{w.channel.id}"


async def answered(w: World, prompt: str, turns_before: int) -> None:
    """Ask ``prompt`` and check its whole answer is shown, with nothing said about saving."""
    rec = await ask(w, prompt)
    assert pages_without_footer(await finished(rec)) == [answer_to(prompt)]
    assert NOT_SAVED not in shown(rec)
    # Stored a moment after it is shown: a fault must not catch this turn's write instead.
    turns = await settled_turns(w.bot.manager.store, session_of(w), at_least=turns_before + 1)
    assert turns[-1] == (prompt, answer_to(prompt))


async def check_after(w: World) -> None:
    """The fault is over: the next question is answered with the history stored before it,
    and each turn but the failed one is stored once."""
    await answered(w, AFTER, turns_before=1)
    history = [(m["role"], m["content"]) for m in chat_bodies(w.ollama)[-1]["messages"]]
    assert [h for h in history if h[0] != "system"] == [
        ("user", BEFORE),
        ("assistant", answer_to(BEFORE)),
        ("user", AFTER),
    ]
    check_turns(
        await w.bot.manager.store.messages(session_of(w)),
        answered=[BEFORE, AFTER],
        unanswered=[DURING],
    )


async def not_saved(rec: InteractionRecord) -> str:
    """The answer, shown whole, then the notice that it was not saved."""
    await rec.wait_done(lambda r: r.original is not None and NOT_SAVED in shown(r), timeout=30)
    text = shown(rec)
    words = LONG_ANSWER.split()
    assert text.split()[: len(words)] == words, text[-300:]
    assert "▌" not in text
    return text


@pytest.mark.sqlite_only
async def test_a_database_locked_past_the_busy_timeout(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.ollama.set_reply(replying)
        await answered(w, BEFORE, turns_before=0)
        # Another process (a backup, the CLI, a second bot) holds the write lock.
        # Waits for a write the bot may be making (its memory worker, a live reply) to end,
        # off the event loop: that write needs the loop to finish (a blocking wait here held
        # the loop, and so the bot's transaction, until the wait gave up).
        locker = sqlite3.connect(
            database_path(w), isolation_level=None, timeout=LOCK_WAIT, check_same_thread=False
        )
        with contextlib.closing(locker) as other:
            await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
            rec = await ask(w, DURING)
            await not_saved(rec)  # after the busy timeout (5 s) gave up
            other.execute("ROLLBACK")
        await check_after(w)


@contextlib.contextmanager
def database_full(w: World) -> Iterator[None]:
    """The bot's SQLite cannot grow by a page: every connection it checks out is limited to
    the pages the database has now (SQLITE_FULL, "database or disk is full", as on a full
    disk). The limit is lifted on leaving."""
    engine = w.bot.manager.services.engine
    assert engine is not None
    limit: list[int | None] = [None]

    def limited(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        if limit[0] is None:
            cursor.execute("PRAGMA page_count")
            limit[0] = int(cursor.fetchone()[0])
        cursor.execute(f"PRAGMA max_page_count={limit[0]}")
        cursor.close()

    def lifted(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count={2**31 - 2}")
        cursor.close()

    event.listen(engine.sync_engine, "checkout", limited)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "checkout", limited)
        event.listen(engine.sync_engine, "checkout", lifted)


@pytest.mark.sqlite_only
async def test_a_full_database(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.ollama.set_reply(replying)
        await answered(w, BEFORE, turns_before=0)
        with sqlite3.connect(database_path(w)) as db:
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
        assert free * 4096 < len(LONG_ANSWER), "free pages would hold the turn"
        with database_full(w):
            rec = await ask(w, DURING)
            await not_saved(rec)
        await check_after(w)
