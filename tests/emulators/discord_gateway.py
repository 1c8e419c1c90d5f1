"""The gateway websocket: HELLO, IDENTIFY/READY/GUILD_CREATE, heartbeats, RESUME with
replay of missed dispatches, member chunks, and dispatching by intents and shards
(discord_shards: each guild's events go to the session of its shard only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .discord_shards import (
    CLOSE_INVALID_SHARD,
    CLOSE_SHARDING_REQUIRED,
    ShardRules,
    event_guild,
    owns,
    valid_shard,
)
from .discord_state import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    Message,
)
from .discord_world import World

log = logging.getLogger(__name__)

_Item = str | Callable[[], None] | None


@dataclass
class Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    # Every dispatch ever sent in this session, so RESUME can replay what the client missed.
    buffer: list[tuple[int, str]] = field(default_factory=list)
    conn: Connection | None = None
    ended: bool = False

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session gets the events of ``guild_id`` (None: a DM)."""
        return owns(self.shard, guild_id)


class Connection:
    """One websocket. A single writer task keeps frames in order and lets
    synchronous code (REST handlers, test helpers) dispatch without awaiting."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: Session | None = None
        # Set after op 7: the client is about to leave; its frames no longer matter.
        self.retired = False
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())

    def send(self, payload: dict[str, Any] | str) -> None:
        self._queue.put_nowait(payload if isinstance(payload, str) else json.dumps(payload))

    def then(self, fn: Callable[[], None]) -> None:
        self._queue.put_nowait(fn)

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if callable(item):
                item()
                continue
            try:
                await self.ws.send_str(item)
            except (ConnectionResetError, RuntimeError):
                return

    async def stop(self, *, flush: bool) -> None:
        if flush and not self._writer.done():
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                # The client left meanwhile and its handler stopped the writer: nothing
                # to flush. Any other cancellation is ours to pass on.
                if not self._writer.cancelled():
                    raise
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    async def close(self, code: int, reason: str = "") -> None:
        await self.stop(flush=True)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode())


class Gateway:
    def __init__(
        self,
        world: World,
        *,
        token: str,
        heartbeat_interval_ms: int,
        allowed_privileged_intents: int,
        shard_rules: ShardRules | None = None,
    ) -> None:
        self.world = world
        self.shard_rules = shard_rules or ShardRules()
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.allowed_privileged_intents = allowed_privileged_intents
        self.url = ""  # set once the server listens
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.received: list[dict[str, Any]] = []  # every frame a client sent
        self.identifies = 0
        self.invalid_sessions = 0  # IDENTIFYs refused with op 9 (over the rate limit)
        self.resumes = 0
        self.heartbeats = 0
        self.ready = asyncio.Event()
        self.close_codes: list[int | None] = []

    # ----- dispatching ------------------------------------------------------

    def live_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if not s.ended]

    def serves(self, guild_id: int | None) -> bool:
        """Whether some live session gets the events of ``guild_id`` (None: DMs)."""
        return any(s.owns(guild_id) for s in self.live_sessions())

    def _dispatch_to(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.buffer.append((session.seq, frame))
        if session.conn is not None:
            session.conn.send(frame)

    def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> None:
        guild_id = event_guild(event, data)
        for session in self.live_sessions():
            if (intent is None or session.intents & intent) and session.owns(guild_id):
                self._dispatch_to(session, event, data)

    def dispatch_message(self, event: str, msg: Message) -> None:
        if msg.ephemeral:
            return
        channel = self.world.channels[msg.channel_id]
        is_dm = channel.guild_id is None
        bot_id = self.world.bot_user.id
        for session in self.live_sessions():
            if not session.intents & (INTENT_DIRECT_MESSAGES if is_dm else INTENT_GUILD_MESSAGES):
                continue
            if not session.owns(channel.guild_id):
                continue
            if event == "MESSAGE_DELETE":
                data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
                if msg.guild_id:
                    data["guild_id"] = str(msg.guild_id)
            else:
                data = self.world.message_payload(msg, gateway=True)
                privileged_view = is_dm or msg.author_id == bot_id or bot_id in msg.mentions.users
                if not session.intents & INTENT_MESSAGE_CONTENT and not privileged_view:
                    # What Discord does without the MESSAGE_CONTENT intent.
                    data.update(content="", embeds=[], attachments=[], components=[])
                    data.pop("poll", None)
            self._dispatch_to(session, event, data)

    # ----- websocket --------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.add(conn)
        conn.send(
            {
                "op": 10,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                "s": None,
                "t": None,
            }
        )
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await conn.close(4002, "Error while decoding payload.")
                        break
                    if not await self._on_frame(conn, frame):
                        break
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await conn.close(4002, "Error while decoding payload.")
                    break
        finally:
            await conn.stop(flush=False)
            self.connections.discard(conn)
            self.close_codes.append(ws.close_code)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A clean close (1000/1001) ends the session; anything else may resume.
                if ws.close_code in (1000, 1001):
                    session.ended = True
        return ws

    async def _on_frame(self, conn: Connection, frame: dict[str, Any]) -> bool:
        """Handle one client frame; False once the connection was closed."""
        self.received.append(frame)
        op = frame.get("op")
        data = frame.get("d")
        if op == 1:
            self.heartbeats += 1
            conn.send({"op": 11, "d": None, "s": None, "t": None})
            return True
        if conn.retired:
            return True
        if op == 2:
            return await self._identify(conn, data or {})
        if op == 6:
            return await self._resume(conn, data or {})
        if conn.session is None:
            await conn.close(4003, "Not authenticated.")
            return False
        if op == 8:
            self._request_members(conn.session, data or {})
            return True
        if op in (3, 4):
            return True  # presence / voice state: accepted, nothing to model
        await conn.close(4001, "Unknown opcode.")
        return False

    def _token_ok(self, token: object) -> bool:
        return isinstance(token, str) and token.removeprefix("Bot ") == self.token

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> bool:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return False
        if not self._token_ok(data.get("token")):
            await conn.close(4004, "Authentication failed.")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.close(4013, "Invalid intent(s).")
            return False
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return False
        shard = data.get("shard")
        if shard is not None and not valid_shard(shard):
            await conn.close(CLOSE_INVALID_SHARD, "Invalid shard.")
            return False
        world = self.world
        guilds = [g for g in world.guilds.values() if owns(shard, g.id)]
        if len(guilds) > self.shard_rules.max_guilds_per_shard:
            await conn.close(CLOSE_SHARDING_REQUIRED, "Sharding required.")
            return False
        if not self.shard_rules.may_identify(shard):
            # Discord's answer to an IDENTIFY over max_concurrency: the client waits, retries.
            self.invalid_sessions += 1
            conn.send({"op": 9, "d": False, "s": None, "t": None})
            return True
        self.identifies += 1
        session = Session(id=secrets.token_hex(16), intents=intents, shard=shard)
        self.sessions[session.id] = session
        session.conn = conn
        conn.session = session
        ready: dict[str, Any] = {
            "v": 10,
            "user": world.me_payload(),
            "user_settings": {},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "_trace": ['["discord-emulator",{"micros":0}]'],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        self._dispatch_to(session, "READY", ready)
        with_members = bool(intents & INTENT_GUILD_PRESENCES)
        for guild in guilds:
            self._dispatch_to(
                session,
                "GUILD_CREATE",
                world.guild_payload(guild, gateway=True, members=with_members),
            )

        def _ready() -> None:
            self.ready.set()
            world.notifier.notify()

        conn.then(_ready)
        return True

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> bool:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or session.ended or not self._token_ok(data.get("token")):
            conn.send({"op": 9, "d": False, "s": None, "t": None})
            return True
        if session.conn is not None and session.conn is not conn:
            old = session.conn
            old.session = None
            await old.close(4000, "Session resumed elsewhere.")
        session.conn = conn
        conn.session = session
        last = data.get("seq") or 0
        for seq, frame in session.buffer:
            if seq > last:
                conn.send(frame)
        self._dispatch_to(session, "RESUMED", {"_trace": ['["discord-emulator",{"micros":0}]']})

        def _resumed() -> None:
            self.resumes += 1
            self.world.notifier.notify()

        conn.then(_resumed)
        return True

    def _request_members(self, session: Session, data: dict[str, Any]) -> None:
        guild_ids = data.get("guild_id")
        for gid in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            guild = self.world.guilds.get(int(gid))
            if guild is None or not session.owns(guild.id):
                continue  # a guild of another shard: this session knows nothing of it
            query = str(data.get("query") or "").lower()
            wanted = {int(u) for u in data.get("user_ids") or []}
            members = [
                m
                for m in guild.members.values()
                if (not wanted or m.user_id in wanted)
                and self.world.users[m.user_id].name.lower().startswith(query)
            ]
            limit = int(data.get("limit") or 0)
            if limit:
                members = members[:limit]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [self.world.member_payload(m) for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [str(u) for u in wanted if u not in guild.members],
            }
            if data.get("presences"):
                chunk["presences"] = []
            if data.get("nonce"):
                chunk["nonce"] = data["nonce"]
            self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ----- control ----------------------------------------------------------

    def request_reconnect(self) -> int:
        """Send op 7 to every connected session; returns how many were asked."""
        asked = 0
        for session in self.live_sessions():
            conn = session.conn
            if conn is None:
                continue
            conn.send({"op": 7, "d": None, "s": None, "t": None})
            conn.retired = True
            # Detach now: whatever is dispatched until the RESUME is buffered and replayed.
            conn.session = None
            session.conn = None
            asked += 1
        return asked

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.close(1001, "Emulator stopping.")
