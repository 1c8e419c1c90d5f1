"""Stopping `python -m bot`: a reply finished just before a crash, replies whose token expired
before the next start, a stop while starting, and an unreachable Discord (one line, not a
traceback). SIGTERM, SIGINT and SIGKILL mid-answer, with several answers in flight, are
tests/chaos/test_process_faults.py's table."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

from tests.bot.test_main import run_bot_process
from tests.support.processes import CRASHED, Bot, last_message, setup, streaming


async def test_a_reply_that_finished_just_before_a_crash_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    """Its record was not yet forgotten (that is batched), but the answer was whole on
    screen: the next start adds no crash notice to it, and forgets it."""
    reply = " ".join(f"word{i}" for i in range(15))  # 1.5 s: long enough to be recorded
    async with setup(tmp_path, tokens_per_second=10) as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        rec = await s.ask("hi")
        await s.wait_rows("SELECT * FROM live_replies", 1)
        await rec.wait_done(lambda r: "tokens" in last_message(r).content, timeout=30)
        bot.proc.kill()  # before the record is forgotten, a second after the end
        await bot.wait_exit()
        assert s.rows("SELECT COUNT(*) FROM live_replies") == [(1,)]
        whole = last_message(rec).content

        bot = await s.start_bot()
        await s.wait_rows("SELECT * FROM live_replies", 0)
        await bot.wait_log("left as they are")
        assert last_message(rec).content == whole and CRASHED not in whole
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]


async def test_replies_whose_token_expired_are_finished_or_dropped(tmp_path: Path) -> None:
    """An interaction token lasts 15 minutes: after that a public reply is still finished
    (through the channel), a private one cannot be and is dropped with one log line, and
    a reply someone deleted meanwhile is dropped too; start-up goes on."""
    reply = " ".join(f"word{i}" for i in range(300))
    async with setup(tmp_path, tokens_per_second=10) as s:
        s.ollama.set_reply(reply)
        bot = await s.start_bot()
        public = await s.ask("hi")
        private = await s.ask("psst", 1, private=True)
        deleted = await s.ask("and this?", 2)
        for rec in (public, private, deleted):
            await rec.wait_done(streaming, timeout=30)
        await s.wait_rows("SELECT * FROM live_replies", 3)
        bot.proc.kill()
        await bot.wait_exit()
        for rec in (public, private, deleted):
            rec.dispatched_at -= 16 * 60  # the emulator's clock for the token's lifetime
        assert deleted.original is not None
        deleted.original.deleted = True

        bot = await s.start_bot()
        await public.wait_done(lambda r: CRASHED in last_message(r).content, timeout=30)
        assert public.original is not None and public.original.components == []
        await s.wait_rows("SELECT * FROM live_replies", 0)
        assert private.original is not None and CRASHED not in private.original.content
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        dropped = [x for x in bot.text.splitlines() if "could not finish an interrupted reply" in x]
        assert len(dropped) == 2, bot.text[-3000:]
        assert "Traceback" not in bot.text


async def test_a_stop_while_starting_waits_for_start_up_then_exits_cleanly(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path, tokens_per_second=10) as s:
        bot = Bot(await run_bot_process(s.env, s.db.parent))
        await s.discord.wait_for(lambda: bool(s.discord.calls), timeout=60)  # logging in
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.wait_exit() == 0, bot.text[-3000:]
        assert "Traceback" not in bot.text and "ERROR" not in bot.text, bot.text[-3000:]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_discord_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = closed_port()
    env = {
        "DISCORD_TOKEN": "test-token",
        "DISCORD_API_BASE": f"http://127.0.0.1:{port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/gateway",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
    }
    proc = await run_bot_process(env, tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode()
    assert proc.returncode == 1, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert f"cannot reach Discord at 127.0.0.1:{port}" in errors[0]
