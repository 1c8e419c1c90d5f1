"""/summarize: an attached text or PDF file, pasted text, or the channel's recent messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.documents import MAX_DOCUMENT_BYTES, MAX_PDF_PAGES
from bot.core.errors import AttachmentError, InvalidRequestError
from bot.discord_app.attachments import check_size, read_file
from bot.presentation.summarizing import MAX_TRANSCRIPT_CHARS, STYLES, Summarizer, SummaryRequest
from cogs.shared import interaction_sink, model_choices, place_of

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

DEFAULT_HISTORY_MESSAGES = 50
MAX_HISTORY_MESSAGES = 1000
MAX_PASTED_CHARS = 6000


def transcript_line(message: discord.Message) -> str | None:
    text = message.clean_content.strip()
    if message.attachments:
        text = " ".join([text, *(f"[attachment: {a.filename}]" for a in message.attachments)])
    if not text.strip():
        return None
    when = message.created_at.strftime("%Y-%m-%d %H:%M")
    return f"[{when}] {message.author.display_name}: {text.strip()}"


class Summarize(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot
        self.summarizer = Summarizer(bot.manager)

    @app_commands.command(name="summarize")
    @app_commands.describe(
        file="A text or PDF file to summarize (up to 10 MB)",
        text="Text to summarize",
        messages="Summarize this channel's last N messages (the default, with 50)",
        style="What kind of summary",
        model="Use this model instead of the channel's",
        private="Only you see the summary",
    )
    @app_commands.choices(style=[app_commands.Choice(name=s, value=s) for s in STYLES])
    async def summarize(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment | None = None,
        text: app_commands.Range[str, 1, MAX_PASTED_CHARS] | None = None,
        messages: app_commands.Range[int, 1, MAX_HISTORY_MESSAGES] | None = None,
        style: str = "brief",
        model: str | None = None,
        private: bool = False,
    ) -> None:
        """Summarize a file, some text, or the recent conversation in this channel."""
        given = sum(x is not None for x in (file, text, messages))
        if given > 1:
            raise InvalidRequestError("Give only one of `file`, `text` or `messages`.")
        if file is not None:
            check_size(file, MAX_DOCUMENT_BYTES)  # refused before anyone sees "thinking…"
        if given == 0:
            messages = DEFAULT_HISTORY_MESSAGES
        if messages is not None:
            self._check_can_read_history(interaction)
        await interaction.response.defer(ephemeral=private, thinking=True)
        if file is not None:
            transcript, source = await self._document(file), "document"
        elif text is not None:
            transcript, source = text, "text"
        else:
            transcript = await self._history(interaction, messages or DEFAULT_HISTORY_MESSAGES)
            source = "chat conversation"
        place = place_of(interaction)
        async with self.bot.quotas.admit(place.member) as ticket:
            target = await self.bot.router.target(place)
            sink = interaction_sink(self.bot, interaction, private=private)
            run = self.bot.answer_run(sink)
            request = SummaryRequest(
                transcript, style, model or target.model, source, target.options.get("num_ctx")
            )
            answer = await self.summarizer.summarize(request, run)
            await ticket.spent(answer.result, answer.error)

    @summarize.autocomplete("model")
    async def model_autocomplete(
        self, _interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await model_choices(self.bot, current)

    @staticmethod
    async def _document(file: discord.Attachment) -> str:
        """The file's text (a PDF's page by page); one too long for a question is split
        into parts by the summarizer, up to the limit of what is read at all."""
        try:
            return (await read_file(file, MAX_TRANSCRIPT_CHARS)).text
        except AttachmentError as exc:
            if exc.reason != AttachmentError.TOO_LONG:
                raise
            # Its own wording would send the user back here, to /summarize.
            raise InvalidRequestError(
                f"`{file.filename}` is too long to summarize: files can have at most "
                f"{MAX_TRANSCRIPT_CHARS:,} characters of text, or {MAX_PDF_PAGES} pages. "
                "Split it and summarize each part."
            ) from exc

    def _check_can_read_history(self, interaction: discord.Interaction) -> None:
        if not self.bot.settings.wants_message_content:
            raise InvalidRequestError(
                "Summarizing channel history needs the Message Content intent, which this bot "
                "does not use. An admin can enable it (MESSAGE_CONTENT_INTENT=true and the "
                "switch in Discord's developer portal); meanwhile, attach a file or paste text."
            )
        permissions = interaction.app_permissions
        if not (permissions.read_message_history and permissions.view_channel):
            raise InvalidRequestError(
                "I need the **Read Message History** permission in this channel to summarize "
                "it. Ask an admin to grant it, or attach a file or paste text instead."
            )

    async def _history(self, interaction: discord.Interaction, limit: int) -> str:
        channel = interaction.channel
        if channel is None or not hasattr(channel, "history"):
            raise InvalidRequestError("I can't read the history of this channel.")
        # Only what was there when the command was run: our own "thinking…" reply (public
        # unless private) would otherwise take one of the ``limit`` places.
        lines = [
            line
            async for message in channel.history(limit=limit, before=discord.Object(interaction.id))
            if (line := transcript_line(message)) is not None
        ]
        if not lines:
            raise InvalidRequestError("There are no messages here that I can read.")
        return "\n".join(reversed(lines))


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Summarize(bot))
