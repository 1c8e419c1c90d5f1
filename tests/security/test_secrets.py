"""Secrets stay out of what the bot writes: its log (the real process's stderr, as
production configures it) and its Discord messages.

The session-wide audit (log_audit.py) reads every in-process log record; these tests cover
what it cannot see: a ``python -m bot`` process, started with a password in DATABASE_URL or
with interaction tokens that expire under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import make_url

from tests.bot.test_main import emulator_env, run_bot_process
from tests.e2e.conftest import wait_private_note, world
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.ollama_server import OllamaEmulator
from tests.security.log_audit import register_secret, secrets_in

DB_PASSWORD = "pg-Pa55w0rd-9qX2vLk7"  # test values, looked for in the logs
OLLAMA_PASSWORD = "ollama-Pw-7tR3mQ8zK1"


def unreachable_postgres_url(password: str) -> str:
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    return f"postgresql+asyncpg://ollacord:{password}@127.0.0.1:1/ollacord"


@contextlib.asynccontextmanager
async def bot_process(
    tmp_path: Path,
    discord_emu: DiscordEmulator,
    ollama: OllamaEmulator,
    *,
    kill: bool = False,
    **env: str,
) -> AsyncIterator[list[str]]:
    """``python -m bot`` at DEBUG against the emulators, ready; on exit it is stopped with
    SIGINT (or killed, not to wait for answers in flight) and the yielded list holds its
    log lines (each record is flushed as it is written)."""
    guild = next(iter(discord_emu.world.guilds.values()))
    settings = emulator_env(discord_emu, ollama, guild.id, LOG_LEVEL="DEBUG", **env)
    proc = await run_bot_process(settings, tmp_path)
    lines: list[str] = []
    try:
        await discord_emu.wait_ready(timeout=60)
        await discord_emu.wait_for(lambda: discord_emu.command_syncs, timeout=30)
        yield lines
    finally:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        lines.extend(err.decode().splitlines())


def sent_bodies(discord_emu: DiscordEmulator) -> str:
    """Every JSON body the bot sent to Discord, as one text."""
    return "\n".join(json.dumps(c.json) for c in discord_emu.calls if c.json is not None)


async def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        env = emulator_env(
            discord_emu,
            ollama,
            guild.id,
            LOG_LEVEL="DEBUG",
            DATABASE_URL=unreachable_postgres_url(DB_PASSWORD),
        )
        proc = await run_bot_process(env, tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode()
    assert proc.returncode != 0
    assert "127.0.0.1:1" in log  # the database is named, so the operator knows which
    assert DB_PASSWORD not in log, log
    assert secrets_in(log, [discord_emu.token]) == []


@pytest.mark.postgresql_only
async def test_a_database_password_is_not_in_the_log_of_a_running_bot(
    tmp_path: Path, postgres_url: str
) -> None:
    # The throwaway server trusts local connections, so it accepts any password: the bot
    # runs with one in its URL, at DEBUG, through start-up, a question and shutdown.
    url = make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        async with bot_process(tmp_path, discord_emu, ollama, DATABASE_URL=url) as lines:
            rec = await discord_emu.invoke_slash(
                "ask",
                user_id=alice.id,
                channel_id=channel.id,
                guild_id=guild.id,
                options={"prompt": "hi"},
            )
            await rec.wait_done(
                lambda r: r.original is not None and "-# " in r.original.content, timeout=30
            )
    log = "\n".join(lines)
    assert "request manager ready" in log
    assert DB_PASSWORD not in log
    assert DB_PASSWORD not in sent_bodies(discord_emu)


def refusals(discord_emu: DiscordEmulator) -> int:
    return sum(1 for c in discord_emu.calls if c.status == 401 and "/webhooks/" in c.path)


async def test_interaction_tokens_are_not_logged_when_their_edits_fail(tmp_path: Path) -> None:
    # The interaction's token expires while the model loads: every edit of the reply is
    # refused (401 Invalid Webhook Token), and the bot logs why, at DEBUG, without it. (It
    # retries for half a minute before it gives up: the bot is stopped after two refusals.)
    async with (
        DiscordEmulator(token_ttl=1.0) as discord_emu,
        OllamaEmulator(load_delay=1.5) as ollama,
    ):
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        async with bot_process(tmp_path, discord_emu, ollama, kill=True) as lines:
            rec = await discord_emu.invoke_slash(
                "ask",
                user_id=alice.id,
                channel_id=channel.id,
                guild_id=guild.id,
                options={"prompt": "hi"},
            )
            # The first refusal is logged before the bot retries.
            await discord_emu.wait_for(lambda: refusals(discord_emu) >= 2, timeout=30)
    log = "\n".join(lines)
    assert "Invalid Webhook Token" in log  # the failure was logged
    assert rec.token not in log
    assert secrets_in(log, [discord_emu.token]) == []
    assert rec.token not in sent_bodies(discord_emu)


async def test_ollama_host_credentials_are_in_no_message_or_log(tmp_path: Path) -> None:
    # A host with a user and password that refuses connections: the member is told which
    # server cannot be reached, by its address alone.
    register_secret(OLLAMA_PASSWORD)
    host = f"http://ollacord:{OLLAMA_PASSWORD}@127.0.0.1:1"
    async with world(tmp_path, OLLAMA_HOST=host, HTTP_PORT="0") as w:
        rec = await w.discord.invoke_slash(
            "ask", user_id=w.alice.id, **w.where, options={"prompt": "hi"}
        )
        await rec.wait_done(lambda r: r.original is not None and "⚠️" in r.original.content)
        assert rec.original is not None and "127.0.0.1:1" in rec.original.content
        listing = await w.discord.invoke_slash(
            "model", subcommand="list", user_id=w.alice.id, **w.where
        )
        await wait_private_note(listing)
        assert w.bot.http_server is not None
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{w.bot.http_server.port}"
            bodies = [
                await (await http.get(base + path)).text()
                for path in ("/healthz", "/models", "/stats")
            ]
    assert OLLAMA_PASSWORD not in sent_bodies(w.discord)
    assert not [b for b in bodies if OLLAMA_PASSWORD in b]
