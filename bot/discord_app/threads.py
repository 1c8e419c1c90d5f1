"""Answers in threads: naming a thread after its question, opening one on a message, telling
the bot's own threads from others, and the reply sink that writes into a thread.

A thread the bot opened (``owner_id`` is the bot) is a conversation with the bot: members'
messages there are questions without a mention (mention chat reads them). In threads anyone
else opened, the bot answers only when mentioned or replied to, as in a channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import unicodedata

import discord

from bot.core.errors import InvalidRequestError
from bot.discord_app.replies import NO_MENTIONS, WRITTEN
from bot.discord_app.routing import Place

log = logging.getLogger(__name__)

MAX_THREAD_NAME_CHARS = 100  # Discord's limit on a channel's name
THREAD_ARCHIVE_MINUTES = 1440  # quiet for a day: Discord archives it (a message reopens it)
UNNAMED_THREAD = "A question"
# Mention syntax of users, roles and channels, and the two mass mentions: a thread's name
# shows them as raw text (names never ping), so they are left out of it.
_MENTIONS = re.compile(r"<(?:@[!&]?|#)\d+>|@(?:everyone|here)\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
CANNOT_OPEN = (
    "I can't open a thread here: I need the Create Public Threads and Send Messages in "
    "Threads permissions in this channel (or ask without `thread`)."
)
PRIVATE_THREAD = (
    "A private answer can't go to a thread: everyone in the channel can read threads. Ask "
    "with `private` or with `thread`, not both."
)
NO_THREADS_HERE = "Threads can only be opened in a server's text channels: ask without `thread`."


def thread_name(question: str) -> str:
    """A thread's name from its question: one line, no mentions, at most 100 characters
    (cut at a word where one is near the end)."""
    # Format characters (zero-width, bidirectional controls, soft hyphens) go first: one
    # inside "<@id>" would hide it from the pattern and leave it in the name.
    visible = "".join(c for c in question if unicodedata.category(c) != "Cf")
    text = _SPACES.sub(" ", _MENTIONS.sub(" ", visible)).strip()
    text = text.strip("`*_~|>#- ").strip() or UNNAMED_THREAD
    if len(text) <= MAX_THREAD_NAME_CHARS:
        return text
    cut = text[: MAX_THREAD_NAME_CHARS - 1]
    head, space, _ = cut.rpartition(" ")
    if space and len(head) >= MAX_THREAD_NAME_CHARS // 2:
        cut = head
    return cut.rstrip(" ,;:.-") + "…"


def parent_of(channel: object) -> int | None:
    """The channel a thread belongs to (whose settings it uses); None for anything else."""
    return channel.parent_id if isinstance(channel, discord.Thread) else None


def opened_by(channel: object, user_id: int) -> bool:
    """Whether ``channel`` is a thread ``user_id`` opened."""
    return isinstance(channel, discord.Thread) and channel.owner_id == user_id


def can_open_thread(channel: object) -> bool:
    """Whether a question asked in ``channel`` can get a thread of its own: in a server's
    text or announcement channel, not in a thread, a forum, a voice chat or a DM."""
    return isinstance(channel, discord.TextChannel)


async def channel_of(client: discord.Client, message: discord.Message) -> object:
    """The message's channel as a full object. discord.py drops archived threads from its
    cache, so a message that reopens one may come with only the thread's id (when Discord's
    THREAD_UPDATE has not come first): the thread is then fetched, to know whose it is."""
    channel = message.channel
    if message.guild is None or not isinstance(channel, discord.PartialMessageable):
        return channel
    try:
        return await client.fetch_channel(channel.id)
    except discord.HTTPException as exc:
        log.debug("could not fetch channel %s: %s", channel.id, exc)
        return channel


async def open_on(message: discord.Message, question: str) -> discord.Thread:
    """A public thread on ``message``, named after ``question``; a refusal from Discord
    (missing permissions, a message that has one already) is ours to explain."""
    try:
        return await message.create_thread(
            name=thread_name(question), auto_archive_duration=THREAD_ARCHIVE_MINUTES
        )
    except discord.HTTPException as exc:
        log.info("could not open a thread in channel %s: %s", message.channel.id, exc)
        raise InvalidRequestError(CANNOT_OPEN) from exc


class AnswerThread:
    """An /ask answered in a thread: the interaction's response is the question's anchor in
    the channel ("🧵 Answering in <thread>", with the Stop button); the thread opens on it."""

    OPENING = "🧵 Opening a thread for the answer…"

    def __init__(self, interaction: discord.Interaction, view: discord.ui.View) -> None:
        self._interaction = interaction
        self._view = view
        self.thread: discord.Thread | None = None

    async def open(self, question: str, acknowledged: asyncio.Future[object]) -> discord.Thread:
        if not acknowledged.done():
            await asyncio.shield(acknowledged)
        anchor = await self._interaction.edit_original_response(
            content=self.OPENING, allowed_mentions=NO_MENTIONS
        )
        self.thread = await open_on(anchor, question)
        # From here the anchor is ours to keep: an error later is said in the thread.
        self._interaction.extras[WRITTEN] = True
        await self._interaction.edit_original_response(
            content=f"🧵 Answering in {self.thread.mention}",
            allowed_mentions=NO_MENTIONS,
            view=self._view,
        )
        return self.thread

    async def close(self) -> None:
        """The anchor loses its Stop button once the answer is over (the interaction's token
        may have expired by then: the button then stays, inert)."""
        if self.thread is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await self._interaction.edit_original_response(
                content=f"🧵 Answered in {self.thread.mention}",
                allowed_mentions=NO_MENTIONS,
                view=None,
            )


def in_thread(place: Place, thread: discord.Thread) -> Place:
    """Where a question is once its answer moved to ``thread``."""
    return dataclasses.replace(place, channel_id=thread.id, parent_id=thread.parent_id)


def wants_thread(asked: bool | None, always: bool, *, private: bool, channel: object) -> bool:
    """Whether an /ask answer opens a thread: ``asked`` (the thread option; None: the
    channel's choice, ``always``). Asked in a thread, the answer stays there; a private
    answer never goes to a thread (everyone could read it there), so asking for both is
    refused, as is a thread where none can be opened."""
    if isinstance(channel, discord.Thread) or asked is False:
        return False
    if asked is None:
        return always and not private and can_open_thread(channel)
    if private:
        raise InvalidRequestError(PRIVATE_THREAD)
    if not can_open_thread(channel):
        raise InvalidRequestError(NO_THREADS_HERE)
    return True
