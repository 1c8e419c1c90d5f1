"""A local Discord (REST + gateway) that the unmodified discord.py client talks to.

Usage::

    async with DiscordEmulator() as emu:
        guild = emu.add_guild()
        channel = emu.add_channel(guild.id)
        with emu.patch_discord():
            task = asyncio.create_task(bot.start(emu.token))
            await emu.wait_ready()
            rec = await emu.invoke_slash(
                "ask", user_id=alice.id, channel_id=channel.id, guild_id=guild.id
            )
            await rec.wait_done()
            await bot.close()

Shards: ``add_guild(name, shard=(k, n))`` makes a guild whose events go to shard k of n;
each session gets only its shard's guilds (and shard 0 the DMs), see discord_shards.
``identify_interval`` turns on Discord's IDENTIFY rate limit (op 9 when exceeded).

Files: pass ``Upload("cat.png", png_bytes(4, 4))`` as a slash option value
(``options={"image": upload}``) or in ``send_user_message(..., attachments=[upload])``;
the emulator serves the bytes at the attachment's signed ``url`` and records each
download in ``emu.cdn_fetches`` (see discord_attachments for misbehaving uploads).

discord.py fires ``on_ready`` ``guild_ready_timeout`` (default 2 s) after the last
GUILD_CREATE: build test bots with ``guild_ready_timeout=0.05`` to keep tests fast.
Interactions may be invoked as soon as ``wait_ready()`` returns.

Modules: discord_state (dataclasses), discord_world (registry, payloads),
discord_messages (bodies, limits, mentions), discord_ratelimit, discord_rest
(pipeline, bot routes), discord_commands (sync checks), discord_interactions
(callback, webhook routes), discord_gateway, discord_driver (invoking interactions),
discord_options (slash command data), discord_posting (members' messages and files),
discord_attachments (attachment objects, Upload, signed links), discord_cdn (serving
files, recording fetches), discord_shards (routing by shard, IDENTIFY limits),
discord_threads (threads: starting, posting, archiving; ``start_member_thread``,
``archive_thread``, ``threads_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Self

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from .discord_attachments import AUTO, Attachment, Upload, png_bytes
from .discord_cdn import CdnFetch
from .discord_driver import InteractionDriver
from .discord_gateway import Gateway
from .discord_interactions import InteractionApi
from .discord_posting import MemberActions
from .discord_ratelimit import GLOBAL_LIMIT, ForcedLimit
from .discord_rest import RestApi, RestConfig
from .discord_shards import MAX_GUILDS_PER_SHARD, ShardRules
from .discord_state import (
    ALL_PERMISSIONS,
    BOT_PERMISSIONS,
    DEFAULT_PERMISSIONS,
    PRIVILEGED_INTENTS,
    Channel,
    Guild,
    InteractionRecord,
    Message,
    Permission,
    RecordedCall,
    User,
)
from .discord_threads import ThreadActions, ThreadApi, Threads
from .discord_world import World

__all__ = [
    "ALL_PERMISSIONS",
    "AUTO",
    "BOT_PERMISSIONS",
    "DEFAULT_PERMISSIONS",
    "Attachment",
    "CdnFetch",
    "Channel",
    "DiscordEmulator",
    "Guild",
    "InteractionRecord",
    "Message",
    "Permission",
    "RecordedCall",
    "Upload",
    "User",
    "png_bytes",
]


class DiscordEmulator(InteractionDriver, ThreadActions, MemberActions):
    # Random-looking, so that finding it in a log (tests/security/log_audit.py) means a leak.
    token: str = "MTk4NzY1NDMyMTA5ODc2NTQz.e2eBot.qT7vKx2LmN9pRw4ZsY8hJd3F"

    def __init__(
        self,
        *,
        edit_limit: int = 5,
        edit_window: float = 2.0,
        ack_deadline: float = 3.0,
        heartbeat_interval_ms: int = 41250,
        token_ttl: float = 15 * 60,
        allowed_privileged_intents: int = PRIVILEGED_INTENTS,
        bot_name: str = "Ollacord",
        global_limit: int | None = GLOBAL_LIMIT,
        identify_interval: float = 0.0,
        max_concurrency: int = 1,
        max_guilds_per_shard: int = MAX_GUILDS_PER_SHARD,
        recommended_shards: int | None = None,
    ) -> None:
        self.world = World(bot_name)
        rules = ShardRules(
            identify_interval=identify_interval,
            max_concurrency=max_concurrency,
            max_guilds_per_shard=max_guilds_per_shard,
            recommended_shards=recommended_shards,
        )
        self.gateway = Gateway(
            self.world,
            token=self.token,
            heartbeat_interval_ms=heartbeat_interval_ms,
            allowed_privileged_intents=allowed_privileged_intents,
            shard_rules=rules,
        )
        self.rest = RestApi(
            self.world,
            self.gateway,
            RestConfig(
                token=self.token,
                edit_limit=edit_limit,
                edit_window=edit_window,
                ack_deadline=ack_deadline,
                token_ttl=token_ttl,
            ),
        )
        self.rest.limiter.global_limit = global_limit
        InteractionApi(self.rest)
        self.threads = Threads(self.world, self.gateway)
        ThreadApi(self.rest, self.threads)
        self.api_base = ""
        self.gateway_url = ""
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    # ----- lifecycle --------------------------------------------------------

    @property
    def application_id(self) -> int:
        return self.world.application_id

    @property
    def bot_user_id(self) -> int:
        return self.world.bot_user.id

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self.rest.handle)
        app.router.add_get("/gateway", self.gateway.handle)
        self.rest.cdn.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.api_base = f"{self.base_url}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway"
        self.gateway.url = self.gateway_url
        self.world.rebase_attachments(self.base_url)

    async def stop(self) -> None:
        """Shut down; raises if a request hit a bug in the emulator itself."""
        await self.gateway.close_all()
        self.rest.cdn.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.rest.internal_errors:
            first = self.rest.internal_errors[0]
            raise RuntimeError(
                f"the emulator failed on {len(self.rest.internal_errors)} request(s)"
            ) from first

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py at the emulator. Both are class attributes read at use:
        Route.BASE when a Route is built, DEFAULT_GATEWAY on the first connect and
        after an invalidated session. discord.py never calls _set_api_version itself."""
        if not self.api_base:
            raise RuntimeError("start the emulator before patching discord.py")
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    async def wait_ready(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Until a client identified and was sent READY and every GUILD_CREATE.
        (discord.py fires on_ready guild_ready_timeout seconds later.)"""
        await asyncio.wait_for(self.gateway.ready.wait(), timeout)

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until ``predicate()`` holds; re-checked whenever anything changes."""
        await self.world.notifier.wait_for(predicate, timeout)

    # ----- world ------------------------------------------------------------

    def add_guild(self, name: str = "Test Guild", *, shard: tuple[int, int] | None = None) -> Guild:
        """``shard=(k, n)``: the guild's events go to shard k when the bot runs n shards."""
        guild = self.world.add_guild(name, shard=shard)
        if self.gateway.ready.is_set():
            self.gateway.dispatch(
                "GUILD_CREATE", self.world.guild_payload(guild, gateway=True, members=False)
            )
        return guild

    def add_channel(self, guild_id: int, name: str = "general", *, type: int = 0) -> Channel:
        channel = self.world.add_channel(guild_id, name, type=type)
        self.gateway.dispatch("CHANNEL_CREATE", self.world.channel_payload(channel), intent=1)
        return channel

    def add_user(self, name: str, *, bot: bool = False) -> User:
        return self.world.add_user(name, bot=bot)

    def add_member(
        self, guild_id: int, user_id: int, *, permissions: int = DEFAULT_PERMISSIONS
    ) -> None:
        self.world.add_member(guild_id, user_id, permissions=permissions)

    def dm_channel(self, user_id: int) -> Channel:
        return self.world.dm_channel(user_id)

    def set_bot_permissions(self, channel_id: int, permissions: int) -> None:
        channel = self.world.channels[channel_id]
        channel.bot_permissions = permissions
        self.gateway.dispatch("CHANNEL_UPDATE", self.world.channel_payload(channel), intent=1)

    def channel_messages(self, channel_id: int, *, include_deleted: bool = False) -> list[Message]:
        """Oldest first, ephemeral ones included."""
        msgs = [self.world.messages[m] for m in self.world.channels[channel_id].message_ids]
        return [m for m in msgs if include_deleted or not m.deleted]

    def message(self, message_id: int) -> Message:
        return self.world.messages[message_id]

    # ----- recording and faults --------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        return self.rest.calls

    def count_429(self) -> int:
        return sum(1 for c in self.rest.calls if c.status == 429)

    def force_429(self, count: int, *, retry_after: float = 0.3, route_contains: str = "") -> None:
        """The next ``count`` REST calls whose path contains ``route_contains`` get a
        429 (not performed). Interaction callbacks only when named explicitly."""
        self.rest.limiter.forced.append(ForcedLimit(count, retry_after, route_contains))

    @property
    def command_syncs(self) -> list[RecordedCall]:
        return [c for c in self.rest.calls if c.method == "PUT" and c.route.endswith("/commands")]

    @property
    def registered_commands(self) -> dict[int | None, list[dict[str, Any]]]:
        return self.world.registered_commands

    @property
    def typing(self) -> list[tuple[float, int]]:
        return self.rest.typing

    @property
    def resumes(self) -> int:
        return self.gateway.resumes

    @property
    def identifies(self) -> int:
        return self.gateway.identifies

    @property
    def interactions(self) -> list[InteractionRecord]:
        return list(self.world.interactions.values())

    async def request_reconnect(self, *, wait: bool = True, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Send op 7; by default wait until the client RESUMEd."""
        before = self.gateway.resumes
        asked = self.gateway.request_reconnect()
        if asked == 0:
            raise RuntimeError("no connected gateway session to reconnect")
        if wait:
            await self.wait_for(lambda: self.gateway.resumes >= before + asked, timeout)

    async def wait_resumed(self, count: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: self.gateway.resumes >= count, timeout)


@contextlib.asynccontextmanager
async def running_client(
    client: discord.Client, token: str, *, ready_timeout: float = 15.0
) -> AsyncIterator[discord.Client]:
    """Start ``client`` (already pointed at an emulator), yield once it is READY, close it.

    A login or connection failure surfaces as its own exception instead of a timeout.
    """
    task = asyncio.create_task(client.start(token))
    try:
        ready = asyncio.ensure_future(client.wait_until_ready())
        done, _ = await asyncio.wait(
            {task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()
            raise TimeoutError("the client did not become ready")
        yield client
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
