"""/reset: forgetting conversations (/settings, in cogs/settings.py, keeps the settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.types import Scope
from cogs.shared import place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot


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


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Session(bot))
