"""Several processes on one PostgreSQL: a conversation answered by one at a time, changes
reaching the others at once. Two request managers with engines of their own stand for two
bot processes; the `ollacord` CLI, run as a real process, for a third.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import OllamaRequestManager
from bot.core.documents import Document
from bot.core.events import QueryEvent, QueuedEvent, StartedEvent
from bot.storage import create_engine
from bot.storage.notify import KNOWLEDGE, SESSIONS
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator
from tests.storage.test_locks import lock_holders

ROOT = Path(__file__).parents[3]
OLLACORD = Path(sys.executable).with_name("ollacord")
WAIT = 30.0  # the most any step may take before the test fails (a process starting: ~2 s)
SESSION = "channel:1"

postgresql = pytest.mark.postgresql_only


@dataclass
class Asking:
    """A question under way, which can be held just as its answer starts (the conversation
    is then taken: its plan is made, its generation not begun)."""

    task: asyncio.Task[Any]
    events: list[QueryEvent] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    waiting_elsewhere: asyncio.Event = field(default_factory=asyncio.Event)
    go_on: asyncio.Event = field(default_factory=asyncio.Event)

    async def result(self) -> Any:
        self.go_on.set()
        return await asyncio.wait_for(self.task, WAIT)


def ask(manager: OllamaRequestManager, prompt: str, *, hold: bool = False) -> Asking:
    asking: Asking

    async def on_event(event: QueryEvent) -> None:
        asking.events.append(event)
        if event == QueuedEvent(1, "elsewhere"):
            asking.waiting_elsewhere.set()
        if isinstance(event, StartedEvent):
            asking.started.set()
            if hold:
                await asking.go_on.wait()

    asking = Asking(
        asyncio.create_task(manager.ask(prompt=prompt, session_id=SESSION, on_event=on_event))
    )
    if not hold:
        asking.go_on.set()
    return asking


@pytest.fixture
async def two(
    postgres_url: str, make_manager: ManagerFactory
) -> tuple[OllamaRequestManager, OllamaRequestManager]:
    # postgres_url first: its database is dropped after the managers are closed.
    managers = make_manager(database_url=postgres_url), make_manager(database_url=postgres_url)
    for manager in managers:
        await manager.start()
    return managers


def chat_messages(emu: OllamaEmulator) -> list[list[str]]:
    """The messages' texts of each chat request, in order."""
    return [
        [m.get("content", "") for m in (r.json or {}).get("messages", [])]
        for r in emu.requests
        if r.path == "/api/chat"
    ]


@postgresql
async def test_one_conversation_through_two_processes_is_answered_one_at_a_time(
    two: tuple[OllamaRequestManager, OllamaRequestManager], ollama_emu: OllamaEmulator
) -> None:
    a, b = two
    first = ask(a, "first, through a", hold=True)
    await asyncio.wait_for(first.started.wait(), WAIT)
    second = ask(b, "second, through b")
    await asyncio.wait_for(second.waiting_elsewhere.wait(), WAIT)
    assert not second.started.is_set()
    assert b.get_statistics()["queue_depth"] == 1  # counted as waiting

    assert (await first.result()).content == "Echo: first, through a"
    assert (await second.result()).content == "Echo: second, through b"
    assert ollama_emu.max_active_seen == 1  # never two answers at once
    # The second saw the first's turn: stored before the conversation was let go.
    assert chat_messages(ollama_emu)[-1][-3:] == [
        "first, through a",
        "Echo: first, through a",
        "second, through b",
    ]
    assert QueuedEvent(1, "elsewhere") not in first.events


@postgresql
async def test_a_holder_whose_connection_is_killed_lets_the_others_in(
    two: tuple[OllamaRequestManager, OllamaRequestManager], postgres_url: str
) -> None:
    a, b = two
    first = ask(a, "first, through a", hold=True)
    await asyncio.wait_for(first.started.wait(), WAIT)
    second = ask(b, "second, through b")
    await asyncio.wait_for(second.waiting_elsewhere.wait(), WAIT)

    admin = create_engine(postgres_url)
    try:
        [pid] = await lock_holders(admin, SESSION)
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert (await second.result()).content == "Echo: second, through b"
        assert not first.task.done()  # a's answer goes on, unprotected
        assert (await first.result()).content == "Echo: first, through a"
        # a's next question takes the conversation again, on a new lock connection.
        third = ask(a, "third, through a", hold=True)
        await asyncio.wait_for(third.started.wait(), WAIT)
        assert await lock_holders(admin, SESSION) not in ([], [pid])
        await third.result()
    finally:
        await admin.dispose()
    history = [m["content"] for m in await b.store.messages(SESSION)]
    assert len(history) == 6 and history[-2:] == ["third, through a", "Echo: third, through a"]


