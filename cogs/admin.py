"""/stats: the request manager's statistics, for server admins (the same as GET /stats), and
the server's top users of the model today."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_app.routing import guild_key
from bot.storage.quotas import MemberUse

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

# An embed field holds at most 1024 characters; the busiest models and tools are the
# interesting ones.
MAX_MODELS_SHOWN = 10
MAX_TOOLS_SHOWN = 10
# How a tool call that did not succeed is counted in /stats, by its outcome.
FAILED_OUTCOMES = {"error": "failed", "timeout": "timed out", "unknown": "unknown"}


def format_duration(seconds: float) -> str:
    """A compact duration such as "3d 4h 5m" or "42s"."""
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    return " ".join(parts) if parts else f"{secs}s"


def model_usage_lines(usage: dict[str, int]) -> str:
    busiest = sorted(usage.items(), key=lambda item: (-item[1], item[0]))
    lines = [f"`{name}`: {count:,}" for name, count in busiest[:MAX_MODELS_SHOWN]]
    if len(busiest) > MAX_MODELS_SHOWN:
        lines.append(f"…and {len(busiest) - MAX_MODELS_SHOWN} more")
    return "\n".join(lines) or "No requests yet."


def tool_usage_lines(usage: Mapping[str, int], outcomes: Mapping[tuple[str, str], int]) -> str:
    """The busiest tools, each with its calls that did not succeed: "`calculator`: 3 (1
    failed)"."""
    busiest = sorted(usage.items(), key=lambda item: (-item[1], item[0]))
    lines = []
    for name, count in busiest[:MAX_TOOLS_SHOWN]:
        failed = [
            f"{outcomes[name, outcome]:,} {words}"
            for outcome, words in FAILED_OUTCOMES.items()
            if outcomes.get((name, outcome))
        ]
        lines.append(f"`{name}`: {count:,}" + (f" ({', '.join(failed)})" if failed else ""))
    if len(busiest) > MAX_TOOLS_SHOWN:
        lines.append(f"…and {len(busiest) - MAX_TOOLS_SHOWN} more")
    return "\n".join(lines) or "No tool calls yet."


def top_users_lines(users: Sequence[MemberUse]) -> str:
    """Today's heaviest users: "1. <@id>: 12,345 tokens (6 questions)"; mentions in an
    embed ping nobody."""
    lines = [
        f"{rank}. <@{use.user_id}>: {use.tokens:,} tokens ({use.questions:,} questions)"
        for rank, use in enumerate(users, 1)
    ]
    return "\n".join(lines) or "Nobody has asked today."


def stats_embed(
    stats: dict[str, Any], tool_outcomes: Mapping[tuple[str, str], int] | None = None
) -> discord.Embed:
    embed = discord.Embed(title="Bot statistics", colour=discord.Colour.blurple())
    for name, value in (
        ("Total requests", f"{stats['total_requests']:,}"),
        ("Successful", f"{stats['successful_requests']:,}"),
        ("Failed", f"{stats['failed_requests']:,}"),
        ("Error rate", f"{stats['error_rate']:.1f}%"),
        ("Average response time", f"{stats['average_processing_time']:.2f} s"),
        ("Average first token", f"{stats['average_first_token_time']:.2f} s"),
        ("Tokens generated", f"{stats['total_tokens_generated']:,}"),
        ("Active sessions", f"{stats['active_sessions']:,}"),
        ("Queue depth", f"{stats['queue_depth']:,}"),
        ("Answers running", f"{stats['active_streams']:,}"),
        ("Uptime", format_duration(stats["uptime_seconds"])),
    ):
        embed.add_field(name=name, value=value)
    embed.add_field(name="Model usage", value=model_usage_lines(stats["model_usage"]), inline=False)
    embed.add_field(
        name="Tool calls",
        value=tool_usage_lines(stats.get("tools_usage", {}), tool_outcomes or {}),
        inline=False,
    )
    return embed


class Admin(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    @app_commands.command(name="stats")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    # default_permissions only hides the command; server admins can open it to anyone,
    # so the permission is checked here as well.
    @app_commands.checks.has_permissions(manage_guild=True)
    async def stats(self, interaction: discord.Interaction) -> None:
        """Show the bot's request statistics, per-model and per-tool usage and uptime."""
        manager = self.bot.manager
        embed = stats_embed(manager.get_statistics(), manager.stats.tool_outcomes)
        if interaction.guild_id is not None:
            top = await self.bot.quotas.top_users(guild_key(interaction.guild_id))
            embed.add_field(
                name="Top users today (UTC, tokens)", value=top_users_lines(top), inline=False
            )
        if note := self.bot.process_note(interaction.guild_id):
            embed.set_footer(text=note)  # sharded: one process's numbers, not the bot's
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Admin(bot))
