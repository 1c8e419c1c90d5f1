"""The registry and a query's tool set: calls run concurrently, each bounded in time and in
the size of its result; every call the model made gets an answer."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.tools.registry import (
    MAX_TOOL_CALLS_PER_ROUND,
    Tool,
    ToolContext,
    ToolRegistry,
)

SCHEMA = {"type": "object", "properties": {}}


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": arguments}}


def tool(name: str, handler: Any, **options: Any) -> Tool:
    return Tool(name, f"the {name} tool", SCHEMA, handler, **options)


async def echo(arguments: dict[str, Any], context: ToolContext) -> str:
    return f"echo {arguments.get('n')}"


async def test_every_call_gets_an_answer_even_past_the_round_limit() -> None:
    toolset = ToolRegistry([tool("echo", echo, default_on=True)]).select(None)
    calls = [call("echo", n=i) for i in range(MAX_TOOL_CALLS_PER_ROUND + 2)]
    outcomes = await toolset.run(calls)
    assert len(outcomes) == len(calls)
    assert [o.content for o in outcomes[:MAX_TOOL_CALLS_PER_ROUND]] == [
        f"echo {i}" for i in range(MAX_TOOL_CALLS_PER_ROUND)
    ]
    assert all(o.status == "error" and "not run" in o.content for o in outcomes[-2:])


async def test_failures_timeouts_and_unknown_names_are_results_for_the_model() -> None:
    async def broken(arguments: dict[str, Any], context: ToolContext) -> str:
        raise RuntimeError("the disk is on fire")

    async def stuck(arguments: dict[str, Any], context: ToolContext) -> str:
        await asyncio.Event().wait()
        return "never"

    registry = ToolRegistry([tool("broken", broken), tool("stuck", stuck, timeout=0.05)])
    outcomes = await registry.select(["broken", "stuck"]).run(
        [call("broken"), call("stuck"), call("nope")]
    )
    assert [o.status for o in outcomes] == ["error", "timeout", "unknown"]
    assert "the disk is on fire" in outcomes[0].content
    assert "broken, stuck" in outcomes[2].content  # the model is told what exists


async def test_results_are_bounded_and_string_arguments_parsed() -> None:
    async def big(arguments: dict[str, Any], context: ToolContext) -> str:
        return "x" * 10_000 + str(arguments)

    registry = ToolRegistry([tool("big", big, max_result_chars=100)])
    [outcome] = await registry.select(["big"]).run(
        [{"function": {"name": "big", "arguments": '{"a": 1}'}}]
    )
    assert len(outcome.content) == 100 and outcome.content.endswith("(truncated)")
    assert outcome.arguments == {"a": 1}


def test_selection_defaults_and_sources() -> None:
    registry = ToolRegistry(
        [tool("on", echo, default_on=True), tool("off", echo), tool("srv.t", echo, source="srv")]
    )
    assert set(registry.select(None).tools) == {"on"}
    assert not registry.select(None).chosen
    chosen = registry.select(["off", "srv.t", "gone"])
    assert set(chosen.tools) == {"off", "srv.t"} and chosen.chosen
    registry.mark_unavailable("srv", "it died")
    assert "srv.t" not in registry and registry.unavailable == {"srv": "it died"}
    registry.replace_source("srv", [tool("srv.u", echo, source="srv")])
    assert registry.names() == ["off", "on", "srv.u"] and registry.unavailable == {}
