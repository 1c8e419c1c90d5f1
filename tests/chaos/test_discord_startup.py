"""Chaos: Discord unreachable or failing when `python -m bot` starts.

Unreachable, answering its login with a 5xx, or with a gateway that fails its first
connection, the process says so in one line and exits 1: its supervisor (compose's restart
policy, systemd) restarts it with its own growing delay, and the next start, Discord back,
connects and answers. Once connected, a gateway that goes away is waited for: discord.py
keeps reconnecting (one line per attempt, no tracebacks) and resumes.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import discord.gateway
import discord.http
import pytest

from bot.core.config import Settings
from bot.discord_app.app import run_bot
from tests.bot.test_main import run_bot_process
from tests.chaos.discord_chaos import answer_to, reply_for
from tests.chaos.invariants import check_turns
from tests.e2e.test_ask import finished, pages_without_footer
from tests.emulators.discord_faults import DiscordEdge, server_error
from tests.support.processes import Bot, Setup, setup

LOGIN = "/users/@me"


@asynccontextmanager
async def edged(tmp_path: Path) -> AsyncIterator[tuple[Setup, DiscordEdge]]:
    """A bot process's setup with Discord (REST and gateway) behind an edge."""
    async with (
        setup(tmp_path, tokens_per_second=300, channels=1) as s,
        DiscordEdge(s.discord) as edge,
    ):
        s.discord.gateway.url = edge.gateway_url  # READY's resume URL
        s.env.update(DISCORD_API_BASE=edge.api_base, DISCORD_GATEWAY_URL=edge.gateway_url)
        s.ollama.set_reply(reply_for)
        yield s, edge


async def failed_start(s: Setup) -> list[str]:
    """Run the bot to its exit; its ERROR lines (exit 1, no traceback, asserted)."""
    bot = Bot(await run_bot_process(s.env, s.db.parent))
    assert await bot.wait_exit() == 1, bot.text
    assert "Traceback" not in bot.text, bot.text
    return [line for line in bot.text.splitlines() if " ERROR " in line]


async def answers_and_stops(s: Setup, bot: Bot, question: str) -> None:
    messages = await finished(await s.ask(question), timeout=20)
    assert "".join(pages_without_footer(messages)) == answer_to(question)
    await s.wait_rows("SELECT id FROM messages", 2)
    bot.proc.send_signal(signal.SIGTERM)
    assert await bot.wait_exit() == 0, bot.text
    try:
        check_turns(s.conversations()[f"channel:{s.channels[0].id}"], answered=[question])
    except AssertionError as exc:
        seen = [(r.id, r.ack_type, r.errors) for r in s.discord.interactions]
        raise AssertionError(f"{exc}\ninteractions: {seen}\n{bot.text[-6000:]}") from None


async def test_the_gateway_down_at_start_then_back_then_down_again(tmp_path: Path) -> None:
    # Discord refusing connections altogether: tests/bot/test_shutdown_process.py
    # (test_unreachable_discord_is_one_line_and_exit_1).
    async with edged(tmp_path) as (s, edge):
        # REST answers, the gateway's upgrade fails. discord.py 2.7 cannot retry a first
        # connection (Client.connect reads the sequence of a websocket it never had): one
        # line and exit 1, as when Discord is unreachable.
        edge.gateway_status = 503
        [no_gateway] = await failed_start(s)
        assert "cannot reach Discord's gateway" in no_gateway and "503" in no_gateway

        edge.gateway_status = None
        bot = Bot(await run_bot_process(s.env, s.db.parent))  # the supervisor's restart
        await bot.wait_log("connected as")
        # Once connected, discord.py reconnects by itself: a line per attempt, no traceback.
        edge.gateway_status = 503
        await edge.drop_gateway()
        await bot.wait_log("Attempting a reconnect")
        edge.gateway_status = None
        await s.discord.wait_resumed(1, timeout=30)
        assert s.discord.identifies == 1
        await answers_and_stops(s, bot, "Connected in the end?")
        assert "Traceback" not in bot.text, bot.text
        retries = [line for line in bot.text.splitlines() if "Attempting a reconnect" in line]
        assert all(" WARNING " in line and "503" in line for line in retries), retries


async def test_a_5xx_on_login_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # In process (run_bot, what `python -m bot` runs): the same way out as above, quicker.
    async with edged(tmp_path) as (s, edge):
        login = edge.inject(server_error(503), route_contains=LOGIN)
        settings = Settings.from_mapping(s.env)
        base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        try:
            with caplog.at_level(logging.INFO):
                assert await run_bot(settings) == 1
        finally:
            discord.http.Route.BASE = base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
        assert login.hits == 1
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "Discord answered 503 Service Unavailable while the bot started"
        ]
        assert not any(r.exc_info for r in errors)
