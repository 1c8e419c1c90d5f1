"""Credentials never reach the log: interaction tokens in webhook routes, passwords in URLs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.ops.logging_setup import REDACTED, SecretFilter
from tests.bot.test_main import emulator_env, run_bot_process
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.ollama_server import OllamaEmulator

TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQ.abc-DEF_123"


def formatted(message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter([]))
    logger = logging.getLogger("test.hygiene")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning(message, *args)
    return stream.getvalue()


@pytest.mark.parametrize(
    "route",
    [
        f"/api/v10/webhooks/1234567890/{TOKEN}/messages/@original",
        f"/api/v10/webhooks/1234567890/{TOKEN}?wait=true",
        f"/api/v10/interactions/987654321/{TOKEN}/callback",
        f"https://discord.com/api/v10/webhooks/1234567890/{TOKEN}/messages/555",
    ],
)
def test_webhook_and_interaction_tokens_are_redacted(route: str) -> None:
    out = formatted("We are being rate limited. PATCH %s responded with 429.", route)
    assert TOKEN not in out
    assert REDACTED in out
    assert "1234567890" in out or "987654321" in out  # ids stay: they help, and are public


def test_passwords_in_urls_are_redacted() -> None:
    out = formatted("cannot open postgresql+asyncpg://ollacord:s3cr3t-Pa55@db:5432/ollacord")
    assert "s3cr3t-Pa55" not in out
    assert "postgresql+asyncpg://ollacord:" + REDACTED + "@db:5432/ollacord" in out


def test_a_traceback_carrying_a_token_is_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter(["my-very-secret-token"]))
    logger = logging.getLogger("test.hygiene.traceback")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        raise ConnectionError(f"failed: POST /webhooks/1/{TOKEN} as Bot my-very-secret-token")
    except ConnectionError:
        logger.exception("giving up")
    out = stream.getvalue()
    assert "Traceback" in out and "ConnectionError" in out
    assert TOKEN not in out and "my-very-secret-token" not in out


def test_text_without_credentials_is_untouched() -> None:
    message = "user@example.com asked about /webhooks in general at http://localhost:11434"
    assert formatted(message).strip() == message


@contextlib.asynccontextmanager
async def bot_process(
    tmp_path: Path, discord_emu: DiscordEmulator, ollama: OllamaEmulator, log_level: str
) -> AsyncIterator[list[str]]:
    """``python -m bot`` against the emulators, ready; on exit it is stopped with SIGINT and
    the yielded list holds its log lines."""
    guild = next(iter(discord_emu.world.guilds.values()))
    env = emulator_env(discord_emu, ollama, guild.id, LOG_LEVEL=log_level)
    proc = await run_bot_process(env, tmp_path)
    lines: list[str] = []
    try:
        await discord_emu.wait_ready(timeout=60)
        await discord_emu.wait_for(lambda: discord_emu.command_syncs, timeout=30)
        yield lines
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        lines.extend(err.decode().splitlines())


async def test_a_429_on_an_interaction_reply_logs_no_token(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        async with bot_process(tmp_path, discord_emu, ollama, "DEBUG") as lines:
            ollama.set_reply("An answer that arrives despite the rate limit.")
            discord_emu.force_429(2, retry_after=0.2, route_contains="/webhooks/")
            rec = await discord_emu.invoke_slash(
                "ask",
                user_id=alice.id,
                channel_id=channel.id,
                guild_id=guild.id,
                options={"prompt": "hi"},
            )
            await rec.wait_done(
                lambda r: r.original is not None and "tokens" in r.original.content, timeout=30
            )
        log = "\n".join(lines)
        assert discord_emu.count_429() >= 1
        assert "429" in log  # the rate limit itself is still reported
        assert rec.token not in log
        assert discord_emu.token not in log


async def test_the_start_up_log_is_for_people(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        discord_emu.add_channel(guild.id)
        async with bot_process(tmp_path, discord_emu, ollama, "INFO") as lines:
            pass
    assert any("request manager ready" in line for line in lines), lines
    assert any("Running upgrade" in line for line in lines)  # a new database: say so
    noise = ("setup plugin", "Context impl", "non-transactional DDL", "voice will NOT")
    assert [line for line in lines if any(n in line for n in noise)] == []
    assert not [line for line in lines if " WARNING " in line or " ERROR " in line], lines
