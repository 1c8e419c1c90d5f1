"""/kb: the server's knowledge base. Members list and search it; adding, removing and
re-embedding documents need Manage Server, checked here. Every reply is private."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.documents import MAX_DOCUMENT_BYTES, MAX_PDF_PAGES, Document
from bot.core.errors import AttachmentError, InvalidRequestError
from bot.core.knowledge.base import MAX_DOCUMENT_CHARS, MAX_NAME_CHARS, KnowledgeBase
from bot.core.knowledge.records import REPLACED, UNCHANGED, AddedDocument, DocumentRecord, Passage
from bot.core.knowledge.sources import label_of
from bot.discord_app.attachments import check_size, read_file
from bot.discord_app.routing import guild_key
from cogs.shared import MAX_AUTOCOMPLETE_CHOICES

if TYPE_CHECKING:
    from bot.discord_app.app import OllacordBot

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
MAX_QUERY_CHARS = 500
MAX_CHANNELS_CHARS = 1000
MAX_SEARCH_RESULTS = 5  # with their excerpts, about what one message holds
MIN_EXCERPT_CHARS = 120
# Progress shows for work of this many passages or more (several seconds of embedding on
# a CPU), edited at most this often: an interaction's edits share one rate limit.
PROGRESS_MIN_PASSAGES = 100
PROGRESS_EDIT_SECONDS = 2.0
_CHANNEL = re.compile(r"<#(\d+)>|(\d{15,21})|#?([^\s,<>#]+)")


def scope_of(interaction: discord.Interaction) -> str:
    if interaction.guild_id is None:  # the group is guild_only; this is for type checkers
        raise InvalidRequestError("Knowledge bases belong to servers.")
    return guild_key(interaction.guild_id)


def channel_ids(text: str, guild: discord.Guild | None) -> list[int]:
    """Channels named by mention (<#id>), id or name, each one of this server's."""
    if guild is None:
        raise InvalidRequestError("I cannot see this server's channels right now; try again.")
    found: list[int] = []
    for mention, raw_id, name in _CHANNEL.findall(text):
        if name:
            channel = discord.utils.get(guild.channels, name=name)
        else:
            channel = guild.get_channel_or_thread(int(mention or raw_id))
        if channel is None:
            shown = name or mention or raw_id
            raise InvalidRequestError(f"There is no channel `{shown}` in this server.")
        found.append(channel.id)
    if not found:
        raise InvalidRequestError("Name the channels as #mentions, separated by spaces.")
    return list(dict.fromkeys(found))


def plural(number: int, thing: str) -> str:
    """ "1 passage", "1,200 passages"."""
    return f"{number:,} {thing}" + ("" if number == 1 else "s")


def where(channels: tuple[int, ...] | None) -> str:
    return "all channels" if channels is None else ", ".join(f"<#{c}>" for c in channels)


def added_text(added: AddedDocument, channels: tuple[int, ...] | None) -> str:
    if added.status == UNCHANGED:
        return (
            f"📚 `{added.name}` is already in the knowledge base with the same content; nothing "
            f"was embedded. It is used in {where(channels)}."
        )
    verb = "Replaced" if added.status == REPLACED else "Added"
    pages = f", {added.pages} pages" if added.pages else ""
    reused = added.chunks - added.embedded
    embedded = f" ({reused:,} reused, already embedded)" if reused else ""
    return (
        f"📚 {verb} `{added.name}`: {plural(added.chunks, 'passage')}{embedded}, "
        f"{added.characters:,} characters{pages}. Used in {where(channels)}."
    )


def list_text(documents: list[DocumentRecord], model: str, *, limit: int) -> str:
    if not documents:
        return (
            "📚 This server's knowledge base is empty. An admin can add documents with `/kb add`."
        )
    chunks = sum(d.chunks for d in documents)
    stale = sum(d.stale for d in documents)
    total = f"**{plural(len(documents), 'document')}**, {plural(chunks, 'passage')}"
    lines = [f"📚 {total}, embedded with `{model}`"]
    if stale:
        lines.append(
            f"⚠️ {plural(stale, 'passage')} embedded with another model than `{model}` "
            "(EMBEDDING_MODEL changed): answers and searches skip them until an admin "
            "runs `/kb reembed`."
        )
    tail = ""
    for shown, document in enumerate(documents):
        pages = f", {document.pages} pages" if document.pages else ""
        waiting = f", ⚠️ {document.stale:,} to re-embed" if document.stale else ""
        line = (
            f"• `{document.name}`: {plural(document.chunks, 'passage')}{pages}{waiting} · "
            f"{where(document.channel_ids)}"
        )
        tail = f"…and {len(documents) - shown} more."
        if len("\n".join([*lines, line, tail])) > limit:
            lines.append(tail)
            break
        lines.append(line)
    return "\n".join(lines)


def search_text(query: str, passages: list[Passage], floor: float) -> str:
    quoted = " ".join(query.split())[:100]
    if not passages:
        return (
            f"📚 Nothing in the knowledge base usable here scores {floor:.2f} or more for "
            f"“{quoted}”: answers get no passage for it."
        )
    head = f"📚 Best passages for “{quoted}”:"
    room = (MAX_MESSAGE_CHARS - len(head)) // len(passages) - 80
    parts = [head]
    for number, passage in enumerate(passages, 1):
        label = label_of(passage.document, passage.page)
        under = f" › {passage.heading}" if passage.heading else ""
        excerpt = " ".join(passage.text.split())
        budget = max(MIN_EXCERPT_CHARS, room - len(label) - len(under))
        if len(excerpt) > budget:
            excerpt = excerpt[: budget - 1].rstrip() + "…"
        parts.append(f"**{number}.** `{passage.score:.2f}` {label}{under}\n> {excerpt}")
    return "\n".join(parts)[:MAX_MESSAGE_CHARS]


class ProgressReply:
    """KnowledgeBase progress, edited into the deferred reply for long work only."""

    def __init__(self, interaction: discord.Interaction, doing: str) -> None:
        self._interaction = interaction
        self._doing = doing
        self._shown_at: float | None = None

    async def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_PASSAGES or done >= total:
            return
        now = time.monotonic()
        if self._shown_at is not None and now - self._shown_at < PROGRESS_EDIT_SECONDS:
            return
        self._shown_at = now
        await self._interaction.edit_original_response(
            content=f"⏳ {self._doing}: {done:,} of {total:,} passages embedded…"
        )


class Knowledge(commands.Cog):
    def __init__(self, bot: OllacordBot) -> None:
        self.bot = bot

    @property
    def base(self) -> KnowledgeBase:
        return self.bot.manager.knowledge

    kb = app_commands.Group(
        name="kb",
        description="This server's knowledge base: documents the bot answers from, with sources",
        guild_only=True,
    )

    @kb.command(name="add")
    @app_commands.describe(
        file="Text, Markdown, source code, CSV, JSON or PDF (up to 10 MB)",
        name="The document's name in answers and lists (default: the file's name)",
        channels="Use it only in these channels (#mentions); default: every channel",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def add(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment,
        name: app_commands.Range[str, 1, MAX_NAME_CHARS] | None = None,
        channels: app_commands.Range[str, 1, MAX_CHANNELS_CHARS] | None = None,
    ) -> None:
        """Add a document to this server's knowledge base (a new version replaces the old)."""
        scope = scope_of(interaction)
        limited = None if channels is None else channel_ids(channels, interaction.guild)
        check_size(file, MAX_DOCUMENT_BYTES)  # refused before anyone waits for it
        await interaction.response.defer(ephemeral=True, thinking=True)
        document = await self._read(file)
        try:
            added = await self.base.add(
                scope,
                name or file.filename,
                document,
                channel_ids=limited,
                added_by=interaction.user.id,
                progress=ProgressReply(interaction, f"Adding `{name or file.filename}`"),
            )
        except AttachmentError as exc:
            if exc.reason != AttachmentError.TOO_LONG:
                raise
            raise InvalidRequestError(exc.user_message) from exc  # not /summarize's advice
        shown = None if limited is None else tuple(sorted(set(limited)))
        await interaction.edit_original_response(content=added_text(added, shown))

    @staticmethod
    async def _read(file: discord.Attachment) -> Document:
        try:
            return await read_file(file, MAX_DOCUMENT_CHARS)
        except AttachmentError as exc:
            if exc.reason != AttachmentError.TOO_LONG:
                raise
            raise InvalidRequestError(
                f"`{file.filename}` is too long for the knowledge base: a document can have at "
                f"most {MAX_DOCUMENT_CHARS:,} characters of text, or {MAX_PDF_PAGES} pages. "
                "Split it into smaller documents."
            ) from exc

    @kb.command(name="list")
    async def list_documents(self, interaction: discord.Interaction) -> None:
        """List the documents of this server's knowledge base."""
        documents = await self.base.list(scope_of(interaction))
        text = list_text(documents, self.base.model, limit=MAX_MESSAGE_CHARS)
        await interaction.response.send_message(text, ephemeral=True)

    @kb.command(name="remove")
    @app_commands.describe(name="The document to remove, with its passages and vectors")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def remove(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, MAX_NAME_CHARS]
    ) -> None:
        """Remove a document from this server's knowledge base."""
        chunks = await self.base.remove(scope_of(interaction), name)
        await interaction.response.send_message(
            f"🗑️ Removed `{' '.join(name.split())}` and its {plural(chunks, 'passage')}.",
            ephemeral=True,
        )

    @remove.autocomplete("name")
    async def name_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if not interaction.permissions.manage_guild or interaction.guild_id is None:
            return []
        try:
            documents = await self.base.list(scope_of(interaction))
        except Exception:  # autocomplete must answer quickly whatever happens
            log.debug("document autocomplete failed", exc_info=True)
            return []
        needle = current.lower()
        names = [d.name for d in documents if needle in d.name.lower()]
        return [app_commands.Choice(name=n[:100], value=n) for n in names if len(n) <= 100][
            :MAX_AUTOCOMPLETE_CHOICES
        ]

    @kb.command(name="search")
    @app_commands.describe(
        query="What to look for, in your own words",
        count=f"How many passages to show (1 to {MAX_SEARCH_RESULTS})",
    )
    async def search(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, MAX_QUERY_CHARS],
        count: app_commands.Range[int, 1, MAX_SEARCH_RESULTS] = MAX_SEARCH_RESULTS,
    ) -> None:
        """Search this server's knowledge base: the passages an answer here would get."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        passages = await self.base.search(
            scope_of(interaction), query, channel_id=interaction.channel_id, k=count
        )
        text = search_text(query, passages, self.base.min_score)
        await interaction.edit_original_response(content=text)

    @kb.command(name="reembed")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reembed(self, interaction: discord.Interaction) -> None:
        """Re-embed the passages left by a change of EMBEDDING_MODEL, so answers use them."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        model = self.base.model
        done = await self.base.reembed(
            scope_of(interaction), ProgressReply(interaction, f"Re-embedding with `{model}`")
        )
        if done:
            text = (
                f"📚 Re-embedded {plural(done, 'passage')} with `{model}`: answers use them again."
            )
        else:
            text = f"📚 Nothing to re-embed: every passage is embedded with `{model}`."
        await interaction.edit_original_response(content=text)


async def setup(bot: OllacordBot) -> None:
    await bot.add_cog(Knowledge(bot))
