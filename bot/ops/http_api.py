"""The operations HTTP surface: health, statistics, Prometheus metrics, models, admin actions.

Discord-agnostic: the bot hands in a callable that reports its gateway state, so this module
(and its tests) never need a discord.py client. Every answer is JSON except /metrics, and
every error is ``{"error": "..."}`` with a real status code, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.core.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OllacordError,
    OllamaBusyError,
    OllamaError,
    OllamaRequestError,
    OllamaTimeoutError,
    OllamaUnavailableError,
    ShuttingDownError,
    StorageError,
)
from bot.core.manager import OllamaRequestManager
from bot.ops.metrics import CONTENT_TYPE_LATEST, BotMetrics

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
# Each health check gets this long: a load balancer's probe must get an answer, not hang
# behind a stalled database or model server.
CHECK_TIMEOUT = 2.0
MAX_CLEANUP_DAYS = 36_500
# On stop, requests in flight (an admin pull can take minutes) get this long, not aiohttp's
# default minute, which would hold up the bot's shutdown.
SHUTDOWN_GRACE = 2.0

# Most specific first: the first matching class decides the status.
ERROR_STATUS: tuple[tuple[type[OllacordError], int], ...] = (
    (InvalidRequestError, 400),
    (OllamaRequestError, 400),
    (ModelNotFoundError, 404),
    (OllamaUnavailableError, 503),
    (OllamaBusyError, 503),
    (StorageError, 503),
    (ShuttingDownError, 503),
    (OllamaTimeoutError, 504),
    (OllamaError, 502),
)

_Handler = Callable[[web.Request], Awaitable[web.Response]]
_MANAGER = web.AppKey("manager", OllamaRequestManager)
_CONTEXT = web.AppKey("context", "_Context")


@dataclass(frozen=True, slots=True)
class ShardStatus:
    id: int
    connected: bool
    latency: float | None = None  # heartbeat round trip, in seconds


@dataclass(frozen=True, slots=True)
class DiscordStatus:
    connected: bool
    latency: float | None = None  # gateway heartbeat round trip, in seconds
    shard_count: int | None = None  # sharded: the whole bot's, and this process's shards
    shards: tuple[ShardStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class _Context:
    discord_status: Callable[[], DiscordStatus]
    metrics: BotMetrics | None
    admin_token: str | None
    check_timeout: float
    started_at: float


def status_for(error: OllacordError) -> int:
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_response(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower())
    except OllacordError as exc:
        return error_response(status_for(exc), exc.user_message)
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, "internal error; it was logged")


def _ms(seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds):
        return None  # JSON has no NaN or Infinity
    return round(seconds * 1000, 1)


def _up(connected: bool) -> str:
    return "up" if connected else "down"


async def _timed(check: Callable[[], Awaitable[dict[str, Any]]], within: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            found = await check()
    except TimeoutError:
        return {"status": "down", "latency_ms": None, "error": f"no answer within {within:g} s"}
    except OllacordError as exc:
        return {"status": "down", "latency_ms": None, "error": exc.user_message}
    except Exception as exc:
        log.warning("health check failed: %r", exc)
        return {"status": "down", "latency_ms": None, "error": type(exc).__name__}
    found.setdefault("latency_ms", _ms(time.perf_counter() - started))
    return found


async def get_healthz(request: web.Request) -> web.Response:
    manager, ctx = request.app[_MANAGER], request.app[_CONTEXT]

    async def discord() -> dict[str, Any]:
        state = ctx.discord_status()
        found: dict[str, Any] = {"status": _up(state.connected), "latency_ms": _ms(state.latency)}
        if state.shard_count is not None:  # sharded: each of this process's shards
            found["shard_count"] = state.shard_count
            found["shards"] = [
                {"id": s.id, "status": _up(s.connected), "latency_ms": _ms(s.latency)}
                for s in state.shards
            ]
        return found

    async def database() -> dict[str, Any]:
        await manager.store.count()
        return {"status": "up"}

    async def ollama() -> dict[str, Any]:
        # With several hosts: up while one answers; each host's state is under "hosts".
        health = await manager.health_check()
        hosts = [report.as_dict() for report in manager.host_reports()]
        if not health.ok:
            return {"status": "down", "latency_ms": None, "error": health.error, "hosts": hosts}
        latency = round(health.latency_ms, 1) if health.latency_ms is not None else None
        found = {"status": "up", "latency_ms": latency, "version": health.version}
        if health.error:  # some hosts are down
            found["error"] = health.error
        return {**found, "hosts": hosts}

    checks = {"discord": discord, "database": database, "ollama": ollama}
    results = await asyncio.gather(*(_timed(c, ctx.check_timeout) for c in checks.values()))
    components = dict(zip(checks, results, strict=True))
    healthy = all(c["status"] == "up" for c in components.values())
    body = {
        "status": "healthy" if healthy else "degraded",
        "components": components,
        "mcp": mcp_health(manager),
    }
    return web.json_response(body, status=200 if healthy else 503)


def mcp_health(manager: OllamaRequestManager) -> dict[str, Any]:
    """The MCP servers, for /healthz. Apart from the components: a server that is down only
    takes its tools away (the bot answers without them), so it never makes the bot unhealthy;
    "down" names the servers that should be connected and are not."""
    servers = manager.mcp.status()
    down = [s.name for s in servers if s.state not in ("connected", "disabled")]
    return {
        "status": "degraded" if down else "up",
        "down": down,
        "servers": [s.as_dict() for s in servers],
    }


async def get_stats(request: web.Request) -> web.Response:
    manager = request.app[_MANAGER]
    snapshot = manager.get_statistics()
    snapshot.setdefault("uptime_seconds", time.monotonic() - request.app[_CONTEXT].started_at)
    # tools_usage counts the calls; this says how they ended (ok, error, timeout, unknown).
    outcomes: dict[str, dict[str, int]] = {}
    for (tool, outcome), count in sorted(manager.stats.tool_outcomes.items()):
        outcomes.setdefault(tool, {})[outcome] = count
    snapshot["tool_outcomes"] = outcomes
    return web.json_response(snapshot)


async def get_metrics(request: web.Request) -> web.Response:
    exporter = request.app[_CONTEXT].metrics
    if exporter is None:
        raise web.HTTPNotFound()
    # CONTENT_TYPE_LATEST carries a charset parameter, which content_type= refuses.
    return web.Response(body=exporter.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_models(request: web.Request) -> web.Response:
    listed = await request.app[_MANAGER].hosted_models()
    return web.json_response(
        {
            "models": [
                {
                    "name": m.name,
                    "size": m.size,
                    "modified": m.modified_at.isoformat() if m.modified_at else None,
                    "family": m.family,
                    "parameter_size": m.parameter_size,
                    "quantization_level": m.quantization_level,
                    "hosts": list(hosted.hosts),
                }
                for hosted in listed
                for m in (hosted.info,)
            ]
        }
    )


def _authorized(request: web.Request) -> bool:
    token = request.app[_CONTEXT].admin_token or ""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Bytes, as compare_digest refuses non-ASCII str; a constant-time compare either way.
    same = hmac.compare_digest(given.strip().encode(), token.encode())
    return bool(token) and scheme.lower() == "bearer" and same


def _admin(handler: _Handler) -> _Handler:
    async def guarded(request: web.Request) -> web.Response:
        if not _authorized(request):
            return error_response(
                401, "a valid admin token is required", **{"WWW-Authenticate": "Bearer"}
            )
        return await handler(request)

    return guarded


async def post_pull(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    host = request.query.get("host")  # one of OLLAMA_HOSTS (without credentials); else all
    if not await request.app[_MANAGER].pull_model(name, host=host):
        return error_response(502, f"The pull of `{name}` did not finish.")
    log.info("model %s pulled through the admin API", name)
    return web.json_response({"status": "success", "model": name})


async def post_cleanup(request: web.Request) -> web.Response:
    raw = request.query.get("days", "")
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_CLEANUP_DAYS:
        return error_response(400, f"days must be a whole number from 1 to {MAX_CLEANUP_DAYS}")
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = await request.app[_MANAGER].delete_idle_sessions(cutoff)
    log.info("admin cleanup deleted %d sessions idle for over %d days", deleted, days)
    return web.json_response({"deleted": deleted, "days": days})


def create_app(
    manager: OllamaRequestManager,
    discord_status: Callable[[], DiscordStatus],
    *,
    metrics: BotMetrics | None = None,
    admin_token: str | None = None,
    check_timeout: float = CHECK_TIMEOUT,
) -> web.Application:
    """The aiohttp application; admin routes exist only when ``admin_token`` is set."""
    app = web.Application(middlewares=[_json_errors])
    app[_MANAGER] = manager
    app[_CONTEXT] = _Context(
        discord_status, metrics, admin_token or None, check_timeout, time.monotonic()
    )
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/stats", get_stats)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/models", get_models)
    if admin_token:
        # Model names may hold slashes (hf.co/user/repo:tag).
        app.router.add_post("/admin/models/{name:.+}/pull", _admin(post_pull))
        app.router.add_post("/admin/cleanup", _admin(post_cleanup))
    return app


class HttpServer:
    """Serves an app on host:port; ``port`` is the bound one, useful when asked for port 0."""

    def __init__(self, app: web.Application, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_GRACE
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise OllacordError(
                f"The HTTP server cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("HTTP server listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await runner.cleanup()
            except Exception:
                log.exception("the HTTP server did not stop cleanly")


async def start_http_server(
    manager: OllamaRequestManager,
    discord_status: Callable[[], DiscordStatus],
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    admin_token: str | None = None,
    discord_429: Callable[[], int] | None = None,
) -> HttpServer:
    """Metrics wired to ``manager``, the app around them, served until stop()."""
    exporter = BotMetrics(
        queue_depth=lambda: manager.queue.depth,
        active_streams=lambda: manager.get_statistics()["active_streams"],
        discord_429=discord_429,
        hosts=manager.host_reports,
    )
    exporter.attach(manager.stats)
    app = create_app(manager, discord_status, metrics=exporter, admin_token=admin_token)
    server = HttpServer(app, host, port)
    try:
        await server.start()
    except BaseException:
        exporter.detach()
        raise
    return server
