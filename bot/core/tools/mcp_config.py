"""The MCP servers to connect to, read from a JSON file in the ``mcpServers`` shape other MCP
clients (Claude Desktop, Cursor) use::

    {"mcpServers": {
        "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"],
                 "env": {"TZ": "UTC"}, "timeout": 10},
        "docs": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer …"}},
        "old":  {"command": "old-server", "disabled": true}}}

A server has a ``command`` (started as a child process, spoken to over stdio) or a ``url``
(streamable HTTP), not both. Optional: ``args``, ``env`` and ``cwd`` for a command; ``headers``
for a url; ``timeout`` (seconds a call of its tools may take, instead of TOOL_TIMEOUT);
``disabled``. ``type`` ("stdio", "http", "streamable-http"), which some clients write, is
checked against the rest; other keys (``autoApprove``...) are ignored.

The environment of a command is the MCP SDK's default, not the bot's: only HOME, LOGNAME,
PATH, SHELL, TERM and USER are inherited (so DISCORD_TOKEN and ADMIN_TOKEN never reach a
server), with the server's ``env`` on top. Values of ``env`` and ``headers``, and any password
or query of a ``url``, are secrets: never in a repr, a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from bot.core.errors import ConfigError

log = logging.getLogger(__name__)

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPES = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamableHttp": "http"}
_KNOWN_KEYS = frozenset(
    {"command", "args", "env", "cwd", "url", "headers", "timeout", "disabled", "type"}
)
REDACTED = "[redacted]"

Transport = Literal["stdio", "http"]


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One entry of ``mcpServers``: how to reach the server, and its tools' timeout."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = field(default=(), repr=False)  # may carry a token: never shown
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = field(default=None, repr=False)  # shown as `where`, without secrets
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None  # seconds per tool call; None: the hub's (TOOL_TIMEOUT)
    disabled: bool = False

    @property
    def transport(self) -> Transport:
        return "http" if self.url is not None else "stdio"

    @property
    def where(self) -> str:
        """The command, or the URL without credentials nor query: safe to log."""
        if self.url is None:
            return str(self.command)
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs (for the log filter, and our own messages)."""
        values = [*self.env.values(), *self.headers.values()]
        for header_value in self.headers.values():  # "Bearer xyz": the token alone too
            values.extend(header_value.split()[1:])
        if self.url is not None:
            parts = urlsplit(self.url)
            values.extend(v for _, v in parse_qsl(parts.query))
            if parts.password:
                values.append(parts.password)
        return tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with this server's secrets replaced."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def load_mcp_config(path: str | Path) -> list[McpServerConfig]:
    """The servers of the JSON file at ``path``, disabled ones included (in file order).

    Raises ConfigError naming every problem (the file, the server and the key), never a value.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"MCP_CONFIG: cannot read {where}: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"MCP_CONFIG: {where} is not UTF-8 text"]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"MCP_CONFIG: {where} is not valid JSON: {exc.msg} (line {exc.lineno}, "
             f"column {exc.colno})"]
        ) from None  # fmt: skip
    return parse_mcp_config(data, source=where)


def parse_mcp_config(data: Any, *, source: str = "MCP config") -> list[McpServerConfig]:
    """The servers of an already parsed config (see ``load_mcp_config``)."""
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise ConfigError([f'{source}: expected an object with an "mcpServers" object'])
    problems: list[str] = []
    servers: list[McpServerConfig] = []
    for name, entry in data["mcpServers"].items():
        label = f"{source}: mcpServers.{name}"
        if not SERVER_NAME.match(name):
            problems.append(
                f"{source}: server name {name!r} must be 1 to 64 letters, digits, - or _ "
                "(it prefixes the names of its tools)"
            )
            continue
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected an object")
            continue
        server = _parse_server(name, entry, label, problems)
        if server is not None:
            servers.append(server)
    if problems:
        raise ConfigError(problems)
    return servers


def _parse_server(
    name: str, entry: dict[str, Any], label: str, problems: list[str]
) -> McpServerConfig | None:
    before = len(problems)
    ignored = sorted(set(entry) - _KNOWN_KEYS)
    if ignored:
        log.info("MCP server %s: ignoring the keys %s", name, ", ".join(ignored))
    command, url = entry.get("command"), entry.get("url")
    if command is not None and url is not None:
        problems.append(f'{label}: has both "command" and "url"; give one')
    elif command is None and url is None:
        problems.append(f'{label}: needs a "command" (stdio) or a "url" (streamable HTTP)')
    if command is not None and (not isinstance(command, str) or not command.strip()):
        problems.append(f"{label}.command: expected a non-empty string")
    if url is not None and (not isinstance(url, str) or not _is_http_url(url)):
        problems.append(f"{label}.url: expected an http:// or https:// URL")
    kind = entry.get("type")
    if kind is not None:
        if kind == "sse":
            problems.append(f"{label}.type: the SSE transport is not supported; use a "
                            "streamable HTTP url")  # fmt: skip
        elif kind not in _TYPES:
            problems.append(f"{label}.type: expected one of {', '.join(_TYPES)}")
        elif _TYPES[kind] == "stdio" and command is None:
            problems.append(f'{label}.type: "stdio" needs a "command"')
        elif _TYPES[kind] == "http" and url is None:
            problems.append(f'{label}.type: {kind!r} needs a "url"')
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        problems.append(f"{label}.args: expected a list of strings")
    env = _string_map(entry.get("env", {}), f"{label}.env", problems)
    headers = _string_map(entry.get("headers", {}), f"{label}.headers", problems)
    cwd = entry.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd):
        problems.append(f"{label}.cwd: expected a directory path")
    if url is not None and (entry.get("args") or env or cwd is not None):
        problems.append(f'{label}: "args", "env" and "cwd" apply to a "command" only')
    if command is not None and headers:
        problems.append(f'{label}.headers: apply to a "url" only')
    timeout = entry.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        problems.append(f"{label}.timeout: expected a number of seconds greater than 0")
    disabled = entry.get("disabled", False)
    if not isinstance(disabled, bool):
        problems.append(f"{label}.disabled: expected true or false")
    if len(problems) > before:
        return None
    return McpServerConfig(
        name=name,
        command=command,
        args=tuple(args),
        env=env,
        cwd=cwd,
        url=url,
        headers=headers,
        timeout=float(timeout) if timeout is not None else None,
        disabled=disabled,
    )


def _string_map(value: Any, label: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(f"{label}: expected an object of strings")
        return {}
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:  # the keys only: the values may be secrets
        problems.append(f"{label}: the values of {', '.join(map(repr, bad))} must be strings")
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
