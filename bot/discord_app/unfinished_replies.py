"""Ending, on start, the replies a crash left unfinished: no cursor, no Stop button, a notice.

``bot.discord_app.live_replies`` recorded them while they were written. Each one's last message is
fetched and edited: through the interaction's webhook while its token lasts (15 minutes;
the only way for a private reply), else through the channel (public replies only).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import discord

from bot.core.errors import StorageError
from bot.discord_app.replies import NO_MENTIONS
from bot.presentation.splitting import DISCORD_MESSAGE_LIMIT
from bot.presentation.streaming import CURSOR
from bot.storage.live_replies import LiveReplyRecord, LiveReplyStore
from bot.storage.models import utcnow

log = logging.getLogger(__name__)

CRASH_NOTICE = "⚠️ Interrupted by a restart; ask again."
TOKEN_LIFETIME = timedelta(minutes=15)


class UnfinishableError(Exception):
    """Why a recorded reply cannot be ended."""


def ended(content: str) -> str:
    """The message without its cursor, with the notice (shortened to fit if need be)."""
    text = content.removesuffix(CURSOR.strip()).rstrip()
    room = DISCORD_MESSAGE_LIMIT - len(CRASH_NOTICE) - 2
    if len(text) > room:
        text = text[: room - 1] + "…"
    return f"{text}\n\n{CRASH_NOTICE}" if text else CRASH_NOTICE


async def finish_unfinished(
    client: discord.Client, records: list[LiveReplyRecord], store: LiveReplyStore
) -> None:
    """End every reply in ``records``, then forget them all: one that cannot be ended (its
    message deleted, its token expired) is logged in one line and dropped."""
    if not records:
        return
    finished = complete = 0
    for record in records:
        try:
            if await _finish(client, record):
                finished += 1
            else:
                complete += 1
        except Exception as exc:  # one reply must not keep the others unfinished
            log.info(
                "could not finish an interrupted reply (message %d in channel %d): %s",
                record.message_ids[-1],
                record.channel_id,
                _why(exc),
            )
    try:
        await store.apply([], [record.id for record in records])
    except StorageError:
        return  # logged; tried again at the next start
    interrupted = len(records) - complete
    log.info("ended %d of %d replies a restart had interrupted", finished, interrupted)
    if complete:
        log.info("%d recorded replies had finished before the restart: left as they are", complete)


def shown_whole(message: discord.Message) -> bool:
    """Whether a reply's last message is already final: no cursor and no Stop button. A
    reply completes on screen before the record of it is forgotten (``LiveReplies``
    batches that), so a crash in between leaves a finished answer recorded."""
    return not message.components and not message.content.rstrip().endswith(CURSOR.strip())


async def _finish(client: discord.Client, record: LiveReplyRecord) -> bool:
    """End one reply; False if it had finished after all (nothing to end)."""
    message_id = record.message_ids[-1]
    token = record.interaction_token
    if token and client.application_id and utcnow() - record.started_at < TOKEN_LIFETIME:
        webhook = discord.Webhook.partial(client.application_id, token, client=client)
        try:
            message = await webhook.fetch_message(message_id)
            if shown_whole(message):
                return False
            await webhook.edit_message(
                message_id, content=ended(message.content), view=None, allowed_mentions=NO_MENTIONS
            )
            return True
        except discord.HTTPException as exc:
            # 401: the token expired after all; a public reply can still be edited below.
            if record.ephemeral or exc.status not in (401, 404):
                raise
    if record.ephemeral:
        raise UnfinishableError("a private reply can only be edited while its token lasts")
    channel = client.get_partial_messageable(record.channel_id)
    message = await channel.fetch_message(message_id)
    if shown_whole(message):
        return False
    await message.edit(content=ended(message.content), view=None, allowed_mentions=NO_MENTIONS)
    return True


def _why(exc: Exception) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"{exc.status} {exc.text or exc.response.reason}"
    if isinstance(exc, UnfinishableError):
        return str(exc)
    return repr(exc)
