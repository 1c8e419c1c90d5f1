"""/ask, and answering mentions: streamed answers with a Stop button."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.documents import question_with_documents
from bot.core.errors import OllacordError
from bot.core.personas import MAX_NAME_CHARS
from bot.core.presets import PRESETS
from bot.discord_app.advice import explain
from bot.discord_app.attachments import read_attachments, read_schema, split_attachments
from bot.discord_app.replies import NO_MENTIONS, ChannelSink, acknowledging
from bot.discord_app.routing import Place
from bot.discord_app.threads import (
    AnswerThread,
    can_open_thread,
    channel_of,
    in_thread,
    open_on,
    opened_by,
    parent_of,
    wants_thread,
)
from bot.presentation.answering import MAX_PROMPT_CHARS, AnswerRun
from bot.presentation.shutdown import RESTARTING
from bot.presentation.streaming import ReplySink
from cogs.shared import interaction_sink, model_choices, persona_choices, place_of, role_ids_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15 * 60  # an interaction token's lifetime
# A mention with only attachments: the model is asked about them.
DESCRIBE_ATTACHMENTS = "Describe what is attached."
# Members' messages, not system messages (pins, joins, thread notices), are questions.
QUESTION_TYPES = (discord.MessageType.default, discord.MessageType.reply)
PRESET_CHOICES = [app_commands.Choice(name=p.description, value=p.name) for p in PRESETS.values()]


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
        image="An image for the model to look at (PNG, JPEG, WebP or GIF)",
        file="A file to ask about: text, Markdown, code, CSV, JSON or PDF",
        preset="A preset of options for this question (explicit options still win)",
        format="Answer as JSON",
        schema="A JSON Schema file the answer must follow (implies JSON)",
        model="Use this model instead of the channel's",
        temperature="Creativity from 0 (focused) to 2 (wild)",
        private="Only you see the answer (it is still remembered in the conversation)",
        persona="Answer as this server persona for this question only",
        thread="Answer in a new thread (default: the channel's choice)",
    )
    @app_commands.choices(
        preset=PRESET_CHOICES, format=[app_commands.Choice(name="JSON", value="json")]
    )
    async def ask(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, MAX_PROMPT_CHARS],
        image: discord.Attachment | None = None,
        file: discord.Attachment | None = None,
        preset: str | None = None,
        format: str | None = None,
        schema: discord.Attachment | None = None,
        model: str | None = None,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        private: bool = False,
        persona: app_commands.Range[str, 1, MAX_NAME_CHARS] | None = None,
        thread: bool | None = None,
    ) -> None:
        """Ask the model; the answer streams into this channel."""
        view = StopView(interaction.user.id)
        place = place_of(interaction)
        async with (
            acknowledging(interaction, ephemeral=private) as acknowledged,
            self.bot.quotas.admit(place.member) as ticket,
        ):
            target = await self.bot.router.target(place, persona=persona)
            attached = await read_attachments([image] if image else [], [file] if file else [])
            answer_format: str | dict[str, Any] | None = format
            if schema is not None:
                answer_format = await read_schema(schema)
            await self.bot.manager.ensure_fits(
                attached.documents, model or target.model, target.options.get("num_ctx")
            )
            if attached.images:
                await self.bot.manager.ensure_can_see(model or target.model)
            always = await self.bot.router.answers_in_threads(place)
            channel = interaction.channel
            anchor = AnswerThread(interaction, view)
            if wants_thread(thread, always, private=private, channel=channel):
                channel = await anchor.open(prompt, acknowledged)
                place = in_thread(place, channel)
                target = await self.bot.router.target(place, persona=persona)
                sink: ReplySink = self._thread_sink(channel)
            else:
                sink = interaction_sink(
                    self.bot, interaction, private=private, view=view, acknowledged=acknowledged
                )
            run = self.bot.answer_run(sink)
            run.on_shown = ticket.answered
            view.run = run
            answer = await run.ask(
                question_with_documents(prompt, attached.documents),
                target,
                model=model,
                preset=preset,
                images=attached.images,
                toolset=self.bot.toolset(target, place, channel),
                format=answer_format,
                temperature=temperature,
            )
            await ticket.spent(answer.result, answer.error)
        view.stop()
        await anchor.close()

    @ask.autocomplete("model")
    async def model_autocomplete(
        self, _interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await model_choices(self.bot, current)

    @ask.autocomplete("persona")
    async def persona_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await persona_choices(self.bot, interaction, current)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """With MENTION_CHAT, a mention of the bot or a reply to it is a question."""
        if not self.bot.settings.mention_chat or message.author.bot or self.bot.user is None:
            return
        channel = await channel_of(self.bot, message)
        # In a thread the bot opened, every member's message is a question.
        in_my_thread = opened_by(channel, self.bot.user.id) and message.type in QUESTION_TYPES
        if not in_my_thread and not await self._addressed_to_me(message):
            return
        prompt = message.content.replace(self.bot.user.mention, "").strip()
        prompt = prompt.replace(f"<@!{self.bot.user.id}>", "").strip()
        if not prompt and not message.attachments:
            return
        if self.bot.in_flight.draining:
            await message.reply(RESTARTING, allowed_mentions=NO_MENTIONS, mention_author=False)
            return
        guild_id = message.guild.id if message.guild else None
        author = message.author
        place = Place(
            message.channel.id,
            author.id,
            guild_id,
            role_ids=role_ids_of(author, guild_id),
            manages_server=isinstance(author, discord.Member)
            and author.guild_permissions.manage_guild,
            parent_id=parent_of(channel),
        )
        async with contextlib.AsyncExitStack() as admitted:
            try:
                ticket = await admitted.enter_async_context(self.bot.quotas.admit(place.member))
                target = await self.bot.router.target(place)
                attached = await read_attachments(*split_attachments(message.attachments))
                await self.bot.manager.ensure_fits(
                    attached.documents, target.model, target.options.get("num_ctx")
                )
                if attached.images:
                    await self.bot.manager.ensure_can_see(target.model)
                # A channel that answers in threads opens one on the member's message.
                opened = None
                if can_open_thread(channel) and await self.bot.router.answers_in_threads(place):
                    channel = opened = await open_on(message, prompt or DESCRIBE_ATTACHMENTS)
                    place = in_thread(place, opened)
                    target = await self.bot.router.target(place)
            except OllacordError as exc:
                await message.reply(explain(exc), allowed_mentions=NO_MENTIONS)
                return
            question = prompt[:MAX_PROMPT_CHARS] or DESCRIBE_ATTACHMENTS
            if opened is not None:
                sink: ReplySink = self._thread_sink(opened)
            else:
                sink = ChannelSink.replying(
                    message,
                    self.bot.rate_limits,
                    budget=self.bot.write_budget,
                    live=self.bot.live_replies,
                )
            run = self.bot.answer_run(sink)
            run.on_shown = ticket.answered
            answer = await run.ask(
                question_with_documents(question, attached.documents),
                target,
                images=attached.images,
                toolset=self.bot.toolset(target, place, channel, question=message.id),
            )
            await ticket.spent(answer.result, answer.error)

    def _thread_sink(self, thread: discord.Thread) -> ChannelSink:
        return ChannelSink(
            thread, self.bot.rate_limits, budget=self.bot.write_budget, live=self.bot.live_replies
        )

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
