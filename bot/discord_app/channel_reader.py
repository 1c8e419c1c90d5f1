"""The channel a question was asked in, as the ``read_channel`` tool reads it."""

from __future__ import annotations

import logging

import discord

from bot.core.tools.registry import ChannelMessage, ToolError

log = logging.getLogger(__name__)


class DiscordChannelReader:
    """Implements ``bot.core.tools.registry.ChannelReader`` over a Discord channel."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        can_read_content: bool,  # without the Message Content intent, contents are empty
        exclude_message_id: int | None = None,  # the question's own message
    ) -> None:
        self._channel = channel
        self._can_read_content = can_read_content
        self._exclude = exclude_message_id

    async def recent_messages(self, limit: int) -> list[ChannelMessage]:
        """The last ``limit`` messages, oldest first."""
        if not self._can_read_content or limit <= 0:
            return []
        # One more, in case the question itself is among them.
        fetch = limit + (1 if self._exclude is not None else 0)
        try:
            newest_first = [
                message
                async for message in self._channel.history(limit=fetch)
                if message.id != self._exclude
            ]
        except discord.Forbidden as exc:
            log.info("cannot read the history of %s: %s", self._channel, exc)
            raise ToolError("the bot is not allowed to read this channel's history") from exc
        except discord.HTTPException as exc:
            log.warning("reading the history of %s failed: %s", self._channel, exc)
            raise ToolError("Discord did not return this channel's messages; try later") from exc
        return [
            ChannelMessage(m.author.display_name, m.clean_content, m.created_at)
            for m in reversed(newest_first[:limit])
        ]
