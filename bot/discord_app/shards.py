"""The bot as one process of several: Discord's sharding (SHARD_COUNT, SHARD_IDS).

Discord sends each server's events, its slash commands included, to one shard only:
``(guild_id >> 22) % SHARD_COUNT``, and direct messages to shard 0. A process connects the
shards SHARD_IDS names (discord.py's AutoShardedBot, one websocket each) and so serves their
servers; every process talks to the same database, and REST (replies, edits) works from any.

create_bot builds this class only when SHARD_COUNT is set: unsharded, the bot stays a plain
commands.Bot with one connection, exactly as before.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord.ext import commands

from bot.core.config import Settings
from bot.core.manager import OllamaRequestManager
from bot.core.sharding import describe, shard_of
from bot.discord_app.app import OllacordBot
from bot.ops.http_api import DiscordStatus, ShardStatus
from bot.storage.live_replies import LiveReplyRecord

log = logging.getLogger(__name__)

# Shard 0 gets the direct messages; its process also takes the interrupted replies whose
# channel no process can see any more, so that someone drops them.
DM_SHARD = 0


class ShardedOllacordBot(OllacordBot, commands.AutoShardedBot):
    """OllacordBot over the shards of this process (settings.shards of settings.shard_count)."""

    def __init__(self, settings: Settings, manager: OllamaRequestManager, **options: Any) -> None:
        if settings.shard_count is None:
            raise ValueError("ShardedOllacordBot needs SHARD_COUNT")
        super().__init__(
            settings,
            manager,
            shard_count=settings.shard_count,
            shard_ids=list(settings.shards),
            **options,
        )
        self.process_shards: tuple[int, ...] = settings.shards
        self.total_shards: int = settings.shard_count

    # ----- state ---------------------------------------------------------------------

    def discord_status(self) -> DiscordStatus:
        """Each of this process's shards, connected or not; the bot is up when all are."""
        launched = self.shards
        shards = tuple(
            ShardStatus(
                shard_id,
                shard_id in launched and not launched[shard_id].is_closed(),
                launched[shard_id].latency if shard_id in launched else None,
            )
            for shard_id in self.process_shards
        )
        connected = self.is_ready() and not self.is_closed() and all(s.connected for s in shards)
        return DiscordStatus(connected, self.latency, self.total_shards, shards)

    def shards_in_words(self) -> str:
        return describe(self.process_shards, self.total_shards)

    def serves(self, guild_id: int | None) -> bool:
        """Whether Discord sends this process the events of ``guild_id`` (None: a DM)."""
        shard = DM_SHARD if guild_id is None else shard_of(guild_id, self.total_shards)
        return shard in self.process_shards

    def process_note(self, guild_id: int | None) -> str:
        shard = DM_SHARD if guild_id is None else shard_of(guild_id, self.total_shards)
        return (
            f"This server is on shard {shard}; the process serving {self.shards_in_words()} "
            "answered, and these numbers are that process's alone."
        )

    # ----- interrupted replies ---------------------------------------------------------

    async def own_replies(self, records: list[LiveReplyRecord]) -> list[LiveReplyRecord]:
        """Only the replies in this process's servers: another process may be writing the
        others right now (they are all in one database), or will end them itself."""
        mine = [record for record in records if await self._serves_channel(record.channel_id)]
        if len(mine) < len(records):
            log.info(
                "left %d interrupted replies to the processes of other shards",
                len(records) - len(mine),
            )
        return mine

    async def _serves_channel(self, channel_id: int) -> bool:
        # Once ready, the cache holds every channel of this process's servers (and the DMs
        # it was sent, which are shard 0's).
        if self.get_channel(channel_id) is not None:
            return True
        try:
            channel = await self.fetch_channel(channel_id)
        except discord.HTTPException:
            return DM_SHARD in self.process_shards  # gone or out of reach
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            return self.serves(channel.guild.id)
        return self.serves(None)

    # ----- logs ------------------------------------------------------------------------

    async def on_shard_connect(self, shard_id: int) -> None:
        log.info("shard %d of %d connected", shard_id, self.total_shards)

    async def on_shard_ready(self, shard_id: int) -> None:
        servers = sum(1 for guild in self.guilds if guild.shard_id == shard_id)
        log.info("shard %d of %d ready with %d servers", shard_id, self.total_shards, servers)

    async def on_shard_resumed(self, shard_id: int) -> None:
        log.info("shard %d of %d resumed", shard_id, self.total_shards)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        if not self.is_closed():  # a stop closes every shard on purpose
            log.warning(
                "shard %d of %d disconnected; discord.py reconnects it", shard_id, self.total_shards
            )