@postgresql
async def test_the_cli_in_another_process_waits_its_turn_and_sees_the_turn_before(
    postgres_url: str, make_manager: ManagerFactory, ollama_emu: OllamaEmulator, tmp_path: Path
) -> None:
    a = make_manager(database_url=postgres_url)
    await a.start()
    first = ask(a, "first, through the bot", hold=True)
    await asyncio.wait_for(first.started.wait(), WAIT)

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    env |= {"DATABASE_URL": postgres_url, "OLLAMA_HOST": ollama_emu.url}
    env |= {"DEFAULT_MODEL": "llama3.2", "CONVERSATION_MEMORY": "false"}
    cli = await asyncio.create_subprocess_exec(
        str(OLLACORD), "chat", "--session", SESSION, "second, from the CLI",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        admin = create_engine(postgres_url)
        try:
            await asyncio.wait_for(_tries_the_lock(admin, others_than=1), WAIT)
        finally:
            await admin.dispose()
        assert cli.returncode is None
        assert len(chat_messages(ollama_emu)) == 0  # a's answer is held before generating

        await first.result()
        out, err = await asyncio.wait_for(cli.communicate(), WAIT)
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.wait()
    assert cli.returncode == 0, err.decode()
    assert out.decode().strip() == "Echo: second, from the CLI"
    assert ollama_emu.max_active_seen == 1
    assert chat_messages(ollama_emu)[-1][-3:] == [
        "first, through the bot",
        "Echo: first, through the bot",
        "second, from the CLI",
    ]


async def _tries_the_lock(admin: Any, *, others_than: int) -> None:
    """Until a server process besides ``others_than`` ones has last run pg_try_advisory_lock
    on this database (one that was refused, since the lock is held)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE '%pg_try_advisory_lock%' AND pid <> pg_backend_pid()"
    )
    while True:
        async with admin.connect() as conn:
            if (await conn.scalar(query)) > others_than:
                return
        await asyncio.sleep(0.05)


@postgresql
async def test_a_conversation_is_read_afresh_when_taken_even_before_the_news_arrives(
    two: tuple[OllamaRequestManager, OllamaRequestManager], ollama_emu: OllamaEmulator
) -> None:
    a, b = two
    await b.ask(prompt="elsewhere", session_id="channel:2")  # b's snapshot is fresh
    assert b.services.coordination is not None
    await b.services.coordination.changes.close()  # b hears nothing from now on
    await a.ask(prompt="first, through a", session_id=SESSION)  # b took SESSION for absent
    await b.ask(prompt="second, through b", session_id=SESSION)
    assert chat_messages(ollama_emu)[-1][-3:] == [
        "first, through a",
        "Echo: first, through a",
        "second, through b",
    ]


@postgresql
async def test_a_setting_changed_through_one_process_applies_at_once_in_the_other(
    two: tuple[OllamaRequestManager, OllamaRequestManager], ollama_emu: OllamaEmulator
) -> None:
    a, b = two
    await b.ask(prompt="hello", session_id=SESSION)  # b now has the settings cached
    heard = asyncio.Event()
    assert b.services.coordination is not None
    b.services.coordination.follow(SESSIONS, lambda keys: heard.set() if keys else None)

    await a.update_session_settings(SESSION, system_prompt="Answer like a pirate.")
    await asyncio.wait_for(heard.wait(), WAIT)  # well within the cache's 30 s
    await b.ask(prompt="and now?", session_id=SESSION)
    assert chat_messages(ollama_emu)[-1][0] == "Answer like a pirate."


@postgresql
async def test_a_document_added_through_one_process_is_found_by_the_other(
    two: tuple[OllamaRequestManager, OllamaRequestManager],
) -> None:
    a, b = two
    assert await b.knowledge.search("guild:1", "where do bicycles go", min_score=0.2) == []
    heard = asyncio.Event()
    assert b.services.coordination is not None
    b.services.coordination.follow(KNOWLEDGE, lambda keys: heard.set() if keys else None)

    text_ = "Visitors park their bicycles behind the greenhouse, next to the orchard gate."
    await a.knowledge.add("guild:1", "parking.txt", Document("parking.txt", "text", "", text_))
    await asyncio.wait_for(heard.wait(), WAIT)
    found = await b.knowledge.search("guild:1", "where do visitors park bicycles", min_score=0.2)
    assert [p.document for p in found] == ["parking.txt"]

    heard.clear()
    await a.knowledge.remove("guild:1", "parking.txt")
    await asyncio.wait_for(heard.wait(), WAIT)
    assert await b.knowledge.search("guild:1", "where do visitors park bicycles") == []


async def test_sqlite_keeps_one_process_without_locks_or_notifications(
    make_manager: ManagerFactory, tmp_path: Path, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    await manager.start()
    assert manager.services.coordination is None
    assert manager.queue.conversation_lock is None
    await manager.update_session_settings(SESSION, system_prompt="Be brief.")
    await manager.ask(prompt="one", session_id=SESSION)
    await manager.ask(prompt="two", session_id=SESSION)
    assert chat_messages(ollama_emu)[-1] == ["Be brief.", "one", "Echo: one", "two"]
