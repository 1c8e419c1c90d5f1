"""Stopping the real bot while it answers: what people in Discord see and what is remembered.

``OllacordBot.stop_soon`` is what SIGTERM and SIGINT call (tests/bot/test_shutdown_process.py
sends the real signals to ``python -m bot``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.presentation.shutdown import INTERRUPTED, RESTARTING
from tests.e2e.conftest import World, world
from tests.emulators.discord_server import InteractionRecord

LONG = " ".join(f"slow{i}" for i in range(400))  # twenty seconds at 20 tokens/s


async def ask(w: World, prompt: str) -> InteractionRecord:
    return await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, options={"prompt": prompt}, **w.where
    )


def content(rec: InteractionRecord) -> str:
    return rec.original.content if rec.original is not None else ""


def streaming(rec: InteractionRecord) -> bool:
    return "slow2" in content(rec) and "▌" in content(rec)


def stored(tmp_path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(tmp_path / "bot.db")) as db:
        return db.execute("SELECT role, content FROM messages ORDER BY id").fetchall()


@pytest.mark.sqlite_only  # reads the database after the world (and a server's copy) is gone
async def test_a_second_signal_interrupts_at_once_queued_answers_too(tmp_path: Path) -> None:
    async with world(tmp_path, SHUTDOWN_GRACE_SECONDS="600") as w:
        w.ollama.set_reply(LONG)
        w.ollama.tokens_per_second = 20
        talking = await ask(w, "Talk for a while.")
        waiting = await ask(w, "And then?")  # same conversation: waits for the first
        await talking.wait_done(streaming, timeout=10)
        await waiting.wait_done(lambda r: "Waiting" in content(r))
        w.bot.stop_soon("SIGTERM")
        w.bot.stop_soon("SIGTERM")  # the grace is ten minutes: only this ends it now
        for rec in (talking, waiting):
            await rec.wait_done(lambda r: INTERRUPTED in content(r), timeout=10)
            assert rec.original is not None and rec.original.components == []
            assert "▌" not in content(rec)
        assert content(waiting) == INTERRUPTED
    said = content(talking).split("\n\n" + INTERRUPTED)[0]
    assert said.startswith("slow0 slow1 slow2") and LONG.startswith(said)
    # What was said is kept, as after Stop; the question that never got its turn is not.
    assert stored(tmp_path) == [("user", "Talk for a while."), ("assistant", said)]


async def test_the_stop_button_works_while_the_bot_stops(tmp_path: Path) -> None:
    async with world(tmp_path, SHUTDOWN_GRACE_SECONDS="600") as w:
        w.ollama.set_reply(LONG)
        w.ollama.tokens_per_second = 20
        rec = await ask(w, "Talk for a while.")
        await rec.wait_done(streaming, timeout=10)
        w.bot.stop_soon("SIGINT")
        assert rec.original is not None
        pressed = await w.discord.press_button(rec.original.id, 0, user_id=w.alice.id)
        await pressed.wait_done(lambda r: r.acked)
        await rec.wait_done(lambda r: content(r).endswith("stopped"), timeout=10)
        assert INTERRUPTED not in content(rec) and rec.original.components == []
        # Nothing left in flight: the stop goes on without waiting out its grace.
        await asyncio.wait_for(w.bot.close(), 30)


async def test_mentions_while_stopping_are_told_to_wait(tmp_path: Path) -> None:
    async with world(tmp_path, MENTION_CHAT="true", SHUTDOWN_GRACE_SECONDS="600") as w:
        w.ollama.set_reply(LONG)
        w.ollama.tokens_per_second = 20
        rec = await ask(w, "Talk for a while.")
        await rec.wait_done(streaming, timeout=10)
        w.bot.stop_soon("SIGTERM")
        asked = await w.discord.send_user_message(
            w.channel.id, w.bob.id, "are you there?", mentions=[w.discord.bot_user_id]
        )

        def told() -> bool:
            return any(
                m.content == RESTARTING
                and m.reference is not None
                and int(m.reference["message_id"]) == asked.id
                for m in w.discord.channel_messages(w.channel.id)
            )

        await w.discord.wait_for(told)
        chats = [r for r in w.ollama.requests if r.path == "/api/chat"]
        assert len(chats) == 1  # the mention was not asked of the model
        w.bot.stop_soon("SIGTERM")
