"""The operations HTTP API around a real request manager and the Ollama emulator."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from bot import OllamaRequestManager
from bot.core import errors
from bot.core.tools.mcp_config import parse_mcp_config
from bot.ops.http_api import DiscordStatus, HttpServer, create_app, start_http_server, status_for
from bot.storage import create_engine, create_sessionmaker
from bot.storage.models import ChatSession
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import EmulatedModel, OllamaEmulator

TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"  # the MCP time server from PyPI
TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class FakeDiscord:
    connected: bool = True
    latency: float | None = 0.042

    def __call__(self) -> DiscordStatus:
        return DiscordStatus(self.connected, self.latency)


ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(manager: OllamaRequestManager) -> AsyncIterator[ClientFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def factory(
        discord: FakeDiscord | None = None, admin_token: str | None = None, **options: Any
    ) -> TestClient[Any, Any]:
        app = create_app(manager, discord or FakeDiscord(), admin_token=admin_token, **options)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()


@pytest.fixture
async def admin(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client(admin_token=TOKEN)


async def get_json(client: TestClient[Any, Any], path: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get(path)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


# ----- /healthz ---------------------------------------------------------------------------


async def test_healthz_follows_ollama_going_away_and_coming_back(
    client: TestClient[Any, Any], ollama_emu: OllamaEmulator
) -> None:
    status, body = await get_json(client, "/healthz")
    assert status == 200
    assert body["status"] == "healthy"
    parts = body["components"]
    assert set(parts) == {"discord", "database", "ollama"}
    assert parts["discord"] == {"status": "up", "latency_ms": 42.0}
    assert parts["database"]["status"] == "up"
    assert isinstance(parts["database"]["latency_ms"], float)
    assert parts["ollama"]["status"] == "up"
    assert parts["ollama"]["version"] == ollama_emu.version
    assert isinstance(parts["ollama"]["latency_ms"], float)

    ollama_emu.refuse_connections()
    status, body = await get_json(client, "/healthz")
    assert status == 503
    assert body["status"] == "degraded"
    assert body["components"]["ollama"]["status"] == "down"
    assert "Cannot reach the model server" in body["components"]["ollama"]["error"]
    assert body["components"]["discord"]["status"] == "up"
    assert body["components"]["database"]["status"] == "up"

    await ollama_emu.accept_connections()
    status, body = await get_json(client, "/healthz")
    assert (status, body["status"]) == (200, "healthy")


async def test_healthz_is_503_while_discord_is_disconnected(make_client: ClientFactory) -> None:
    # Before the first heartbeat discord.py reports an infinite latency: not valid JSON.
    discord = FakeDiscord(connected=False, latency=float("inf"))
    client = await make_client(discord)
    status, body = await get_json(client, "/healthz")
    assert status == 503
    assert body["components"]["discord"] == {"status": "down", "latency_ms": None}
    assert body["components"]["ollama"]["status"] == "up"
    discord.connected, discord.latency = True, 0.01
    assert (await client.get("/healthz")).status == 200


async def test_healthz_reports_a_failing_database(
    client: TestClient[Any, Any], manager: OllamaRequestManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> int:
        raise errors.StorageError()

    monkeypatch.setattr(manager.store, "count", broken)
    status, body = await get_json(client, "/healthz")
    assert status == 503
    assert body["components"]["database"]["status"] == "down"
    assert body["components"]["database"]["error"] == errors.StorageError.user_message


async def test_healthz_answers_when_a_check_hangs(
    make_client: ClientFactory, manager: OllamaRequestManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(manager, "health_check", never)
    client = await make_client(check_timeout=0.05)
    status, body = await get_json(client, "/healthz")
    assert status == 503
    assert body["components"]["ollama"]["status"] == "down"
    assert "no answer within 0.05 s" in body["components"]["ollama"]["error"]
    assert body["components"]["database"]["status"] == "up"


async def test_healthz_names_an_mcp_server_that_is_down_and_stays_healthy(
    make_manager: ManagerFactory,
) -> None:
    servers = {"broken": {"command": "ollacord-no-such-mcp-server"}}
    if TIME_SERVER.exists():
        servers["time"] = {"command": str(TIME_SERVER)}
    manager = make_manager(mcp_servers=parse_mcp_config({"mcpServers": servers}))
    await manager.start()
    async with TestClient(TestServer(create_app(manager, FakeDiscord()))) as client:
        status, body = await get_json(client, "/healthz")
    assert (status, body["status"]) == (200, "healthy")
    assert set(body["components"]) == {"discord", "database", "ollama"}
    mcp = body["mcp"]
    assert mcp["status"] == "degraded" and mcp["down"] == ["broken"]
    by_name = {s["name"]: s for s in mcp["servers"]}
    assert by_name["broken"]["state"] == "reconnecting"
    assert by_name["broken"]["last_error"] == "command not found: ollacord-no-such-mcp-server"
    assert by_name["broken"]["tools"] == 0
    if TIME_SERVER.exists():
        assert by_name["time"]["state"] == "connected" and by_name["time"]["tools"] == 2


async def test_healthz_without_mcp_servers(client: TestClient[Any, Any]) -> None:
    _, body = await get_json(client, "/healthz")
    assert body["mcp"] == {"status": "up", "down": [], "servers": []}


# ----- /stats and /models -----------------------------------------------------------------


async def test_stats_after_a_success_and_a_failure(
    client: TestClient[Any, Any], manager: OllamaRequestManager
) -> None:
    await manager.query(prompt="hello", session_id="s1")
    with pytest.raises(errors.ModelNotFoundError):
        await manager.query(model="nosuch:1b", prompt="hi", max_retries=0)
    status, body = await get_json(client, "/stats")
    assert status == 200
    assert body["total_requests"] == 2
    assert body["successful_requests"] == 1
    assert body["failed_requests"] == 1
    assert body["error_rate"] == 50.0
    assert body["total_tokens_generated"] > 0
    assert body["average_processing_time"] > 0
    assert sum(body["model_usage"].values()) == 1
    assert body["active_sessions"] == 1
    assert body["queue_depth"] == 0
    assert body["uptime_seconds"] >= 0


async def test_stats_count_tool_calls_and_how_they_ended(
    client: TestClient[Any, Any], manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.script_tools(
        [[("calculator", {"expression": "1+1"}), ("calculator", {"expression": "1/0"})]]
    )
    await manager.query(prompt="add", toolset=manager.tools.select(["calculator"]))
    _, body = await get_json(client, "/stats")
    assert body["tools_usage"] == {"calculator": 2}
    assert body["tool_outcomes"] == {"calculator": {"error": 1, "ok": 1}}


async def test_models_lists_what_the_server_has(
    client: TestClient[Any, Any], ollama_emu: OllamaEmulator
) -> None:
    status, body = await get_json(client, "/models")
    assert status == 200
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == set(ollama_emu.models)
    qwen = by_name["qwen3:latest"]
    assert qwen["size"] == 5_225_387_923
    assert qwen["family"] == "qwen3"
    assert qwen["parameter_size"] == "8.2B"
    assert qwen["quantization_level"] == "Q4_K_M"
    assert datetime.fromisoformat(qwen["modified"]).tzinfo is not None


async def test_errors_are_json_with_real_status_codes(
    client: TestClient[Any, Any],
    manager: OllamaRequestManager,
    ollama_emu: OllamaEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ollama_emu.refuse_connections()
    status, body = await get_json(client, "/models")
    assert status == 503
    assert "Cannot reach the model server" in body["error"]

    def boom() -> dict[str, Any]:
        raise ValueError("private detail")

    monkeypatch.setattr(manager, "get_statistics", boom)
    status, body = await get_json(client, "/stats")
    assert status == 500
    assert "private detail" not in body["error"] and "Traceback" not in body["error"]
    status, body = await get_json(client, "/nowhere")
    assert status == 404 and body == {"error": "not found"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidRequestError("bad"), 400),
        (errors.OllamaRequestError("refused"), 400),
        (errors.ModelNotFoundError("nosuch:1b"), 404),
        (errors.OllamaUnavailableError("http://x"), 503),
        (errors.OllamaBusyError(), 503),
        (errors.StorageError(), 503),
        (errors.OllamaTimeoutError(), 504),
        (errors.OllamaServerError(), 502),
        (errors.OllamaError(), 502),
        (errors.OllacordError(), 500),
    ],
)
def test_error_statuses(error: errors.OllacordError, status: int) -> None:
    assert status_for(error) == status


# ----- admin routes -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/models/mistral:7b/pull", "/admin/cleanup?days=30"])
async def test_admin_routes_do_not_exist_without_a_token(
    client: TestClient[Any, Any], path: str
) -> None:
    resp = await client.post(path, headers=AUTH)
    assert resp.status == 404
    assert "error" in await resp.json()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Bearer"},
     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer tökén"}],
)  # fmt: skip
async def test_admin_routes_refuse_a_missing_or_wrong_token(
    admin: TestClient[Any, Any],
    manager: OllamaRequestManager,
    ollama_emu: OllamaEmulator,
    headers: dict[str, str],
) -> None:
    await manager.create_session("kept")
    for path in ("/admin/models/llama3.2/pull", "/admin/cleanup?days=1"):
        resp = await admin.post(path, headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await resp.json())["error"] == "a valid admin token is required"
    assert not any(r.path == "/api/pull" for r in ollama_emu.requests)
    assert await manager.store.count() == 1


async def test_pull_with_the_token_installs_the_model(
    make_manager: ManagerFactory, make_client: ClientFactory
) -> None:
    pullable = {"mistral:7b": EmulatedModel("mistral:7b", size=4_100_000_000)}
    async with OllamaEmulator(pullable=pullable) as emu:
        manager = make_manager(host=emu.url)
        await manager.start()
        app = create_app(manager, FakeDiscord(), admin_token=TOKEN)
        async with TestClient(TestServer(app)) as client:
            before = {m["name"] for m in (await (await client.get("/models")).json())["models"]}
            assert "mistral:7b" not in before
            resp = await client.post("/admin/models/mistral:7b/pull", headers=AUTH)
            assert resp.status == 200
            assert await resp.json() == {"status": "success", "model": "mistral:7b"}
            after = (await (await client.get("/models")).json())["models"]
            assert "mistral:7b" in {m["name"] for m in after}

            resp = await client.post("/admin/models/nosuch:1b/pull", headers=AUTH)
            assert resp.status == 502
            assert "file does not exist" in (await resp.json())["error"]


async def test_a_pull_that_never_reports_success_is_an_error(
    admin: TestClient[Any, Any], manager: OllamaRequestManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unfinished(name: str, progress: Any = None, host: str | None = None) -> bool:
        return False

    monkeypatch.setattr(manager, "pull_model", unfinished)
    resp = await admin.post("/admin/models/hf.co/user/repo:Q4/pull", headers=AUTH)
    assert resp.status == 502
    assert await resp.json() == {"error": "The pull of `hf.co/user/repo:Q4` did not finish."}


async def test_cleanup_deletes_only_idle_sessions(
    admin: TestClient[Any, Any], manager: OllamaRequestManager, database_url: str
) -> None:
    for session_id in ("old", "recent", "fresh"):
        await manager.create_session(session_id)
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            for session_id, age in (("old", 40), ("recent", 20)):
                backdated = datetime.now(UTC) - timedelta(days=age)
                await db.execute(
                    update(ChatSession)
                    .where(ChatSession.id == session_id)
                    .values(updated_at=backdated)
                )
    finally:
        await engine.dispose()
    resp = await admin.post("/admin/cleanup?days=30", headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"deleted": 1, "days": 30}
    assert await manager.store.get("old") is None
    assert await manager.store.get("recent") is not None
    assert await manager.store.get("fresh") is not None
    assert manager.get_statistics()["active_sessions"] == 2  # the count follows the cleanup


@pytest.mark.parametrize("days", [None, "", "abc", "0", "-3", "1.5", "99999999"])
async def test_cleanup_validates_days(
    admin: TestClient[Any, Any], manager: OllamaRequestManager, days: str | None
) -> None:
    await manager.create_session("kept")
    path = "/admin/cleanup" if days is None else f"/admin/cleanup?days={days}"
    resp = await admin.post(path, headers=AUTH)
    assert resp.status == 400
    assert "days must be" in (await resp.json())["error"]
    assert await manager.store.count() == 1


# ----- the server itself ------------------------------------------------------------------


async def test_server_binds_loopback_by_default_and_serves_real_http(
    manager: OllamaRequestManager,
) -> None:
    server = await start_http_server(manager, FakeDiscord(), port=0)
    try:
        assert server.host == "127.0.0.1"
        assert server.port != 0
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/healthz") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["status"] == "healthy"
        assert HttpServer(create_app(manager, FakeDiscord())).host == "127.0.0.1"
    finally:
        await server.stop()


async def test_a_taken_port_is_a_clear_error(manager: OllamaRequestManager) -> None:
    first = HttpServer(create_app(manager, FakeDiscord()))
    await first.start()
    try:
        second = HttpServer(create_app(manager, FakeDiscord()), port=first.port)
        with pytest.raises(errors.OllacordError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.stop()
