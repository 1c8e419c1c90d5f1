"""What the cogs share: the place of an interaction, model and persona autocomplete, and the
reply sink of an interaction with its privacy. No cog imports another cog; they all import
this module."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.discord_app.replies import InteractionSink
from bot.discord_app.routing import Place
from bot.discord_app.threads import parent_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

MAX_AUTOCOMPLETE_CHOICES = 25  # Discord's limit
MAX_CHOICE_NAME_CHARS = 100  # a choice's name, as Discord allows it


def place_of(interaction: discord.Interaction) -> Place:
    return Place(
        channel_id=interaction.channel_id or 0,
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        role_ids=role_ids_of(interaction.user, interaction.guild_id),
        # The member's permissions as the interaction resolves them (no cache needed).
        manages_server=interaction.guild_id is not None and interaction.permissions.manage_guild,
        parent_id=parent_of(interaction.channel),  # a thread uses its channel's settings
    )


def role_ids_of(user: discord.User | discord.Member, guild_id: int | None) -> tuple[int, ...]:
    """A member's role ids, @everyone's (the server's id) first; none outside a server."""
    if guild_id is None:
        return ()
    roles = user.roles if isinstance(user, discord.Member) else []
    return (guild_id, *(role.id for role in roles if role.id != guild_id))


def interaction_sink(
    bot: OllacordBot,
    interaction: discord.Interaction,
    *,
    private: bool,
    view: discord.ui.View | None = None,
    acknowledged: asyncio.Future[object] | None = None,
) -> InteractionSink:
    """Where an answer to ``interaction`` is written: every page as private as ``private``,
    recorded while live (so a crash can't leave it with a cursor)."""
    return InteractionSink(
        interaction,
        bot.rate_limits,
        ephemeral=private,
        view=view,
        acknowledged=acknowledged,
        live=bot.live_replies,
    )


async def model_choices(bot: OllacordBot, current: str) -> list[app_commands.Choice[str]]:
    """Model names from the (cached) tags list that contain what was typed."""
    try:
        models = await bot.manager.list_models()
    except Exception:  # autocomplete must answer quickly whatever happens
        log.debug("model autocomplete failed", exc_info=True)
        return []
    needle = current.lower()
    names = [m.name for m in models if needle in m.name.lower()]
    return [app_commands.Choice(name=n, value=n) for n in names[:MAX_AUTOCOMPLETE_CHOICES]]


async def persona_choices(
    bot: OllacordBot, interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """The server's personas whose name contains what was typed, with their descriptions."""
    if interaction.guild_id is None:
        return []
    try:
        personas = await bot.router.personas.list(f"guild:{interaction.guild_id}")
    except Exception:  # autocomplete must answer quickly whatever happens
        log.debug("persona autocomplete failed", exc_info=True)
        return []
    needle = current.strip().lower()
    labels = {p.name: f"{p.name}: {p.description}" if p.description else p.name for p in personas}
    return [
        app_commands.Choice(name=label[:MAX_CHOICE_NAME_CHARS], value=name)
        for name, label in labels.items()
        if needle in name
    ][:MAX_AUTOCOMPLETE_CHOICES]
