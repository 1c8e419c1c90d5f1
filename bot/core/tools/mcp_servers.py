"""The tools of MCP servers: connects to the servers of the MCP config (``mcp_config``) with the
official MCP SDK and registers their tools in a ``ToolRegistry`` as ``<server>.<tool>``.

    hub = McpHub.from_settings(settings, registry)   # ConfigError on a bad config
    await hub.start()       # connects to every server at once, waits at most connect_timeout
    ...                     # the registry now has e.g. "time.get_current_time"
    hub.status()            # per server: state, tools, last error, reconnect attempts
    await hub.close()       # disconnects, stops the child processes

A server never takes the bot down. One that cannot be reached, dies or stops answering is
logged once at WARNING, its tools are marked unavailable in the registry, and it is reconnected
in the background with jittered exponential backoff (1 s doubling to 5 min). A call that was
abandoned (timed out, or its answer cancelled) is followed by a probe (``tools/list``): a
server that does not answer that either is restarted, so one hung call cannot wedge the later
ones. A server's tool-list changes (``notifications/tools/list_changed``, or a
``subscriptions/listen`` event on 2026-07-28 connections) re-register its tools.

Each server lives in one long-lived task that enters and exits the SDK's context managers
(anyio task groups, cancel scopes) itself; tool calls from other tasks only send requests
through its session. The SDK (~0.8 s to import) is imported only when a server is started.

This module holds the hub and its public API (``McpHub``, ``McpServerStatus``; it re-exports
``McpServerConfig``, ``load_mcp_config`` and ``result_text``). The rest is in:
``mcp_link`` (one server's connection: connect, backoff, reconnect, probe, calls),
``mcp_transports`` (stdio with its stderr relayed to the log, streamable HTTP; what a failure
means) and ``mcp_tools`` (a server's tools as the registry's, their changes, their results).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bot.core.errors import ConfigError
from bot.core.tools.mcp_config import McpServerConfig, Transport, load_mcp_config
from bot.core.tools.mcp_link import ServerLink, ServerState
from bot.core.tools.mcp_tools import result_text
from bot.core.tools.registry import DEFAULT_TOOL_TIMEOUT, ToolRegistry

if TYPE_CHECKING:
    from bot.core.config import Settings

__all__ = [
    "McpHub",
    "McpServerConfig",
    "McpServerStatus",
    "load_mcp_config",
    "result_text",
]

DEFAULT_CONNECT_TIMEOUT = 20.0
DEFAULT_PROBE_TIMEOUT = 10.0
DEFAULT_BACKOFF_INITIAL = 1.0
DEFAULT_BACKOFF_MAX = 300.0
# A connection that lasted this long resets the backoff; one lost sooner (a server crashing
# at every call) keeps doubling it.
DEFAULT_STABLE_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class McpServerStatus:
    """One server as /healthz and the CLI show it (no secrets: ``where`` is redacted)."""

    name: str
    transport: Transport
    where: str  # the command, or the URL without credentials nor query
    state: ServerState
    tools: int  # tools registered now
    last_error: str | None  # why it last failed or was lost (kept once reconnected)
    reconnect_attempts: int  # failed attempts since it was last connected (0 while connected)
    connections: int  # times it connected (1 after a clean start; more after reconnects)
    protocol_version: str | None = None

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class McpHub:
    """Connects to MCP servers and keeps their tools in ``registry``, source=<server name>.

    ``tool_timeout`` is TOOL_TIMEOUT, for servers without a "timeout" of their own. The other
    parameters are for tests and tuning: each connection attempt (start, handshake, tool list)
    may take ``connect_timeout``; a probe after an abandoned call ``probe_timeout``; retries
    wait ``backoff_initial`` doubling to ``backoff_max`` (±20 % jitter). ``protocol`` is the
    SDK's connect mode: "auto" (2026-07-28 ``server/discover``, falling back to the 2025
    ``initialize`` handshake), or "legacy" (the handshake only).
    """

    def __init__(
        self,
        servers: Sequence[McpServerConfig],
        registry: ToolRegistry,
        *,
        tool_timeout: float = DEFAULT_TOOL_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        stable_after: float = DEFAULT_STABLE_AFTER,
        protocol: str = "auto",
        client_name: str = "ollacord",
    ) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError("MCP server names must be unique")
        self.registry = registry
        self.servers = list(servers)
        self.tool_timeout = tool_timeout
        self.connect_timeout = connect_timeout
        self.probe_timeout = probe_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.protocol = protocol
        self.client_name = client_name
        self._links = {s.name: ServerLink(self, s) for s in self.servers}
        self._started = False
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, registry: ToolRegistry, **options: Any) -> McpHub:
        """The hub of MCP_CONFIG (none: a hub without servers). Raises ConfigError."""
        servers = load_mcp_config(settings.mcp_config) if settings.mcp_config else []
        return cls(servers, registry, tool_timeout=settings.tool_timeout, **options)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values of the config never to be logged (env, headers, URL passwords and queries):
        for the log filter (``bot.ops.logging_setup.SecretFilter``)."""
        return tuple(secret for server in self.servers for secret in server.secrets)

    async def start(self) -> None:
        """Start connecting to every enabled server, and wait until each has connected or
        failed, for at most ``connect_timeout``. Never raises for a server's failure; raises
        ConfigError when servers are configured but the MCP SDK is not installed."""
        if self._started or self._closed:
            return
        self._started = True
        enabled = [link for link in self._links.values() if not link.config.disabled]
        for link in self._links.values():
            if link.config.disabled:
                self.registry.mark_unavailable(link.name, "disabled in the MCP config")
        if not enabled:
            return
        try:  # in a thread: the import takes about a second, the loop has other work
            await asyncio.to_thread(importlib.import_module, "mcp.client.client")
        except ImportError as exc:
            raise ConfigError(
                ["MCP_CONFIG: MCP servers are configured but the mcp package is not installed"]
            ) from exc
        for link in enabled:
            link.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                for link in enabled:
                    await link.settled.wait()

    async def close(self) -> None:
        """Disconnect from every server (child processes stopped) and drop their tools."""
        if self._closed:
            return
        self._closed = True
        links = list(self._links.values())
        for link in links:
            link.request_stop()
        await asyncio.gather(*(link.wait_stopped() for link in links))
        for link in links:
            if not link.config.disabled:
                self.registry.mark_unavailable(link.name, "the MCP client is stopped")

    async def __aenter__(self) -> McpHub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def status(self) -> list[McpServerStatus]:
        """Every configured server, in config order."""
        return [_status(link) for link in self._links.values()]


def _status(link: ServerLink) -> McpServerStatus:
    return McpServerStatus(
        name=link.name,
        transport=link.config.transport,
        where=link.config.where,
        state=link.state,
        tools=link.tool_count,
        last_error=link.last_error,
        reconnect_attempts=link.attempts,
        connections=link.connections,
        protocol_version=link.protocol_version,
    )
