"""Discord's edge: what stands between a bot and Discord's API servers, and how it fails.

``DiscordEdge`` is a reverse proxy in front of a ``DiscordEmulator`` (REST and gateway). It
passes everything through unchanged until told to fail, and then answers like Discord's
edge does: 429s in their several shapes (with the X-RateLimit-* headers and a bucket, with
only the JSON body's ``retry_after``, Cloudflare's bare 429 without ``Via``, a global one),
5xx with Cloudflare's HTML or Discord's JSON, connections refused (Discord unreachable), a
gateway whose upgrade fails, and gateway sockets dropped without a close frame.

Usage (in process)::

    async with DiscordEdge(emu) as edge, edge.in_front():   # discord.py now goes through it
        edge.inject(server_error(503), route_contains="/webhooks/", method="POST")

A bot process is pointed at ``edge.api_base`` and ``edge.gateway_url`` instead.
What discord.py does with each shape is in discord/http.py (``HTTPClient.request``) and
discord/webhook/async_.py (``AsyncWebhookAdapter.request``), and in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
import discord.http
from aiohttp import web

from .discord_server import DiscordEmulator

# Headers that belong to one hop, not to the message (RFC 9110 7.6.1), and those aiohttp
# sets again itself.
HOP_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Content-Encoding",
    )
)  # fmt: skip
CLOUDFLARE_BAN_BODY = "error code: 1015"  # what Cloudflare answers when it limits an address


@dataclass(frozen=True)
class Fault:
    """One response the edge gives instead of Discord's."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    content_type: str | None = None  # None: no Content-Type header at all


def _json(status: int, body: dict[str, Any], headers: dict[str, str]) -> Fault:
    return Fault(status, headers, json.dumps(body), "application/json")


def _limited_body(retry_after: float, *, is_global: bool) -> dict[str, Any]:
    return {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }


def rate_limited(retry_after: float, *, bucket: str = "0123456789abcdef") -> Fault:
    """A 429 as Discord sends it on a bucket: Retry-After, the X-RateLimit-* headers, Via."""
    return _json(
        429,
        _limited_body(retry_after, is_global=False),
        {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": "shared",
            "Via": "1.1 google",
        },
    )


def rate_limited_body_only(retry_after: float) -> Fault:
    """A 429 whose only hint is the JSON body's ``retry_after`` (no X-RateLimit-*, no
    Retry-After): discord.py waits that long and tries again."""
    return _json(429, _limited_body(retry_after, is_global=False), {"Via": "1.1 google"})


def rate_limited_without_retry_after() -> Fault:
    """A 429 through Discord's proxies with a JSON body that says nothing of when to retry:
    discord.py looks up ``data['retry_after']`` and raises KeyError from the request."""
    return _json(429, {"message": "You are being rate limited.", "code": 0}, {"Via": "1.1 google"})


def rate_limited_bare() -> Fault:
    """Cloudflare's own 429 (no ``Via``, a text body): discord.py raises HTTPException at
    once, without waiting or retrying."""
    return Fault(429, {}, CLOUDFLARE_BAN_BODY, "text/plain")


def globally_rate_limited(retry_after: float) -> Fault:
    """The bot's global limit: discord.py holds every REST request until it passes."""
    return _json(
        429,
        _limited_body(retry_after, is_global=True),
        {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
            "Via": "1.1 google",
        },
    )


def server_error(status: int) -> Fault:
    """A 5xx: Discord's JSON for 500, Cloudflare's HTML page for the others (502, 503...)."""
    if status == 500:
        return _json(500, {"message": "500: Internal Server Error", "code": 0}, {})
    page = f"<html><head><title>{status}</title></head><body>{status} error</body></html>"
    return Fault(status, {"Server": "cloudflare"}, page, "text/html")


@dataclass
class Rule:
    fault: Fault
    remaining: int
    route_contains: str
    method: str | None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.route_contains in path
            and (self.method is None or self.method == method)
        )


@dataclass
class EdgeCall:
    method: str
    path: str  # without the query
    status: int
    injected: bool  # answered by the edge, not passed to Discord


