"""ConversationLocks: one process at a time in a conversation, on a real PostgreSQL server.

Each ConversationLocks here has an engine of its own, as each bot process has; one test
holds the lock from a real second process and kills it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage import create_engine
from bot.storage.coordination import open_coordination
from bot.storage.engine import create_sessionmaker, upgrade_database
from bot.storage.locks import ConversationLocks, lock_key
from bot.storage.store import SessionStore

ROOT = Path(__file__).parents[2]
WAIT = 30.0  # the most any step here may take before the test fails

postgresql = pytest.mark.postgresql_only


def test_a_conversation_has_one_stable_signed_64_bit_key() -> None:
    # The same in every process and every release: a changed hash would let an old and a
    # new process (during a rolling upgrade) answer in one conversation together.
    assert lock_key("channel:1234") == 6763527240025092836
    keys = {lock_key(f"channel:{i}") for i in range(1000)}
    assert len(keys) == 1000
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert any(key < 0 for key in keys)  # signed, as PostgreSQL's bigint


async def test_sqlite_has_no_locks_nor_change_feed(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    try:
        await upgrade_database(engine)
        store = SessionStore(create_sessionmaker(engine))
        assert await open_coordination(engine, store) is None
    finally:
        await engine.dispose()


# -- on PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
async def engines(postgres_url: str) -> AsyncIterator[Callable[[], AsyncEngine]]:
    """New engines on the test's database: one per "process"."""
    made: list[AsyncEngine] = []

    def engine() -> AsyncEngine:
        made.append(create_engine(postgres_url))
        return made[-1]

    yield engine
    for each in made:
        await each.dispose()


@pytest.fixture
async def locks(
    engines: Callable[[], AsyncEngine],
) -> AsyncIterator[Callable[[], ConversationLocks]]:
    made: list[ConversationLocks] = []

    def factory() -> ConversationLocks:
        made.append(ConversationLocks(engines()))
        return made[-1]

    yield factory
    for each in made:
        await each.close()


async def lock_holders(engine: AsyncEngine, session_id: str) -> list[int]:
    """The server processes (pids) holding the conversation's advisory lock."""
    key = lock_key(session_id) & 0xFFFF_FFFF_FFFF_FFFF
    query = text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = :high AND objid = :low AND objsubid = 1"
    )
    async with engine.connect() as conn:
        rows = await conn.execute(query, {"high": key >> 32, "low": key & 0xFFFF_FFFF})
        return [row.pid for row in rows]


class Waiter:
    """A task holding ``session_id`` through ``locks`` until ``leave`` is set."""

    def __init__(self, locks: ConversationLocks, session_id: str) -> None:
        self.waited = asyncio.Event()
        self.entered = asyncio.Event()
        self.leave = asyncio.Event()
        self.task = asyncio.create_task(self._run(locks, session_id))

    async def _run(self, locks: ConversationLocks, session_id: str) -> None:
        async def on_wait() -> None:
            self.waited.set()

        async with locks.hold(session_id, on_wait):
            self.entered.set()
            await self.leave.wait()

    async def done(self) -> None:
        self.leave.set()
        await asyncio.wait_for(self.task, WAIT)


@postgresql
async def test_a_second_process_waits_until_the_first_is_done(
    locks: Callable[[], ConversationLocks],
) -> None:
    first, second = locks(), locks()
    holder = Waiter(first, "channel:1")
    await asyncio.wait_for(holder.entered.wait(), WAIT)
    assert not holder.waited.is_set()

    waiter = Waiter(second, "channel:1")
    await asyncio.wait_for(waiter.waited.wait(), WAIT)  # told it waits for another process
    assert not waiter.entered.is_set()

    await holder.done()
    await asyncio.wait_for(waiter.entered.wait(), WAIT)
    await waiter.done()


@postgresql
async def test_other_conversations_do_not_wait(locks: Callable[[], ConversationLocks]) -> None:
    first, second = locks(), locks()
    holder = Waiter(first, "channel:1")
    await asyncio.wait_for(holder.entered.wait(), WAIT)
    other = Waiter(second, "channel:2")
    await asyncio.wait_for(other.entered.wait(), WAIT)
    assert not other.waited.is_set()
    await asyncio.gather(holder.done(), other.done())


@postgresql
async def test_cancelled_holders_and_waiters_leave_the_lock_free(
    locks: Callable[[], ConversationLocks], engines: Callable[[], AsyncEngine]
) -> None:
    first, second, third = locks(), locks(), locks()
    holder = Waiter(first, "channel:1")
    await asyncio.wait_for(holder.entered.wait(), WAIT)
    waiter = Waiter(second, "channel:1")
    await asyncio.wait_for(waiter.waited.wait(), WAIT)

    waiter.task.cancel()  # a question given up while waiting
    holder.task.cancel()  # an answer stopped midway
    await asyncio.gather(waiter.task, holder.task, return_exceptions=True)
    assert await lock_holders(engines(), "channel:1") == []

    latecomer = Waiter(third, "channel:1")
    await asyncio.wait_for(latecomer.entered.wait(), WAIT)
    assert not latecomer.waited.is_set()
    await latecomer.done()


@postgresql
async def test_a_killed_lock_connection_frees_the_conversation_and_is_replaced(
    locks: Callable[[], ConversationLocks], engines: Callable[[], AsyncEngine]
) -> None:
    first, second = locks(), locks()
    admin = engines()
    holder = Waiter(first, "channel:1")
    await asyncio.wait_for(holder.entered.wait(), WAIT)
    waiter = Waiter(second, "channel:1")
    await asyncio.wait_for(waiter.waited.wait(), WAIT)

    [pid] = await lock_holders(admin, "channel:1")
    async with admin.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.wait_for(waiter.entered.wait(), WAIT)

    await holder.done()  # letting go of a lock its lost connection took along is harmless
    await waiter.done()
    again = Waiter(first, "channel:1")  # on a new connection
    await asyncio.wait_for(again.entered.wait(), WAIT)
    assert await lock_holders(admin, "channel:1") not in ([], [pid])
    await again.done()


HOLD_IN_ANOTHER_PROCESS = """
import asyncio, sys
from bot.storage import create_engine
from bot.storage.locks import ConversationLocks

async def main():
    locks = ConversationLocks(create_engine(sys.argv[1]))
    async with locks.hold(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@postgresql
async def test_a_killed_process_frees_its_conversations(
    postgres_url: str, locks: Callable[[], ConversationLocks]
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_IN_ANOTHER_PROCESS,
        postgres_url,
        "channel:1",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), WAIT)
        assert line == b"held\n"
        waiter = Waiter(locks(), "channel:1")
        await asyncio.wait_for(waiter.waited.wait(), WAIT)
        assert not waiter.entered.is_set()
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(waiter.entered.wait(), WAIT)
        await waiter.done()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@postgresql
async def test_closing_releases_every_lock(
    locks: Callable[[], ConversationLocks], engines: Callable[[], AsyncEngine]
) -> None:
    first = locks()
    holder = Waiter(first, "channel:1")
    await asyncio.wait_for(holder.entered.wait(), WAIT)
    await first.close()  # as a process shutting down with an answer still running would
    assert await lock_holders(engines(), "channel:1") == []
    holder.task.cancel()
    await asyncio.gather(holder.task, return_exceptions=True)
