"""create_bot(settings): the discord.py bot, its shared services, extensions and error handling."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.core.config import Settings
from bot.core.errors import OllacordError, StorageError
from bot.core.manager import OllamaRequestManager
from bot.core.quotas import Quotas
from bot.core.tools.mcp_config import McpServerConfig
from bot.core.tools.registry import ToolContext, ToolSet
from bot.core.types import ChatTarget
from bot.discord_app.advice import explain
from bot.discord_app.channel_reader import DiscordChannelReader
from bot.discord_app.command_errors import error_message, send_ephemeral
from bot.discord_app.connection import point_discord_at, reason
from bot.discord_app.live_replies import LiveReplies
from bot.discord_app.rate_limits import GlobalWriteBudget, RateLimitTracker
from bot.discord_app.routing import ConversationRouter, Place
from bot.discord_app.unfinished_replies import finish_unfinished
from bot.ops.http_api import DiscordStatus, HttpServer, start_http_server
from bot.presentation.answering import AnswerRun
from bot.presentation.shutdown import RESTARTING, InFlight, drain, install_stop_signals
from bot.presentation.streaming import ReplySink
from bot.storage.engine import create_sessionmaker
from bot.storage.live_replies import LiveReplyRecord, LiveReplyStore

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.chat",
    "cogs.summarize",
    "cogs.session",
    "cogs.settings",
    "cogs.models",
    "cogs.admin",
    "cogs.knowledge",
    "cogs.memory",
    "cogs.persona",
    "cogs.quota",
)
COMMAND_HASH_KEY = "command_tree_hash"
# Discord allows one IDENTIFY per 5 s (per bucket of shards); discord.py waits this long
# before every IDENTIFY but the first, and so does the bot unless told otherwise.
IDENTIFY_INTERVAL = 5.0
REMEMBER_TOOL = "remember"  # the members' notes tool (bot.core.memory.notes)
# Gateway close codes that no reconnect can cure: the settings must change.
GATEWAY_REFUSALS = {
    4010: "Discord refused the shards SHARD_COUNT and SHARD_IDS name (close code 4010)",
    4011: "Discord requires sharding: the bot is in more servers than one shard may hold "
    "(2,500); set SHARD_COUNT (see Shards in the README)",
}


class OllacordBot(commands.Bot):
    """The bot; cogs reach the shared services through its typed attributes. Sharded
    (SHARD_COUNT set), create_bot builds its ShardedOllacordBot subclass instead."""

    def __init__(
        self,
        settings: Settings,
        manager: OllamaRequestManager,
        *,
        identify_interval: float = IDENTIFY_INTERVAL,
        **options: Any,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        if settings.wants_message_content:
            intents.guild_messages = intents.dm_messages = True
            intents.message_content = True
        # Mention replies write through channel routes, under Discord's global limit.
        self.write_budget = GlobalWriteBudget()
        self.rate_limits = RateLimitTracker(budget=self.write_budget)
        # The bot never joins voice: discord.py's start-up warnings about voice libraries
        # would only send admins looking for a problem that isn't there.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            http_trace=self.rate_limits.trace_config,
            **options,
        )
        self.settings = settings
        self.manager = manager
        self.identify_interval = identify_interval
        self.router = ConversationRouter(manager)
        self.http_server: HttpServer | None = None  # with HTTP_PORT=0, .port is the bound one
        self.tree.on_error = self.on_app_command_error
        self.tree.interaction_check = self.accepting
        self.in_flight = InFlight()
        # Its store once setup_hook opened the database.
        self.quotas = Quotas(
            None, manager.queue, max_queued_per_member=settings.max_queued_per_member
        )
        self._hurry = asyncio.Event()  # a second stop signal: interrupt answers now
        self._closing_down: asyncio.Future[None] | None = None
        self._stop_requested = False
        self._starting = True  # until setup_hook is through: a stop then waits for it
        self.live_replies: LiveReplies | None = None  # once setup_hook opened the database
        self._unfinished: list[LiveReplyRecord] | None = None  # a crash's, ended when ready
        self._background: set[asyncio.Task[None]] = set()

    async def on_message(self, message: discord.Message, /) -> None:
        """Nothing: the bot has no prefix commands, so messages skip command parsing (which
        took every mention for an unknown command). Cogs' listeners still see each message."""

    async def setup_hook(self) -> None:
        await self.manager.start()
        self.quotas.open(self.manager.services.store)
        await self._open_live_replies()
        if self.settings.http_port is not None:
            self.http_server = await start_http_server(
                self.manager,
                self.discord_status,
                host=self.settings.http_host,
                port=self.settings.http_port,
                admin_token=self.settings.admin_token,
                discord_429=lambda: self.rate_limits.seen_429,
            )
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()
        # A named trick for the hot path: everything loaded so far (discord.py, SQLAlchemy,
        # the ollama client...) lives as long as the process, yet every full collection walked
        # it: a ~60 ms pause that landed in the middle of fifty answers starting together
        # (bench.streaming N=50: first visible p95 181-214 ms before, 123-125 ms after).
        gc.collect()
        gc.freeze()
        self._starting = False
        if self._stop_requested:
            # Asked to stop while starting: closing then would have cut migrations or the
            # command sync in the middle.
            await self.close()

    async def _open_live_replies(self) -> None:
        store = LiveReplyStore(create_sessionmaker(self.manager.services.engine))
        try:
            self._unfinished = await store.all()
        except StorageError:
            self._unfinished = []  # logged; start-up goes on without them
        self.live_replies = LiveReplies(store)
        self.live_replies.start()

    def toolset(
        self,
        target: ChatTarget,
        place: Place,
        channel: object,
        *,
        question: int | None = None,
    ) -> ToolSet:
        """The tools a question in ``channel`` may use: the channel's choice (or the default
        ones), reading the channel only where the bot can read messages, and ``remember``
        where the server has opted in to members' notes (unless the channel has no tools
        at all), storing for the member asking."""
        reader = None
        if isinstance(channel, discord.abc.Messageable):
            reader = DiscordChannelReader(
                channel,
                can_read_content=self.settings.wants_message_content,
                exclude_message_id=question,
            )
        context = ToolContext(
            session_id=target.session_id,
            channel=reader,
            user_id=target.member_id,
            scope=target.member_scope,
        )
        tools = self.manager.tools
        selected = tools.select(target.tools, context)
        remember = tools.get(REMEMBER_TOOL)
        # The server's opt-in is the admin's choice for this tool in every channel; a
        # channel set to no tools keeps none. (Where the server has not opted in, a channel
        # may still list it: the tool then refuses.)
        if remember is None or not target.member_notes or target.tools == ():
            return selected
        return dataclasses.replace(selected, tools={**selected.tools, REMEMBER_TOOL: remember})

    def answer_run(self, sink: ReplySink) -> AnswerRun:
        """An answer the bot's stop waits for (and interrupts if it outlasts the grace)."""
        return AnswerRun(self.manager, sink, in_flight=self.in_flight, explain=explain)

    async def accepting(self, interaction: discord.Interaction) -> bool:
        """Every command's first check: while the bot stops, none starts (buttons still work)."""
        if not self.in_flight.draining:
            return True
        if interaction.type is discord.InteractionType.application_command:
            await send_ephemeral(interaction, RESTARTING)
        return False

    def stop_soon(self, signal_name: str) -> None:
        """SIGTERM or SIGINT: a graceful stop; the same signal again interrupts answers now."""
        if self._stop_requested:
            if not self._hurry.is_set():
                log.info("%s again: interrupting the answers in flight now", signal_name)
                self._hurry.set()
            return
        self._stop_requested = True
        log.info(
            "%s: stopping; answers in flight get up to %g s to finish (%s again: at once)",
            signal_name,
            self.settings.shutdown_grace_seconds,
            signal_name,
        )
        if not self._starting:
            self._closing_down = asyncio.ensure_future(self._close_down())

    async def close(self) -> None:
        """Turn new questions away, let answers in flight finish (up to SHUTDOWN_GRACE_SECONDS),
        interrupt the rest, then disconnect. Later calls wait for the first one."""
        if self._closing_down is None:
            self._closing_down = asyncio.ensure_future(self._close_down())
        await asyncio.shield(self._closing_down)

    async def __aexit__(self, *exc: object) -> None:
        # discord.py's own __aexit__ awaits only its half of close() (the disconnect), and
        # would let run_bot return while ours still releases the manager: asyncio.run then
        # cancelled its database work midway, and SQLAlchemy logged a failed rollback.
        await self.close()

    async def _close_down(self) -> None:
        try:
            # While answers finish, Discord stays connected: they edit, and Stop still works.
            await drain(
                self.in_flight, self.manager, self.settings.shutdown_grace_seconds, self._hurry
            )
            await super().close()
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            if self.http_server is not None:
                await self.http_server.stop()
            if self.live_replies is not None:
                await self.live_replies.close()  # what is still unfinished stays recorded
            await self.manager.close(grace=0)

    def discord_status(self) -> DiscordStatus:
        return DiscordStatus(self.is_ready() and not self.is_closed(), self.latency)

    def shards_in_words(self) -> str | None:
        """This process's shards ("shards 0-1 of 4"); None unsharded."""
        return None

    def process_note(self, guild_id: int | None) -> str | None:
        """Said under /stats when sharded: the numbers are one process's, not the bot's."""
        return None

    async def own_replies(self, records: list[LiveReplyRecord]) -> list[LiveReplyRecord]:
        """The replies a crash interrupted that this process ends: all of them, unless
        other processes serve other shards."""
        return records

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py's own pacing, with the pause an option: tests of several shards in one
        # process would otherwise wait 5 s per shard.
        if not initial:
            await asyncio.sleep(self.identify_interval)

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync the command tree only when it changed since the last sync (hash in the DB)."""
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [c.to_dict(self.tree) for c in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"{COMMAND_HASH_KEY}:{guild.id if guild else 'global'}"
        if not force and await self.manager.state.get(key) == digest:
            log.info("slash commands unchanged; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        await self.manager.state.set(key, digest)
        log.info("synced %d slash commands (%s)", len(synced), key.split(":", 1)[1])
        return True

    async def on_ready(self) -> None:
        shards = self.shards_in_words()
        log.info(
            "connected as %s (%s) to %d servers%s",
            self.user,
            self.user.id if self.user else "?",
            len(self.guilds),
            f" on {shards}" if shards else "",
        )
        if self._unfinished and self.live_replies is not None:
            records, self._unfinished = self._unfinished, None
            task = asyncio.create_task(
                self._finish_unfinished(records, self.live_replies.store), name="unfinished"
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _finish_unfinished(
        self, records: list[LiveReplyRecord], store: LiveReplyStore
    ) -> None:
        await finish_unfinished(self, await self.own_replies(records), store)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The one place errors become ephemeral messages; unexpected ones are logged."""
        message = error_message(interaction, error)
        if message is not None:
            await send_ephemeral(interaction, message)


