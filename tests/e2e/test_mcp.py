"""MCP servers end to end: the real bot started with MCP_CONFIG, real server processes (the
time server from PyPI, tests/fixtures/mcp/flaky_server.py), the emulated model calling
their tools. Waits poll with a generous deadline; nothing is timed."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.core.tools.mcp_servers import McpServerStatus
from bot.discord_app.routing import Place, channel_key
from tests.e2e.conftest import World, chat_bodies, stored_messages, world
from tests.e2e.test_ask import ask, finished, footer_of, pages_without_footer
from tests.fixtures.mcp.servers import (
    WAIT,
    flaky,
    starts,
    time_server,
    wait_until,
    write_mcp_config,
)


async def allow_tools(w: World, names: Sequence[str]) -> None:
    """What an admin does with /settings tools: these tools, and only these, in the channel."""
    place = Place(w.channel.id, w.admin.id, w.guild.id)
    set_tools = getattr(w.bot.router, "set_tools", None)
    if set_tools is not None:
        await set_tools(place, list(names))
    else:
        await w.bot.manager.update_session_settings(channel_key(w.channel.id), tools=list(names))


def server_status(w: World, name: str) -> McpServerStatus:
    return next(s for s in w.bot.manager.mcp.status() if s.name == name)


def last_tool_results(w: World) -> list[dict[str, Any]]:
    """The tool messages of the latest request to the model."""
    return [m for m in chat_bodies(w.ollama)[-1]["messages"] if m.get("role") == "tool"]


async def answer_text(w: World, prompt: str) -> tuple[str, str]:
    """Ask in the channel and wait for the whole reply: (answer, footer)."""
    messages = await finished(await ask(w, prompt), timeout=WAIT)
    [text] = pages_without_footer(messages)
    return text, footer_of(messages)


# --- a real server from PyPI ------------------------------------------------------------


async def test_the_time_server_answers_through_the_bot(tmp_path: Path) -> None:
    config = write_mcp_config(tmp_path, {"time": {"command": time_server()}})
    async with world(tmp_path, MCP_CONFIG=config) as w:
        assert server_status(w, "time").connected
        await allow_tools(w, ["time.get_current_time"])
        w.ollama.script_tools(
            [[("time.get_current_time", {"timezone": "Asia/Tokyo"})]],
            final="In Tokyo: {tool:time.get_current_time}",
        )
        text, footer = await answer_text(w, "What time is it in Tokyo?")

        first = chat_bodies(w.ollama)[0]
        assert [t["function"]["name"] for t in first["tools"]] == ["time.get_current_time"]
        [result] = last_tool_results(w)
        assert result["tool_name"] == "time.get_current_time"
        told = json.loads(result["content"])  # what the server itself answered
        assert told["timezone"] == "Asia/Tokyo"
        when = datetime.fromisoformat(told["datetime"])
        assert when.utcoffset() == timedelta(hours=9)  # Japan keeps no summer time
        assert abs(when - datetime.now(ZoneInfo("Asia/Tokyo"))) < timedelta(hours=1)
        assert text == f"In Tokyo: {result['content']}"
        assert footer.endswith("🔧 time.get_current_time")


# --- servers that misbehave -------------------------------------------------------------


async def test_a_server_that_crashes_mid_call(tmp_path: Path) -> None:
    config = write_mcp_config(tmp_path, {"flaky": flaky(tmp_path)})
    async with world(tmp_path, MCP_CONFIG=config) as w:
        assert server_status(w, "flaky").connected
        await allow_tools(w, ["flaky.crash", "flaky.echo"])
        w.ollama.script_tools([[("flaky.crash", {})]], final="It said: {tool:flaky.crash}")
        text, footer = await answer_text(w, "Crash it.")

        [result] = last_tool_results(w)
        assert "the MCP server flaky stopped during the call" in result["content"]
        assert text == f"It said: {result['content']}"
        assert footer.endswith("🔧 flaky.crash")

        # The bot goes on answering, without the server first, then with it once it is back.
        w.ollama.clear_tool_scripts()
        w.ollama.set_reply("Still here.")
        assert (await answer_text(w, "Are you there?"))[0] == "Still here."
        await wait_until(lambda: server_status(w, "flaky").connections == 2, "a reconnection")
        await wait_until(lambda: server_status(w, "flaky").connected, "the server's tools")
        w.ollama.script_tools([[("flaky.echo", {"text": "hi"})]], final="{tool:flaky.echo}")
        text, _ = await answer_text(w, "Echo hi.")
        assert text.startswith("hi (pid ")
        pids = starts(tmp_path)
        assert len(pids) == 2 and text == f"hi (pid {pids[1]})"
        stored = await stored_messages(w, channel_key(w.channel.id), 9)
        assert [m["role"] for m in stored].count("tool") == 2


async def test_a_server_that_hangs_times_out(tmp_path: Path) -> None:
    config = write_mcp_config(tmp_path, {"flaky": flaky(tmp_path) | {"timeout": 0.5}})
    async with world(tmp_path, MCP_CONFIG=config) as w:
        await allow_tools(w, ["flaky.hang"])
        w.ollama.script_tools([[("flaky.hang", {})]], final="Gave up: {tool:flaky.hang}")
        text, _ = await answer_text(w, "Wait forever.")
        assert text == "Gave up: Error: the tool did not answer within 0.5 s."
        assert w.bot.manager.stats.tool_outcomes == {("flaky.hang", "timeout"): 1}


async def test_a_server_that_never_starts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.core.tools")
    config = write_mcp_config(tmp_path, {"missing": {"command": "ollacord-no-such-mcp-server"}})
    async with world(tmp_path, MCP_CONFIG=config, HTTP_PORT="0") as w:
        w.ollama.set_reply("I answer anyway.")
        text, _ = await answer_text(w, "Hello?")
        assert text == "I answer anyway."
        assert "missing" in w.bot.manager.tools.unavailable

        assert w.bot.http_server is not None
        url = f"http://127.0.0.1:{w.bot.http_server.port}/healthz"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        assert body["status"] == "healthy"
        assert body["mcp"]["status"] == "degraded"
        assert body["mcp"]["down"] == ["missing"]
        [missing] = body["mcp"]["servers"]
        assert missing["last_error"] == "command not found: ollacord-no-such-mcp-server"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("MCP server missing" in w for w in warnings), warnings
