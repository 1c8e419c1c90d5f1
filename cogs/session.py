"""/reset: forgetting conversations (/settings, in cogs/settings.py, keeps the settings);
/session export: a conversation as a file."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.history import ChatMessage
from bot.core.types import Scope
from bot.presentation.export import (
    ExportedSession,
    Omitted,
    document_text,
    fitted,
    image_count,
    markdown_transcript,
    session_document,
)
from cogs.shared import place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot


# What a bot may attach on a server without boosts (and in DMs); boosted servers allow more,
# but a transcript this long is already more than anyone reads in one go.
DISCORD_FILE_LIMIT = 10 * 1024 * 1024
SHARED_NEEDS_ADMIN = (
    "This channel's conversation is shared, and it also holds answers members asked for "
    "privately, so exporting it needs the Manage Server permission. Your own conversations "
    "(in DMs, or in channels set to one conversation per member) you can always export."
)


class Session(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    @app_commands.command(name="reset")
    @app_commands.describe(scope="Forget this channel's conversation, or only your own")
    @app_commands.choices(
        scope=[
            app_commands.Choice(name="this channel", value="channel"),
            app_commands.Choice(name="only mine (per-user channels)", value="mine"),
        ]
    )
    async def reset(self, interaction: discord.Interaction, scope: str = "channel") -> None:
        """Forget the conversation so the next question starts fresh (settings are kept)."""
        place = place_of(interaction)
        if scope == "channel" and not place.is_dm:
            target = await self.bot.router.target(place)
            permissions = interaction.permissions
            if target.scope is Scope.USER and not permissions.manage_messages:
                scope = "mine"  # a member may forget their own session, not everyone's
        dropped = await self.bot.router.forget(place, only_mine=scope == "mine")
        what = (
            "your conversation" if scope == "mine" or place.is_dm else "this channel's conversation"
        )
        await interaction.response.send_message(
            f"🧹 Forgot {what} ({dropped} messages). The next question starts fresh.",
            ephemeral=True,
        )

    session = app_commands.Group(name="session", description="The conversation of this place")

    @session.command(name="export")
    @app_commands.describe(format="md: a readable transcript (default); json: every message")
    @app_commands.choices(
        format=[
            app_commands.Choice(name="Markdown transcript", value="md"),
            app_commands.Choice(name="JSON document", value="json"),
        ]
    )
    async def export(self, interaction: discord.Interaction, format: str = "md") -> None:
        """Get this conversation as a file (only you see it; images are left out). A shared
        channel's needs Manage Server: it holds other members' private answers too."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        # The conversation /ask would continue here: the channel's or thread's, the
        # member's own in a per-member channel, or the DM's.
        place = place_of(interaction)
        target = await self.bot.router.target(place)
        shared = not place.is_dm and target.scope is Scope.CHANNEL
        if shared and not interaction.permissions.manage_guild:
            # A shared conversation also remembers answers others asked for with
            # private:true; its transcript would show them to whoever asks.
            await interaction.followup.send(SHARED_NEEDS_ADMIN, ephemeral=True)
            return
        store = self.bot.manager.store
        record = await store.get(target.session_id)
        messages = await store.messages(target.session_id) if record is not None else []
        if record is None or not messages:
            await interaction.followup.send(
                "There is no conversation here yet: nothing to export.", ephemeral=True
            )
            return
        model = target.model or self.bot.settings.default_model
        # A long conversation takes a while to render: off the event loop.
        result = await asyncio.to_thread(self._render, record, messages, format, model)
        if result is None:
            await interaction.followup.send(
                "This conversation's newest message alone is too large for a file here.",
                ephemeral=True,
            )
            return
        data, left_out = result
        await interaction.followup.send(
            _export_note(len(messages) - left_out, left_out, image_count(messages[left_out:])),
            file=discord.File(io.BytesIO(data), filename=f"conversation.{format}"),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    def _render(
        self, record: ExportedSession, messages: list[ChatMessage], format: str, model: str
    ) -> tuple[bytes, int] | None:
        settings = self.bot.settings

        def render(kept: Sequence[ChatMessage], left_out: int) -> bytes:
            omitted = Omitted(messages=left_out, images=image_count(kept))
            if format == "json":
                document = session_document(
                    record,
                    kept,
                    max_length=settings.max_history_messages,
                    max_tokens=settings.max_history_tokens,
                    model=model,
                    omitted=omitted,
                )
                return document_text(document).encode()
            text = markdown_transcript(
                record, kept, time_text=_utc_text, model=model, omitted=omitted
            )
            return text.encode()

        return fitted(messages, render, DISCORD_FILE_LIMIT)


def _utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _export_note(kept: int, left_out: int, images: int) -> str:
    note = f"📄 This conversation, {kept} messages."
    if left_out:
        note += f" The {left_out} oldest were left out to fit Discord's file size limit."
    if images:
        left = "1 image was" if images == 1 else f"{images} images were"
        note += f" {left} left out (the file only counts them)."
    return note


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Session(bot))