def create_bot(
    settings: Settings, mcp_servers: Sequence[McpServerConfig] | None = None, **options: Any
) -> OllacordBot:
    """Build the bot and its services, without connecting to anything.

    ``mcp_servers``: MCP_CONFIG's servers, if already read (else it is read here).
    ``options`` go to discord.py's Bot (tests shorten ``guild_ready_timeout``, and
    ``identify_interval``, the pause between a process's IDENTIFYs).
    """
    extra = {} if mcp_servers is None else {"mcp_servers": mcp_servers}
    manager = OllamaRequestManager.from_settings(settings, **extra)
    if settings.shard_count is None:
        # Unsharded stays a plain commands.Bot: one connection, no GET /gateway/bot.
        return OllacordBot(settings, manager, **options)
    from bot.discord_app.shards import ShardedOllacordBot  # it subclasses OllacordBot

    return ShardedOllacordBot(settings, manager, **options)


async def run_bot(settings: Settings, mcp_servers: Sequence[McpServerConfig] | None = None) -> int:
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    bot = create_bot(settings, mcp_servers)
    assert settings.discord_token is not None
    restore_signals = install_stop_signals(bot.stop_soon)
    try:
        async with bot:
            await bot.start(settings.discord_token)
    except aiohttp.ClientConnectorError as exc:
        # No retries here: a supervisor (compose's restart policy, systemd) restarts the bot
        # with its own growing delay and shows the failure, where a loop in here would hide
        # a wrong DISCORD_API_BASE or a missing network. Once connected, discord.py itself
        # reconnects with backoff.
        log.error("cannot reach Discord at %s:%s: %s", exc.host, exc.port, reason(exc.os_error))
        return 1
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN: check the token in .env")
        return 1
    except discord.HTTPException as exc:
        # Discord failing while the bot logs in or syncs its commands (an outage's 503,
        # Cloudflare's 429): the supervisor's restart tries again, as for an unreachable one.
        log.error("Discord answered %d %s while the bot started", exc.status, exc.response.reason)
        return 1
    except AttributeError as exc:
        # discord.py 2.7 cannot retry a first gateway connection that failed: Client.connect
        # then reads the sequence of a websocket it never had. Say why it failed instead.
        cause = exc.__context__
        if bot.ws is not None or not isinstance(cause, aiohttp.ClientError | OSError):
            raise
        log.error("cannot reach Discord's gateway: %s", cause)
        return 1
    except discord.ConnectionClosed as exc:
        if exc.code not in GATEWAY_REFUSALS:
            raise
        log.error("%s", GATEWAY_REFUSALS[exc.code])
        return 1
    except discord.PrivilegedIntentsRequired:
        log.error(
            "MENTION_CHAT/MESSAGE_CONTENT_INTENT need the Message Content intent: enable it "
            "in the Discord developer portal (Bot > Privileged Gateway Intents)"
        )
        return 1
    except OllacordError as exc:
        log.error("%s", exc.user_message)
        return 1
    finally:
        restore_signals()
    return 0
