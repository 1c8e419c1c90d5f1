"""MCP servers through the hub, against real processes: the time server from PyPI, and
tests/fixtures/mcp/flaky_server.py (an MCPServer whose tools crash, hang or freeze it), over
stdio and streamable HTTP.

Nothing here times anything: waits poll the hub's status with a generous deadline, and the
hubs use a short backoff so a reconnection comes quickly.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core.tools.mcp_config import parse_mcp_config
from bot.core.tools.mcp_servers import McpHub, McpServerStatus
from bot.core.tools.mcp_tools import result_text
from bot.core.tools.registry import ToolOutcome, ToolRegistry, ToolSet
from tests.fixtures.mcp.servers import (
    EXIT_AT_ONCE,
    FLAKY,
    flaky,
    starts,
    time_server,
    wait_until,
)

HubFactory = Callable[..., McpHub]


@pytest.fixture
async def make_hub() -> AsyncIterator[HubFactory]:
    """Hubs over fresh registries, with a fast backoff; all closed at the end."""
    hubs: list[McpHub] = []

    def factory(servers: dict[str, Any], **options: Any) -> McpHub:
        settings: dict[str, Any] = {
            "backoff_initial": 0.05,
            "backoff_max": 0.5,
            "connect_timeout": 30.0,
            "probe_timeout": 10.0,
        }
        settings.update(options)
        hub = McpHub(parse_mcp_config({"mcpServers": servers}), ToolRegistry(), **settings)
        hubs.append(hub)
        return hub

    yield factory
    for hub in hubs:
        await hub.close()


async def run(
    hub: McpHub, name: str, /, *, limit: float | None = None, **arguments: Any
) -> ToolOutcome:
    """One call through a ToolSet, as an answer makes it (``limit``: the tool's timeout)."""
    tool = hub.registry.get(name)
    assert tool is not None, f"{name} is not registered: {hub.registry.names()}"
    if limit is not None:
        tool = replace(tool, timeout=limit)
    [outcome] = await ToolSet({name: tool}).run(
        [{"function": {"name": name, "arguments": arguments}}]
    )
    return outcome


def reaped(pid: int) -> bool:
    """The process is gone, zombie included (Linux; elsewhere: assumed)."""
    return not Path("/proc").is_dir() or not Path(f"/proc/{pid}").exists()


def status(hub: McpHub, name: str) -> McpServerStatus:
    return next(s for s in hub.status() if s.name == name)


def pid_of(outcome: ToolOutcome) -> int:
    assert outcome.ok, outcome
    return int(outcome.content.rsplit("pid ", 1)[1].rstrip(")"))


# --- a real server from PyPI ------------------------------------------------------------


async def test_the_time_server(make_hub: HubFactory) -> None:
    hub = make_hub({"time": {"command": time_server()}}, tool_timeout=20.0)
    await hub.start()

    assert status(hub, "time").connected and status(hub, "time").tools == 2
    assert {"time.get_current_time", "time.convert_time"} <= set(hub.registry.names())
    tool = hub.registry.get("time.get_current_time")
    assert tool is not None and tool.source == "time" and tool.timeout == 20.0
    assert "timezone" in tool.parameters["properties"] and tool.description

    tools = hub.registry.select(["time.get_current_time"])
    [outcome] = await tools.run(
        [{"function": {"name": "time.get_current_time", "arguments": {"timezone": "UTC"}}}]
    )
    assert outcome.status == "ok", outcome
    assert json.loads(outcome.content)["timezone"] == "UTC"


# --- a server that dies or hangs ---------------------------------------------------------


async def test_a_server_killed_mid_call_is_reconnected(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    hub = make_hub({"flaky": flaky(tmp_path)})
    await hub.start()
    first = pid_of(await run(hub, "flaky.echo", text="hello"))

    crashed = await run(hub, "flaky.crash")
    assert crashed.status == "error"
    assert "the MCP server flaky stopped during the call" in crashed.content

    await wait_until(lambda: status(hub, "flaky").connections == 2, "a reconnection")
    await wait_until(lambda: status(hub, "flaky").connected, "the server's tools")
    second = pid_of(await run(hub, "flaky.echo", text="again"))
    assert second != first and starts(tmp_path) == [first, second]
    lost = status(hub, "flaky")
    assert lost.last_error is not None and "exited" in lost.last_error
    assert "crashing on purpose" in lost.last_error  # the server's last words on stderr
    assert "flaky" not in hub.registry.unavailable


async def test_a_hung_call_times_out_and_the_next_call_works(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    hub = make_hub({"flaky": flaky(tmp_path)})
    await hub.start()
    first = pid_of(await run(hub, "flaky.echo", text="hello"))

    hung = await run(hub, "flaky.hang", limit=0.5)
    assert hung.status == "timeout"
    # The server still answers (the probe after the abandoned call says so): same process.
    assert pid_of(await run(hub, "flaky.echo", text="after")) == first
    assert status(hub, "flaky").connections == 1


async def test_a_frozen_server_is_restarted(make_hub: HubFactory, tmp_path: Path) -> None:
    hub = make_hub({"flaky": flaky(tmp_path)}, probe_timeout=1.0)
    await hub.start()
    first = pid_of(await run(hub, "flaky.echo", text="hello"))

    frozen = await run(hub, "flaky.freeze", limit=0.5)
    assert frozen.status == "timeout"

    await wait_until(lambda: status(hub, "flaky").connections == 2, "a restart")
    await wait_until(lambda: status(hub, "flaky").connected, "the server's tools")
    assert pid_of(await run(hub, "flaky.echo", text="after")) != first
    assert "did not answer within 1 s after a call was abandoned" in str(
        status(hub, "flaky").last_error
    )


# --- servers that cannot start -----------------------------------------------------------


async def test_servers_that_cannot_start_do_not_stop_the_others(
    make_hub: HubFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.core.tools")
    hub = make_hub(
        {
            "missing": {"command": "ollacord-no-such-mcp-server"},
            "quitter": {"command": sys.executable, "args": [str(EXIT_AT_ONCE)]},
            "flaky": flaky(tmp_path),
        }
    )
    await hub.start()  # no exception escapes

    assert status(hub, "flaky").connected
    missing, quitter = status(hub, "missing"), status(hub, "quitter")
    assert missing.state == quitter.state == "reconnecting"
    assert missing.tools == quitter.tools == 0
    assert missing.last_error == "command not found: ollacord-no-such-mcp-server"
    assert quitter.last_error is not None and "exited" in quitter.last_error
    assert "FLAKY_API_KEY is missing" in quitter.last_error
    assert set(hub.registry.unavailable) == {"missing", "quitter"}
    assert all(name.startswith("flaky.") for name in hub.registry.names())

    # Retried in the background, and logged once.
    await wait_until(
        lambda: min(status(hub, n).reconnect_attempts for n in ("missing", "quitter")) >= 3,
        "a few retries",
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "MCP server missing" in w]) == 1
    assert len([w for w in warnings if "MCP server quitter" in w]) == 1

    await hub.close()
    assert {s.state for s in hub.status()} == {"stopped"}
    assert hub.registry.names() == []


async def test_a_server_that_never_answers_the_handshake(make_hub: HubFactory) -> None:
    silent = {"command": sys.executable, "args": ["-c", "import time; time.sleep(120)"]}
    hub = make_hub({"silent": silent}, connect_timeout=1.0)
    await hub.start()  # returns after the connect timeout at most
    await wait_until(lambda: status(hub, "silent").last_error is not None, "the failure")
    assert status(hub, "silent").last_error == "did not connect within 1 s"
    assert not status(hub, "silent").connected


# --- streamable HTTP ---------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    """The fixture server serving streamable HTTP on 127.0.0.1; its /mcp URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(FLAKY), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # uvicorn waits for open streams to end
            process.kill()
            process.wait()


async def test_a_streamable_http_server(
    http_server: str, make_hub: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.core.tools")
    secret = "s3cret-team-key"
    hub = make_hub({"web": {"url": http_server, "headers": {"X-Team-Key": secret}}})
    await hub.start()  # the server may still be starting: the hub retries until it answers
    await wait_until(lambda: status(hub, "web").connected, "the HTTP server")

    echoed = await run(hub, "web.echo", text="over http")
    assert echoed.ok and echoed.content.startswith("over http")
    assert (await run(hub, "web.header", name="X-Team-Key")).content == secret
    web = status(hub, "web")
    assert web.transport == "http" and web.where == http_server
    assert hub.secrets == (secret,)
    await hub.close()  # before the server stops: its listen stream would hold uvicorn up
    assert secret not in caplog.text


# --- what the model reads ---------------------------------------------------------------


async def test_results_as_the_model_reads_them(make_hub: HubFactory, tmp_path: Path) -> None:
    hub = make_hub({"flaky": flaky(tmp_path) | {"timeout": 7}})
    await hub.start()
    assert hub.registry.get("flaky.echo") is not None
    assert hub.registry.get("flaky.echo").timeout == 7.0  # type: ignore[union-attr]

    failed = await run(hub, "flaky.fail", reason="no reason")
    assert failed.status == "error" and "cannot do that: no reason" in failed.content
    picture = await run(hub, "flaky.picture")
    assert picture.ok and picture.content == "a red dot\n[image: image/png]"
    unknown = await run(hub, "flaky.echo")  # a missing argument: the server's error
    assert unknown.status == "error"


def test_every_kind_of_content_as_text() -> None:
    from mcp import types

    result = types.CallToolResult(
        content=[
            types.TextContent(text="one"),
            types.ImageContent(data="AA==", mime_type="image/png"),
            types.AudioContent(data="AA==", mime_type="audio/wav"),
            types.ResourceLink(name="log", uri="file:///var/log/app.log"),
            types.EmbeddedResource(
                resource=types.TextResourceContents(uri="file:///notes.txt", text="two")
            ),
            types.EmbeddedResource(
                resource=types.BlobResourceContents(
                    uri="file:///a.bin", blob="AA==", mime_type="application/zip"
                )
            ),
        ]
    )
    assert result_text(result).split("\n") == [
        "one",
        "[image: image/png]",
        "[audio: audio/wav]",
        "[resource link: file:///var/log/app.log]",
        "two",
        "[resource: file:///a.bin (application/zip)]",
    ]
    structured = types.CallToolResult(content=[], structured_content={"temperature": 21.5})
    assert json.loads(result_text(structured)) == {"temperature": 21.5}


async def test_the_environment_of_a_stdio_server(
    make_hub: HubFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "not-for-mcp-servers")
    hub = make_hub({"flaky": flaky(tmp_path, FLAKY_GREETING="hi")})
    await hub.start()
    assert (await run(hub, "flaky.getenv", name="FLAKY_GREETING")).content == "hi"
    assert (await run(hub, "flaky.getenv", name="PATH")).content == os.environ["PATH"]
    assert (await run(hub, "flaky.getenv", name="DISCORD_TOKEN")).content == "<unset>"


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_tool_list_changes_are_registered(
    make_hub: HubFactory, tmp_path: Path, protocol: str
) -> None:
    hub = make_hub({"flaky": flaky(tmp_path)}, protocol=protocol)
    await hub.start()
    expected = "2025-11-25" if protocol == "legacy" else "2026-07-28"
    assert status(hub, "flaky").protocol_version == expected

    assert (await run(hub, "flaky.add_tool", name="newcomer")).ok
    await wait_until(lambda: "flaky.newcomer" in hub.registry, "the new tool")
    assert (await run(hub, "flaky.newcomer")).content == "newcomer was added"
    assert status(hub, "flaky").tools == len(hub.registry.names())


# --- shutting down ------------------------------------------------------------------------


async def test_close_stops_every_process(
    make_hub: HubFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = make_hub({"flaky": flaky(tmp_path)})
    await hub.start()
    [pid] = starts(tmp_path)
    assert (await run(hub, "flaky.echo", text="x")).ok
    tool = hub.registry.get("flaky.echo")

    await hub.close()
    assert status(hub, "flaky").state == "stopped" and hub.registry.names() == []
    assert hub.registry.unavailable == {"flaky": "the MCP client is stopped"}
    assert reaped(pid)  # gone, no zombie left
    # A tool set chosen before the close gets an error, not a hang.
    assert tool is not None
    late = await ToolSet({tool.name: tool}).run(
        [{"function": {"name": tool.name, "arguments": {"text": "late"}}}]
    )
    assert late[0].status == "error" and "not connected" in late[0].content
    await hub.close()  # twice is fine
    gc.collect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
