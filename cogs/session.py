"""/reset and /settings: forgetting conversations, and each channel's scope, prompt and options."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.context_window import FROM_DEFAULT, ContextWindow
from bot.core.types import Scope
from bot.discord_app.routing import MAX_SYSTEM_PROMPT_CHARS
from cogs.shared import place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

NO_MENTIONS = discord.AllowedMentions.none()


def describe_options(options: dict[str, object], window: ContextWindow | None = None) -> str:
    """The options sent with every question (the model's own parameters do the rest), and
    the context window asked for."""
    chosen = ", ".join(f"`{k}={v}`" for k, v in sorted(options.items()))
    text = chosen or "none chosen: the model's own defaults"
    if window is not None:
        origin = FROM_DEFAULT if window.source == FROM_DEFAULT else "chosen here"
        if window.capped:
            origin += ", capped at the model's maximum"
        text += f"\nContext window: `num_ctx` {window.tokens} ({origin})"
    return text


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

    settings = app_commands.Group(
        name="settings",
        description="This channel's conversation settings",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @settings.command(name="show")
    # The system prompt is an admin's words: members see the model in each answer's footer.
    @app_commands.checks.has_permissions(manage_guild=True)
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this channel's scope, model, system prompt and generation options."""
        # The context window needs the model's maximum from Ollama, which may be slow.
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild, channel = await self.bot.router.channel_settings(place_of(interaction))
        default_model = self.bot.manager.default_model
        embed = discord.Embed(title="Conversation settings", colour=discord.Colour.blurple())
        embed.add_field(name="Scope", value=channel.scope or Scope.CHANNEL.value)
        embed.add_field(name="Model", value=f"`{channel.model or guild.model or default_model}`")
        prompt = (
            channel.system_prompt or guild.system_prompt or self.bot.manager.default_system_prompt
        )
        embed.add_field(name="System prompt", value=(prompt or "none")[:1024], inline=False)
        options = {**guild.options, **channel.options}
        model = channel.model or guild.model or default_model
        window = await self.bot.manager.context_window(model, options.get("num_ctx"))
        embed.add_field(name="Options", value=describe_options(options, window), inline=False)
        await interaction.followup.send(embed=embed, ephemeral=True)

    @settings.command(name="scope")
    @app_commands.describe(scope="One conversation for the channel, or one per member")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def scope(self, interaction: discord.Interaction, scope: Scope) -> None:
        """Share one conversation in this channel, or keep one per member."""
        await self.bot.router.set_scope(place_of(interaction), scope)
        kept = "one conversation per member" if scope is Scope.USER else "one shared conversation"
        await interaction.response.send_message(f"This channel now keeps {kept}.", ephemeral=True)

    @settings.command(name="system")
    @app_commands.describe(prompt="The system prompt; leave empty to remove it")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def system(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_SYSTEM_PROMPT_CHARS] | None = None,
    ) -> None:
        """Set the system prompt the model gets in this channel."""
        await self.bot.router.set_system_prompt(place_of(interaction), prompt)
        said = "removed" if prompt is None else "set"
        await interaction.response.send_message(f"System prompt {said}.", ephemeral=True)

    @settings.command(name="options")
    @app_commands.describe(
        temperature="Creativity, 0 to 2",
        top_p="Nucleus sampling, 0 to 1",
        top_k="Top-k sampling",
        num_ctx="Context window in tokens",
        num_predict="Longest answer in tokens (-1: no limit)",
        repeat_penalty="Penalty for repeating, e.g. 1.1",
        seed="Fixed seed for reproducible answers",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def options(
        self,
        interaction: discord.Interaction,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        top_p: app_commands.Range[float, 0.0, 1.0] | None = None,
        top_k: app_commands.Range[int, 1, 1000] | None = None,
        num_ctx: app_commands.Range[int, 256, 1_048_576] | None = None,
        num_predict: app_commands.Range[int, -1, 100_000] | None = None,
        repeat_penalty: app_commands.Range[float, 0.0, 10.0] | None = None,
        seed: int | None = None,
    ) -> None:
        """Set generation options for this channel (only the ones you give change)."""
        given = {
            k: v
            for k, v in {
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
                "num_ctx": num_ctx,
                "num_predict": num_predict,
                "repeat_penalty": repeat_penalty,
                "seed": seed,
            }.items()
            if v is not None
        }
        options = await self.bot.router.set_options(place_of(interaction), given)
        await interaction.response.send_message(
            f"Options now: {describe_options(options)}.", ephemeral=True
        )

    @settings.command(name="reset")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset_settings(self, interaction: discord.Interaction) -> None:
        """Put this channel's settings back to the defaults (the conversation is kept)."""
        await self.bot.router.reset_settings(place_of(interaction))
        await interaction.response.send_message(
            "This channel's settings are back to the defaults.", ephemeral=True
        )


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Session(bot))
