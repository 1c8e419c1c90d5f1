"""Prometheus metrics fed by a real request manager talking to the Ollama emulator."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot import OllamaRequestManager
from bot.core.errors import ModelNotFoundError
from bot.core.tools.registry import Tool, ToolContext
from bot.ops.http_api import DiscordStatus, create_app
from bot.ops.metrics import LATENCY_BUCKETS, BotMetrics
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Counter429:
    def __init__(self) -> None:
        self.seen = 0

    def __call__(self) -> int:
        return self.seen


def metrics_for(manager: OllamaRequestManager, discord_429: Counter429 | None = None) -> BotMetrics:
    metrics = BotMetrics(
        queue_depth=lambda: manager.queue.depth,
        active_streams=lambda: manager.get_statistics()["active_streams"],
        discord_429=discord_429 or Counter429(),
    )
    metrics.attach(manager.stats)
    return metrics


def samples(metrics: BotMetrics) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_every_metric_is_exposed_and_moves_with_requests(
    manager: OllamaRequestManager,
) -> None:
    discord_429 = Counter429()
    metrics = metrics_for(manager, discord_429)
    before = samples(metrics)
    for name in ("ollacord_queue_depth", "ollacord_active_streams", "ollacord_discord_429_total"):
        assert value(before, name) == 0.0 and any(k[0] == name for k in before)

    result = await manager.query(prompt="hello")
    with pytest.raises(ModelNotFoundError):
        await manager.query(model="nosuch:1b", prompt="hi", max_retries=0)
    discord_429.seen = 3
    after = samples(metrics)

    model = result.model
    assert value(after, "ollacord_requests_total", model=model, outcome="success") == 1
    assert value(after, "ollacord_requests_total", model="nosuch:1b", outcome="error") == 1
    assert result.eval_count
    assert value(after, "ollacord_tokens_generated_total", model=model) == result.eval_count
    latency = "ollacord_request_latency_seconds"
    assert value(after, f"{latency}_count", outcome="success") == 1
    assert value(after, f"{latency}_count", outcome="error") == 1
    assert value(after, f"{latency}_bucket", outcome="success", le="+Inf") == 1
    first_token = "ollacord_time_to_first_token_seconds"
    assert value(after, f"{first_token}_count") == 1
    assert value(after, f"{first_token}_bucket", le="300.0") == 1
    assert value(after, "ollacord_discord_429_total") == 3


def test_latency_buckets_fit_llm_answers() -> None:
    assert LATENCY_BUCKETS[0] == 0.1
    assert LATENCY_BUCKETS[-1] == 300.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


async def test_gauges_are_read_at_scrape_time(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(max_concurrent_requests=1, first_token_timeout=30.0)
    await manager.start()
    metrics = metrics_for(manager)
    ollama_emu.stall_before_first_token(30.0)
    running = [asyncio.create_task(manager.query(prompt=f"q{i}")) for i in range(2)]
    try:
        # One answer holds the only slot, the other waits for it.
        for _ in range(500):
            if manager.queue.running == 1 and manager.queue.depth == 1:
                break
            await asyncio.sleep(0.01)
        found = samples(metrics)
        assert value(found, "ollacord_active_streams") == 1
        assert value(found, "ollacord_queue_depth") == 1
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    found = samples(metrics)
    assert value(found, "ollacord_active_streams") == 0
    assert value(found, "ollacord_queue_depth") == 0
    assert value(found, "ollacord_requests_total", model="llama3.2", outcome="cancelled") >= 1


async def test_each_bot_has_its_own_registry(manager: OllamaRequestManager) -> None:
    first, second = (
        metrics_for(manager),
        BotMetrics(queue_depth=lambda: 0, active_streams=lambda: 0),
    )
    await manager.query(prompt="hello")
    assert any(k[0] == "ollacord_requests_total" for k in samples(first))
    assert not any(k[0] == "ollacord_requests_total" for k in samples(second))
    assert REGISTRY.get_sample_value("ollacord_queue_depth") is None
    first.detach()
    await manager.query(prompt="again")
    assert sum(v for k, v in samples(first).items() if k[0] == "ollacord_requests_total") == 1


async def test_metrics_route_serves_the_exposition(manager: OllamaRequestManager) -> None:
    metrics = metrics_for(manager)
    await manager.query(prompt="hello")
    app = create_app(manager, lambda: DiscordStatus(True, 0.01), metrics=metrics)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await resp.text()
    assert 'ollacord_requests_total{model="' in text
    assert 'outcome="success"} 1.0' in text


def test_a_failing_source_does_not_break_the_scrape() -> None:
    def broken() -> int:
        raise RuntimeError("gone")

    metrics = BotMetrics(queue_depth=broken, active_streams=lambda: 2)
    found = samples(metrics)
    assert value(found, "ollacord_active_streams") == 2
    assert math.isnan(value(found, "ollacord_queue_depth"))


async def test_tool_calls_are_counted_by_tool_and_outcome(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    async def broken(arguments: dict[str, Any], context: ToolContext) -> str:
        raise RuntimeError("no")

    manager.tools.add(Tool("broken", "Always fails.", {"type": "object"}, broken))
    metrics = metrics_for(manager)
    assert not [k for k in samples(metrics) if k[0] == "ollacord_tool_calls_total"]

    ollama_emu.script_tools(
        [
            [("calculator", {"expression": "1+1"}), ("broken", {})],
            [("calculator", {"expression": "2+2"})],
        ]
    )
    await manager.ask(prompt="compute", toolset=manager.tools.select(["calculator", "broken"]))
    found = samples(metrics)
    calls = {k: v for k, v in found.items() if k[0] == "ollacord_tool_calls_total"}
    assert calls == {
        ("ollacord_tool_calls_total", (("outcome", "ok"), ("tool", "calculator"))): 2,
        ("ollacord_tool_calls_total", (("outcome", "error"), ("tool", "broken"))): 1,
    }
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["ollacord_tool_calls"] == "counter"


async def test_recoveries_are_counted_by_kind_as_the_statistics_count_them(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(fallback_models=("qwen3",))
    await manager.start()
    metrics = metrics_for(manager)
    # Every kind is there from the start, so a rate() has a series before the first one.
    assert {v for k, v in samples(metrics).items() if k[0] == "ollacord_recoveries_total"} == {0}

    ollama_emu.fail_next(2, status=500, error="boom")
    await manager.query(prompt="hi")
    await manager.query(prompt="hi", model="missing")
    found = samples(metrics)
    recovered = {k[1]: v for k, v in found.items() if k[0] == "ollacord_recoveries_total"}
    assert recovered == {
        (("kind", "retry"),): 2,
        (("kind", "fallback"),): 1,
        (("kind", "host_switch"),): 0,
    }
    stats = manager.get_statistics()
    assert (stats["retries"], stats["fallbacks"]) == (2, 1)
    await manager.close()
