"""What the Discord emulator's own tests share: a bare discord.py bot whose app commands go
to one guild, and starting such a bot against an emulator.

Each test file subclasses GuildTestBot with the commands it needs (see
test_discord_server.py and test_discord_attachments.py); the bot itself is the unmodified
discord.py client, so the emulator is checked against what the library really sends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from .discord_server import DiscordEmulator, running_client

GUILD_READY_TIMEOUT = 0.05  # seconds; the emulator sends every GUILD_CREATE at once
READY_TIMEOUT = 10.0  # seconds for the bot to log in and see READY


class GuildTestBot(commands.Bot):
    """Answers mentions, keeps every message it sees, and syncs its commands to one guild."""

    def __init__(
        self, guild_id: int, *, intents: discord.Intents | None = None, **options: Any
    ) -> None:
        if intents is None:
            intents = discord.Intents.default()
            intents.message_content = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            guild_ready_timeout=GUILD_READY_TIMEOUT,
            **options,
        )
        self.guild_id = guild_id
        self.seen_messages: list[discord.Message] = []
        self.synced: list[app_commands.AppCommand] = []

    async def setup_hook(self) -> None:
        # Guild commands are live at once; global ones would be a separate registry to check.
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        self.synced = await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        self.seen_messages.append(message)


@contextlib.asynccontextmanager
async def bot_running_on(emu: DiscordEmulator, bot: discord.Client) -> AsyncIterator[None]:
    """Point discord.py at ``emu`` and run ``bot`` until the block ends."""
    with emu.patch_discord():
        async with running_client(bot, emu.token, ready_timeout=READY_TIMEOUT):
            yield