class DiscordEdge:
    def __init__(self, discord_emu: DiscordEmulator) -> None:
        self.emu = discord_emu
        self.rules: list[Rule] = []
        self.calls: list[EdgeCall] = []
        self.gateway_status: int | None = None  # set: gateway upgrades fail with it
        self.gateway_attempts = 0
        self.port = 0
        self.api_base = ""
        self.gateway_url = ""
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._upstream_base = ""
        self._upstream_gateway = ""
        # Each gateway socket of a client, with its connection on to Discord.
        self._sockets: dict[web.WebSocketResponse, aiohttp.ClientWebSocketResponse] = {}

    # ----- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        # Discord itself, as it listens now (a caller may point the emulator's advertised
        # URLs at the edge afterwards).
        self._upstream_base = self.emu.base_url
        self._upstream_gateway = self.emu.gateway.url
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        await self.accept()
        self.api_base = f"http://127.0.0.1:{self.port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"

    async def stop(self) -> None:
        await self.drop_gateway()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()

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
    def in_front(self) -> Iterator[None]:
        """discord.py's REST calls in this process, and later gateway connections (the URL
        READY gives for resuming, GET /gateway), go through the edge."""
        base, gateway = discord.http.Route.BASE, self.emu.gateway.url
        discord.http.Route.BASE, self.emu.gateway.url = self.api_base, self.gateway_url
        try:
            yield
        finally:
            discord.http.Route.BASE, self.emu.gateway.url = base, gateway

    # ----- faults -----------------------------------------------------------

    def inject(
        self, fault: Fault, *, count: int = 1, route_contains: str = "", method: str | None = None
    ) -> Rule:
        """The next ``count`` requests whose path contains ``route_contains`` (and of
        ``method``) get ``fault`` instead of reaching Discord."""
        rule = Rule(fault, count, route_contains, method)
        self.rules.append(rule)
        return rule

    def injected(self, status: int | None = None) -> list[EdgeCall]:
        return [c for c in self.calls if c.injected and (status is None or c.status == status)]

    async def refuse(self) -> None:
        """Stop listening: connecting is refused, as when Discord cannot be reached. Open
        gateway sockets are dropped too."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.drop_gateway()

    async def accept(self) -> None:
        """Listen (again, on the same port)."""
        if self._site is None and self._runner is not None:
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await self._site.start()
            self.port = self._runner.addresses[0][1]

    async def drop_gateway(self) -> int:
        """Cut every gateway socket at the TCP level (no close frame, as when a network path
        dies); returns how many were cut."""
        dropped = 0
        for ws, upstream in list(self._sockets.items()):
            # Both sides: Discord too sees the connection die, not a clean close (which
            # would end the session instead of leaving it to be resumed).
            for transport in (ws._req.transport if ws._req else None, _transport(upstream)):
                if transport is not None:
                    transport.abort()
            dropped += 1
        return dropped

    # ----- REST -------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for rule in self.rules:
            if rule.matches(request.method, path):
                rule.remaining -= 1
                rule.hits += 1
                self.calls.append(EdgeCall(request.method, path, rule.fault.status, True))
                self.emu.world.notifier.notify()
                return self._respond(rule.fault)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method,
            self._upstream_base + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            self.calls.append(EdgeCall(request.method, path, upstream.status, False))
            return web.Response(status=upstream.status, body=body, headers=out)

    @staticmethod
    def _respond(fault: Fault) -> web.Response:
        headers = dict(fault.headers)
        if fault.content_type is not None:
            # Set as a header: aiohttp's content_type= would append "; charset=utf-8", and
            # discord.py compares Content-Type with "application/json" exactly.
            headers["Content-Type"] = fault.content_type
        return web.Response(status=fault.status, body=fault.body.encode(), headers=headers)

    # ----- gateway ----------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.gateway_attempts += 1
        self.emu.world.notifier.notify()
        if self.gateway_status is not None:
            return self._respond(server_error(self.gateway_status))
        assert self._session is not None
        upstream = await self._session.ws_connect(
            self._upstream_gateway + (f"?{request.query_string}" if request.query_string else ""),
            max_msg_size=0,
        )
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets[ws] = upstream
        try:
            await _pipe_both(ws, upstream)
        finally:
            self._sockets.pop(ws, None)
            if not upstream.closed:
                await upstream.close()
        return ws


def _transport(ws: aiohttp.ClientWebSocketResponse) -> asyncio.Transport | None:
    conn = ws._conn  # aiohttp has no public way to abort a client websocket
    return conn.transport if conn is not None else None  # type: ignore[return-value]


async def _pipe_both(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    """Frames both ways until one side closes; its close code is passed on to the other."""

    async def pipe(source: Any, sink: Any) -> None:
        async for msg in source:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await sink.send_str(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
        if not sink.closed:
            await sink.close(code=source.close_code or 1000)

    tasks = [
        asyncio.ensure_future(pipe(client, upstream)),
        asyncio.ensure_future(pipe(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
