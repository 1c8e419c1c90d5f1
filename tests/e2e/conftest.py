"""The real bot, built by create_bot(), against the Discord and Ollama emulators."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.core.config import Settings
from bot.discord_app.app import OllacordBot, create_bot
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    Guild,
    InteractionRecord,
    Permission,
    User,
    running_client,
)
from tests.emulators.ollama_server import OllamaEmulator
from tests.security.log_audit import register_secret
from tests.support import databases

# Random-looking and unique, so that the session's log audit (tests/security/log_audit.py)
# finding one in a log line means a leak, not a common word. The bot token is the one the
# emulator accepts.
E2E_DISCORD_TOKEN = DiscordEmulator.token
E2E_ADMIN_TOKEN = "e2e-admin-Vh3kQ9wZp2LxT7mR4nBs"
register_secret(E2E_DISCORD_TOKEN, E2E_ADMIN_TOKEN)


@dataclass
class World:
    discord: DiscordEmulator
    ollama: OllamaEmulator
    bot: OllacordBot
    guild: Guild
    channel: Channel
    alice: User  # an ordinary member
    bob: User  # another ordinary member
    admin: User  # has Manage Server
    settings: Settings

    @property
    def where(self) -> dict[str, int]:
        return {"channel_id": self.channel.id, "guild_id": self.guild.id}

    def in_channel(self, channel: Channel) -> dict[str, int]:
        return {"channel_id": channel.id, "guild_id": self.guild.id}


def e2e_settings(ollama: OllamaEmulator, database_url: str, guild: Guild, **env: str) -> Settings:
    values = {
        "DISCORD_TOKEN": E2E_DISCORD_TOKEN,
        "OLLAMA_HOST": ollama.url,
        "DEFAULT_MODEL": "llama3.2",
        "DATABASE_URL": database_url,
        "DEV_GUILD_ID": str(guild.id),
        "RETRY_BACKOFF": "0.01",
        "FIRST_TOKEN_TIMEOUT": "5",
        "STREAM_IDLE_TIMEOUT": "5",
        # A test's few members stand in for many askers (bursts from alice): no cap unless
        # a test sets one.
        "MAX_QUEUED_PER_MEMBER": "0",
        **env,
    }
    return Settings.from_mapping(values)


@contextlib.asynccontextmanager
async def running_bot(
    discord_emu: DiscordEmulator, settings: Settings
) -> AsyncIterator[OllacordBot]:
    """Start the real bot against the emulator and wait until it is ready."""
    bot = create_bot(settings, guild_ready_timeout=0.05)
    with discord_emu.patch_discord():
        async with running_client(bot, settings.discord_token or ""):
            yield bot


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path,
    *,
    discord_options: dict[str, Any] | None = None,
    ollama_options: dict[str, Any] | None = None,
    **env: str,
) -> AsyncIterator[World]:
    async with (
        DiscordEmulator(**(discord_options or {})) as discord_emu,
        OllamaEmulator(**(ollama_options or {})) as ollama,
    ):
        guild = discord_emu.add_guild("Test Guild")
        channel = discord_emu.add_channel(guild.id, "general")
        alice = discord_emu.add_user("alice")
        bob = discord_emu.add_user("bob")
        admin = discord_emu.add_user("admin")
        for user in (alice, bob):
            discord_emu.add_member(guild.id, user.id)
        discord_emu.add_member(
            guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
        )
        async with databases.current().database_async(tmp_path, "bot.db") as database_url:
            settings = e2e_settings(ollama, database_url, guild, **env)
            async with running_bot(discord_emu, settings) as bot:
                yield World(discord_emu, ollama, bot, guild, channel, alice, bob, admin, settings)


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as value:
        yield value


# ----- helpers for the /summarize, /model and /settings tests -----------------------------


def chat_bodies(ollama: OllamaEmulator) -> list[dict[str, Any]]:
    """The JSON bodies of every /api/chat request so far, oldest first."""
    return [r.json or {} for r in ollama.requests if r.path == "/api/chat"]


def ollama_paths(ollama: OllamaEmulator, since: int = 0) -> list[str]:
    return [r.path for r in ollama.requests[since:]]


def private_notes(rec: InteractionRecord) -> list[str]:
    """What only the invoking user was shown: an ephemeral response or ephemeral follow-ups."""
    notes = [m.content for m in rec.followups if m.ephemeral and not m.deleted and m.content]
    original = rec.original
    # An ephemeral deferral's first follow-up lands in the original, as on Discord.
    if original is not None and original.ephemeral and not original.deleted and original.content:
        notes.insert(0, original.content)
    return notes


async def wait_private_note(rec: InteractionRecord) -> str:
    await rec.wait_done(lambda r: bool(private_notes(r)))
    return "\n".join(private_notes(rec))


def open_command_to_everyone(discord_emu: DiscordEmulator, name: str) -> None:
    """What a server admin does in Server Settings > Integrations: lets every member see a
    command whose default_member_permissions would hide it. The bot's own check must then
    still refuse members without the permission."""
    for commands in discord_emu.registered_commands.values():
        for command in commands:
            if command["name"] == name:
                command["default_member_permissions"] = None


async def stored_messages(w: World, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's messages once at least ``count`` are stored.

    The final answer is shown before its turn is written (the edit doesn't wait for the
    database), so a test that reads the store right after seeing it must wait a moment.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        messages = [dict(m) for m in await w.bot.manager.store.messages(session_id)]
        if len(messages) >= count or loop.time() > deadline:
            return messages
        await asyncio.sleep(0.02)


async def settled_statistics(w: World, total_requests: int) -> dict[str, Any]:
    """The manager's statistics once ``total_requests`` are counted.

    A request is counted after its turn is stored, which is after the final edit the test
    saw; reading right away could miss the last one.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        stats = w.bot.manager.get_statistics()
        if stats["total_requests"] >= total_requests or loop.time() > deadline:
            return stats
        await asyncio.sleep(0.02)
