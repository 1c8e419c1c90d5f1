"""The bot the Discord emulator's own tests run (tests/emulators/test_discord_server*.py): an
unmodified discord.py client with a slash command of each kind, a view, a modal and a trace
of every HTTP request it makes."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import discord.http
from discord import app_commands

from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    Guild,
    Permission,
    User,
)
from tests.emulators.discord_testbot import GuildTestBot, bot_running_on

FRUITS = ["apple", "apricot", "banana", "cherry"]


class ConfirmView(discord.ui.View):
    def __init__(self, presses: list[int]) -> None:
        super().__init__(timeout=30)
        self.presses = presses

    @discord.ui.button(label="Yes", custom_id="yes", style=discord.ButtonStyle.green)
    async def yes(
        self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]
    ) -> None:
        self.presses.append(interaction.user.id)
        await interaction.response.edit_message(content="confirmed", view=None)


class PromptModal(discord.ui.Modal, title="System prompt"):
    text: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"prompt set: {self.text.value}", ephemeral=True)


class EmuBot(GuildTestBot):
    """A minimal bot: just enough app commands to drive every emulator path."""

    def __init__(self, guild_id: int, *, intents: discord.Intents | None = None) -> None:
        self.requested_urls: list[str] = []
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._trace_request)
        super().__init__(guild_id, intents=intents, http_trace=trace)
        self.errors: list[BaseException] = []
        self.button_presses: list[int] = []
        self.tree.on_error = self.on_tree_error  # type: ignore[method-assign]
        self._add_commands()

    async def _trace_request(
        self,
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.requested_urls.append(str(params.url))

    def _add_commands(self) -> None:
        tree = self.tree

        @tree.command(description="Defer, edit the reply several times, then follow up")
        async def stream(interaction: discord.Interaction, edits: int = 3) -> None:
            await interaction.response.defer()
            for i in range(edits):
                await interaction.edit_original_response(content=f"part {i}")
            await interaction.followup.send("follow-up")

        @tree.command(description="Answer only the caller")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("hush", ephemeral=True)

        @tree.command(description="Think privately, then answer")
        async def quiet(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.edit_original_response(content="private answer")

        @tree.command(description="Needs Manage Server")
        @app_commands.checks.has_permissions(manage_guild=True)
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("admin ok")

        @tree.command(description="Acknowledges too late")
        async def slowack(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.4)
            await interaction.response.defer()

        @tree.command(description="Acknowledges twice")
        async def doubleack(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            # discord.py refuses a second ack locally; forget the first so the
            # server is the one to refuse.
            interaction.response._response_type = None
            await interaction.response.defer()

        @tree.command(description="Answers with 2001 characters")
        async def toolong(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("x" * 2001)

        @tree.command(description="Edits the reply 20 times as fast as it can")
        async def burst(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            for i in range(20):
                await interaction.edit_original_response(content=f"edit {i}")

        @tree.command(description="Defers, then answers with a follow-up only")
        async def deferfollow(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await interaction.followup.send("answer")

        async def fruit_choices(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=f, value=f) for f in FRUITS if f.startswith(current)]

        @tree.command(description="Pick a fruit")
        @app_commands.autocomplete(fruit=fruit_choices)
        async def pick(interaction: discord.Interaction, fruit: str) -> None:
            await interaction.response.send_message(f"picked {fruit}")

        @tree.command(description="Ask for confirmation")
        async def buttons(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("choose", view=ConfirmView(self.button_presses))

        @tree.command(description="Mention the caller")
        async def mention(interaction: discord.Interaction, safe: bool) -> None:
            allowed = discord.AllowedMentions.none() if safe else discord.utils.MISSING
            await interaction.response.send_message(
                f"<@{interaction.user.id}> hi", allowed_mentions=allowed
            )

        @tree.command(description="Answer with files")
        async def withfile(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            report = discord.File(io.BytesIO(b"abc"), "report.txt")
            await interaction.edit_original_response(content="see file", attachments=[report])
            notes = discord.File(io.BytesIO(b"# notes"), "notes.md")
            followup = await interaction.followup.send("more", file=notes, wait=True)
            await followup.edit(content="more, edited")

        @tree.command(description="Ask for a system prompt")
        async def prompt(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(PromptModal())

        @tree.command(description="Read an attachment")
        async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
            data = await file.read()
            await interaction.response.send_message(f"{file.filename}:{len(data)}:{data.decode()}")

    async def on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(
            error.original if isinstance(error, app_commands.CommandInvokeError) else error
        )
        if (
            isinstance(error, app_commands.MissingPermissions)
            and not interaction.response.is_done()
        ):
            await interaction.response.send_message("You need Manage Server", ephemeral=True)


@dataclass
class Harness:
    emu: DiscordEmulator
    bot: EmuBot
    guild: Guild
    channel: Channel
    alice: User  # an ordinary member
    admin: User  # has Manage Server

    @property
    def where(self) -> dict[str, int]:
        return {"channel_id": self.channel.id, "guild_id": self.guild.id}


@contextlib.asynccontextmanager
async def harness(
    intents: discord.Intents | None = None, **emu_kwargs: Any
) -> AsyncIterator[Harness]:
    async with DiscordEmulator(**emu_kwargs) as emu:
        guild = emu.add_guild("Test Guild")
        channel = emu.add_channel(guild.id, "general")
        alice = emu.add_user("alice")
        emu.add_member(guild.id, alice.id)
        admin = emu.add_user("admin")
        emu.add_member(
            guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
        )
        bot = EmuBot(guild.id, intents=intents)
        async with bot_running_on(emu, bot):
            yield Harness(emu, bot, guild, channel, alice, admin)


async def bot_channel(h: Harness) -> discord.TextChannel:
    channel = h.bot.get_channel(h.channel.id)
    assert isinstance(channel, discord.TextChannel)
    return channel
