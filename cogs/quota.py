"""/quota (admins: a server's fair-use token quotas) and /usage (a member's own use).

Quotas are off until an admin sets them; see bot.core.quotas for what counts and when the
windows refill. Every reply is private.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import InvalidRequestError
from bot.core.quotas import Limits, Usage
from bot.discord_app.routing import guild_key
from bot.storage.quotas import QuotaRecord, RoleQuota
from cogs.shared import place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

MAX_TOKENS = 1_000_000_000  # a limit past this is surely a typo
MAX_ROLES_SHOWN = 20
NOT_IN_SERVER = "Quotas belong to servers: use this in a server's channel."


def refill(when: datetime) -> str:
    # Discord shows it in each reader's zone, counting down.
    return f"<t:{int(when.timestamp())}:R>"


def limit_text(tokens: int | None) -> str:
    return "no limit" if tokens is None else f"{tokens:,} tokens"


def override_text(value: int | None) -> str:
    if value is None:
        return "the server's"
    return "no limit" if value == 0 else f"{value:,}"


def policy_lines(policy: QuotaRecord | None) -> list[str]:
    """What /quota show says about a server's quotas."""
    if policy is None:
        return ["⚖️ Quotas are off in this server: members may use the model freely."]
    lines = [
        "⚖️ Token quotas in this server (prompt + answer tokens, UTC clock hours and days):",
        f"Per hour: {limit_text(policy.per_hour)} · per day: {limit_text(policy.per_day)}",
        "Members who can manage the server are exempt.",
    ]
    roles = sorted(policy.roles.items())
    for role_id, quota in roles[:MAX_ROLES_SHOWN]:
        if quota.exempt:
            lines.append(f"<@&{role_id}>: exempt")
        else:
            lines.append(
                f"<@&{role_id}>: per hour {override_text(quota.hour)}, "
                f"per day {override_text(quota.day)}"
            )
    if len(roles) > MAX_ROLES_SHOWN:
        lines.append(f"…and {len(roles) - MAX_ROLES_SHOWN} more roles")
    if roles:
        lines.append("A member with several of these roles gets the most generous.")
    return lines


def window_line(name: str, used: int, limit: int | None, refills: datetime) -> str:
    if limit is None:
        return f"This {name}: {used:,} tokens (no limit)."
    left = max(0, limit - used)
    return f"This {name}: {used:,} of {limit:,} tokens, {left:,} left; refills {refill(refills)}."


def usage_lines(usage: Usage) -> list[str]:
    """What /usage tells a member."""
    limits: Limits = usage.limits
    lines = [
        window_line("hour", usage.hour_tokens, limits.per_hour, usage.hour_refill),
        window_line("day", usage.day_tokens, limits.per_day, usage.day_refill),
    ]
    if limits.exempt == "admin":
        lines.append("You can manage this server, so no quota applies to you.")
    elif limits.exempt == "role":
        lines.append("One of your roles is exempt from quotas.")
    elif not limits.limited:
        lines.append("There are no quotas for you here.")
    return ["📊 Your use of the model here (prompt + answer tokens, UTC):", *lines]


def checked_limit(name: str, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_TOKENS:
        raise InvalidRequestError(f"`{name}` must be between 0 and {MAX_TOKENS:,} tokens.")
    return value


class Quota(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    quota = app_commands.Group(
        name="quota",
        description="Admins: fair-use token quotas for this server's members",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def _scope(self, interaction: discord.Interaction) -> str:
        if interaction.guild_id is None:
            raise InvalidRequestError(NOT_IN_SERVER)
        return guild_key(interaction.guild_id)

    async def _done(self, interaction: discord.Interaction, policy: QuotaRecord | None) -> None:
        await interaction.response.send_message("\n".join(policy_lines(policy)), ephemeral=True)

    @quota.command(name="set")
    @app_commands.describe(
        per_hour="Tokens a member may use per UTC hour (0 or empty: no limit)",
        per_day="Tokens a member may use per UTC day (0 or empty: no limit)",
    )
    # default_permissions only hides the command; it is checked here as well.
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_limits(
        self,
        interaction: discord.Interaction,
        per_hour: int | None = None,
        per_day: int | None = None,
    ) -> None:
        """Set every member's token quota per hour and per day."""
        scope = self._scope(interaction)
        policy = await self.bot.quotas.set_limits(
            scope,
            per_hour=checked_limit("per_hour", per_hour),
            per_day=checked_limit("per_day", per_day),
        )
        log.info("%s set the quotas of %s", interaction.user.id, scope)
        await self._done(interaction, policy)

    @quota.command(name="role")
    @app_commands.describe(
        role="The role whose members get other limits",
        per_hour="Tokens per hour for this role (empty: the server's; 0: no limit)",
        per_day="Tokens per day for this role (empty: the server's; 0: no limit)",
        exempt="No quota at all for this role's members",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_role(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        per_hour: int | None = None,
        per_day: int | None = None,
        exempt: bool | None = None,
    ) -> None:
        """Give a role its own quotas, or exempt it; with nothing else given, remove them."""
        scope = self._scope(interaction)
        quota = None
        if per_hour is not None or per_day is not None or exempt:
            quota = RoleQuota(
                checked_limit("per_hour", per_hour), checked_limit("per_day", per_day), bool(exempt)
            )
        policy = await self.bot.quotas.set_role(scope, role.id, quota)
        log.info("%s set the quota of role %d in %s", interaction.user.id, role.id, scope)
        await self._done(interaction, policy)

    @quota.command(name="show")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this server's quotas and role overrides."""
        await self._done(interaction, await self.bot.quotas.policy(self._scope(interaction)))

    @quota.command(name="off")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def off(self, interaction: discord.Interaction) -> None:
        """Turn quotas off in this server (role overrides are forgotten; usage is kept)."""
        scope = self._scope(interaction)
        await self.bot.quotas.turn_off(scope)
        log.info("%s turned the quotas of %s off", interaction.user.id, scope)
        await self._done(interaction, None)

    @app_commands.command(name="usage")
    @app_commands.guild_only()
    async def usage(self, interaction: discord.Interaction) -> None:
        """Your use of the model this hour and today, against your quotas (only you see it)."""
        place = place_of(interaction)
        if place.guild_id is None:
            raise InvalidRequestError(NOT_IN_SERVER)
        usage = await self.bot.quotas.usage(place.member)
        await interaction.response.send_message("\n".join(usage_lines(usage)), ephemeral=True)


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Quota(bot))
