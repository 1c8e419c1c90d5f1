"""/ask, and answering mentions: streamed answers with a Stop button."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import OllacordError
from bot.discord_app.advice import explain
from bot.discord_app.replies import NO_MENTIONS, ChannelSink, acknowledging
from bot.discord_app.routing import Place
from bot.presentation.answering import MAX_PROMPT_CHARS, AnswerRun
from bot.presentation.shutdown import RESTARTING
from cogs.shared import interaction_sink, model_choices, place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15 * 60  # an interaction token's lifetime


class StopView(discord.ui.View):
    """A Stop button only the asker can use."""

    def __init__(self, asker_id: int) -> None:
        super().__init__(timeout=STOP_TIMEOUT)
        self.asker_id = asker_id
        self.run: AnswerRun | None = None

    @discord.ui.button(label="Stop", style=discord.ButtonStyle.secondary, emoji="⏹️")
    async def stop_button(
        self, interaction: discord.Interaction, _button: discord.ui.Button
    ) -> None:
        if interaction.user.id != self.asker_id:
            await interaction.response.send_message(
                "Only the person who asked can stop this answer.", ephemeral=True
            )
            return
        await interaction.response.defer()
        if self.run is not None:
            self.run.stop()
        self.stop()


class Chat(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    @app_commands.command(name="ask")
    @app_commands.describe(
        prompt="What you want to ask",
        model="Use this model instead of the channel's",
        temperature="Creativity from 0 (focused) to 2 (wild)",
        private="Only you see the answer (it is still remembered in the conversation)",
    )
    async def ask(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        model: str | None = None,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        private: bool = False,
    ) -> None:
        """Ask the model; the answer streams into this channel."""
        view = StopView(interaction.user.id)
        async with acknowledging(interaction, ephemeral=private) as acknowledged:
            target = await self.bot.router.target(place_of(interaction))
            sink = interaction_sink(
                self.bot, interaction, private=private, view=view, acknowledged=acknowledged
            )
            run = self.bot.answer_run(sink)
            view.run = run
            await run.ask(prompt, target, model=model, temperature=temperature)
        view.stop()

    @ask.autocomplete("model")
    async def model_autocomplete(
        self, _interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await model_choices(self.bot, current)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """With MENTION_CHAT, a mention of the bot or a reply to it is a question."""
        if not self.bot.settings.mention_chat or message.author.bot or self.bot.user is None:
            return
        if not await self._addressed_to_me(message):
            return
        prompt = message.content.replace(self.bot.user.mention, "").strip()
        prompt = prompt.replace(f"<@!{self.bot.user.id}>", "").strip()
        if not prompt:
            return
        if self.bot.in_flight.draining:
            await message.reply(RESTARTING, allowed_mentions=NO_MENTIONS, mention_author=False)
            return
        guild_id = message.guild.id if message.guild else None
        place = Place(message.channel.id, message.author.id, guild_id)
        try:
            target = await self.bot.router.target(place)
        except OllacordError as exc:
            await message.reply(explain(exc), allowed_mentions=NO_MENTIONS)
            return
        sink = ChannelSink(
            message, self.bot.rate_limits, budget=self.bot.write_budget, live=self.bot.live_replies
        )
        run = self.bot.answer_run(sink)
        await run.ask(prompt[:MAX_PROMPT_CHARS], target)

    async def _addressed_to_me(self, message: discord.Message) -> bool:
        assert self.bot.user is not None
        if self.bot.user in message.mentions or message.guild is None:
            return True
        ref = message.reference
        if ref is None or ref.message_id is None:
            return False
        resolved = ref.resolved
        if isinstance(resolved, discord.Message):
            return resolved.author.id == self.bot.user.id
        try:
            parent = await message.channel.fetch_message(ref.message_id)
        except discord.HTTPException:
            return False
        return parent.author.id == self.bot.user.id


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Chat(bot))
