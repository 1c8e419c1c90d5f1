"""The MCP config: the mcpServers shape other clients use, every problem named at once (the
server and the key, never a secret value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.core.config import Settings
from bot.core.errors import ConfigError
from bot.core.tools.mcp_config import McpServerConfig, load_mcp_config, parse_mcp_config
from bot.core.tools.mcp_servers import McpHub
from bot.core.tools.registry import ToolRegistry


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_mcp_config(data, source="mcp.json")
    return caught.value.problems


def test_the_shape_other_clients_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "mcpServers": {
                "time": {
                    "command": "mcp-server-time",
                    "args": ["--local-timezone", "UTC"],
                    "env": {"TZ": "UTC"},
                    "timeout": 10,
                },
                "docs_v2": {
                    "type": "http",
                    "url": "https://docs.example:8443/mcp",
                    "headers": {"Authorization": "Bearer abc.def"},
                },
                "old-one": {"command": "old", "disabled": True, "autoApprove": ["x"]},
            }
        },
    )
    time, docs, old = load_mcp_config(path)
    assert time == McpServerConfig(
        name="time",
        command="mcp-server-time",
        args=("--local-timezone", "UTC"),
        env={"TZ": "UTC"},
        timeout=10.0,
    )
    assert time.transport == "stdio" and time.where == "mcp-server-time"
    assert docs.transport == "http" and docs.headers == {"Authorization": "Bearer abc.def"}
    assert docs.timeout is None and not docs.disabled
    assert old.disabled and old.command == "old"  # unknown keys (autoApprove) are ignored


def test_no_servers(tmp_path: Path) -> None:
    assert load_mcp_config(write(tmp_path, {"mcpServers": {}})) == []


def test_every_problem_is_named_at_once() -> None:
    problems = problems_of(
        {
            "mcpServers": {
                "bad name": {"command": "x"},
                "time.v2": {"command": "x"},
                "both": {"command": "x", "url": "http://h/mcp"},
                "neither": {"args": []},
                "types": {
                    "command": "",
                    "args": "--flag",
                    "env": {"TOKEN": 123},
                    "timeout": 0,
                    "disabled": "yes",
                },
                "web": {"url": "ftp://h/mcp", "headers": ["a"], "env": {"A": "b"}},
                "stdio_headers": {"command": "x", "headers": {"A": "b"}},
                "sse": {"type": "sse", "url": "http://h/sse"},
                "wrong_type": {"type": "stdio", "url": "http://h/mcp"},
                "not_an_object": ["x"],
                "big_timeout": {"command": "x", "timeout": True},
            }
        }
    )
    text = "\n".join(problems)
    for expected in (
        "server name 'bad name' must be 1 to 64 letters, digits, - or _",
        "server name 'time.v2'",
        'mcpServers.both: has both "command" and "url"',
        'mcpServers.neither: needs a "command" (stdio) or a "url"',
        "mcpServers.types.command: expected a non-empty string",
        "mcpServers.types.args: expected a list of strings",
        "mcpServers.types.env: the values of 'TOKEN' must be strings",
        "mcpServers.types.timeout: expected a number of seconds greater than 0",
        "mcpServers.types.disabled: expected true or false",
        "mcpServers.web.url: expected an http:// or https:// URL",
        "mcpServers.web.headers: expected an object of strings",
        'mcpServers.web: "args", "env" and "cwd" apply to a "command" only',
        'mcpServers.stdio_headers.headers: apply to a "url" only',
        "mcpServers.sse.type: the SSE transport is not supported",
        'mcpServers.wrong_type.type: "stdio" needs a "command"',
        "mcpServers.not_an_object: expected an object",
        "mcpServers.big_timeout.timeout: expected a number of seconds",
    ):
        assert expected in text, expected
    assert all(p.startswith("mcp.json: ") for p in problems)
    assert "123" not in text  # a bad value is not repeated: it may be a secret


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON: Expecting property name"),
        ("[]", 'expected an object with an "mcpServers" object'),
        ('{"servers": {}}', 'expected an object with an "mcpServers" object'),
        ('{"mcpServers": []}', 'expected an object with an "mcpServers" object'),
    ],
)
def test_a_file_that_is_not_a_config(tmp_path: Path, content: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_mcp_config(write(tmp_path, content))
    assert expected in str(caught.value)
    assert str(tmp_path / "mcp.json") in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_mcp_config(tmp_path / "nowhere.json")
    assert caught.value.problems == [
        f"MCP_CONFIG: cannot read {tmp_path / 'nowhere.json'}: No such file or directory"
    ]


def test_secrets_stay_out_of_reprs_and_messages() -> None:
    [server] = parse_mcp_config(
        {
            "mcpServers": {
                "docs": {
                    "url": "https://user:pa55word@docs.example/mcp?api_key=k3y-value",
                    "headers": {"Authorization": "Bearer t0ken-value", "X-Team": "t34m"},
                }
            }
        }
    )
    assert server.where == "https://docs.example/mcp"
    for secret in ("pa55word", "k3y-value", "t0ken-value", "t34m"):
        assert secret not in repr(server)
        assert secret in server.secrets
    assert server.redact("401 for Bearer t0ken-value at ?api_key=k3y-value") == (
        "401 for [redacted] at ?api_key=[redacted]"
    )
    gh = {"command": "gh-mcp", "args": ["--token", "ghp_x"], "env": {"TOKEN": "ghp_secret"}}
    [stdio] = parse_mcp_config({"mcpServers": {"gh": gh}})
    assert "ghp_secret" not in repr(stdio) and "ghp_x" not in repr(stdio)
    assert stdio.secrets == ("ghp_secret",)


async def test_the_hub_of_the_settings(tmp_path: Path) -> None:
    registry = ToolRegistry()
    none = McpHub.from_settings(Settings(), registry)
    assert none.servers == [] and none.status() == []
    await none.start()  # nothing to start: the SDK is not even imported
    await none.close()

    path = write(tmp_path, {"mcpServers": {"old": {"command": "old-server", "disabled": True}}})
    hub = McpHub.from_settings(Settings(mcp_config=str(path), tool_timeout=12.0), registry)
    assert hub.tool_timeout == 12.0
    await hub.start()
    [status] = hub.status()
    assert status.state == "disabled" and not status.connected
    assert registry.unavailable == {"old": "disabled in the MCP config"}
    await hub.close()

    with pytest.raises(ConfigError):
        McpHub.from_settings(Settings(mcp_config=str(tmp_path / "missing.json")), registry)
