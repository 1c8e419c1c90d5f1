"""/healthz of a sharded process: the whole bot's shard count and each of this process's
shards with its state and latency; a shard down makes the bot degraded."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot import OllamaRequestManager
from bot.ops.http_api import DiscordStatus, ShardStatus, create_app


async def healthz(manager: OllamaRequestManager, status: DiscordStatus) -> tuple[int, Any]:
    client = TestClient(TestServer(create_app(manager, lambda: status)))
    await client.start_server()
    try:
        response = await client.get("/healthz")
        return response.status, await response.json()
    finally:
        await client.close()


async def test_each_shard_of_the_process_is_listed(manager: OllamaRequestManager) -> None:
    shards = (ShardStatus(2, True, 0.0314), ShardStatus(3, True, 0.05))
    status, body = await healthz(manager, DiscordStatus(True, 0.0407, 4, shards))
    assert status == 200
    assert body["components"]["discord"] == {
        "status": "up",
        "latency_ms": 40.7,
        "shard_count": 4,
        "shards": [
            {"id": 2, "status": "up", "latency_ms": 31.4},
            {"id": 3, "status": "up", "latency_ms": 50.0},
        ],
    }


async def test_a_shard_down_is_named_and_the_bot_degraded(manager: OllamaRequestManager) -> None:
    # The bot reports itself disconnected when one of its shards is; latency before the
    # first heartbeat is infinite, which JSON cannot carry.
    shards = (ShardStatus(0, True, 0.02), ShardStatus(1, False, float("inf")))
    status, body = await healthz(manager, DiscordStatus(False, float("nan"), 2, shards))
    assert status == 503 and body["status"] == "degraded"
    discord = body["components"]["discord"]
    assert discord["status"] == "down" and discord["latency_ms"] is None
    assert discord["shards"][1] == {"id": 1, "status": "down", "latency_ms": None}


async def test_unsharded_there_is_nothing_about_shards(manager: OllamaRequestManager) -> None:
    _, body = await healthz(manager, DiscordStatus(True, 0.01))
    assert body["components"]["discord"] == {"status": "up", "latency_ms": 10.0}
