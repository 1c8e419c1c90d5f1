"""One MCP server's connection, kept alive: ``ServerLink`` connects in its own long-lived
task, registers the server's tools in the hub's registry, and on a failure marks them
unavailable, waits (jittered exponential backoff) and connects again. A call that was
abandoned is followed by a probe (``tools/list``): a server that does not answer it either is
restarted. Tool-list changes (notifications, or a ``subscriptions/listen`` stream on
2026-07-28 connections) re-register the tools. Its state is what the hub's status shows.

The task enters and exits the SDK's context managers (anyio task groups, cancel scopes)
itself; tool calls from other tasks only send requests through its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from bot.core.tools.mcp_config import McpServerConfig
from bot.core.tools.mcp_tools import list_tools, registry_tools, result_text, watch_tool_changes
from bot.core.tools.mcp_transports import describe_failure, open_transport
from bot.core.tools.registry import ToolError

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import Tool as McpTool

    from bot.core.tools.mcp_servers import McpHub

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 3
STDERR_IN_REASON_MAX = 300  # characters of the stderr tail added to an exit's reason
CALL_TIMEOUT_MARGIN = 5.0  # seconds the SDK waits beyond the tool's own timeout

ServerState = Literal["disabled", "connecting", "connected", "reconnecting", "stopped"]


class ServerLink:
    """One server: its connection task, its state, and the handler of its tools."""

    def __init__(self, hub: McpHub, config: McpServerConfig) -> None:
        self.hub = hub
        self.config = config
        self.name = config.name
        self.timeout = config.timeout or hub.tool_timeout
        self.settled = asyncio.Event()  # the first attempt connected or failed
        self.state: ServerState = "disabled" if config.disabled else "connecting"
        self.last_error: str | None = None
        self.streak = 0  # failures since a stable connection: the backoff level
        self.attempts = 0  # failures since the last connection
        self.connections = 0
        self.tool_count = 0
        self._tool_names: list[str] = []
        self.protocol_version: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected_at: float | None = None  # when the current connection was made
        self._client: Client | None = None
        self._scope: Any = None  # the anyio CancelScope of the current attempt
        self._stopping = False
        self._wake = asyncio.Event()
        self._lost: str | None = None
        self._probe = False
        self._relist = False
        self._warned = False
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    # --- lifecycle (all in the link's own task) -----------------------------------------

    def start(self) -> None:
        self.hub.registry.mark_unavailable(self.name, "connecting")
        self._task = asyncio.create_task(self._run(), name=f"mcp-server:{self.name}")

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.settled.set()
        if self._scope is not None:
            self._scope.cancel()

    async def wait_stopped(self) -> None:
        task = self._task
        if task is not None:
            try:
                await asyncio.shield(task)  # a cancelled close() still lets the task finish
            except asyncio.CancelledError:
                if not task.cancelled():  # we are cancelled, not the task (cancelled at exit)
                    raise
            except Exception:
                log.exception("MCP server %s: its connection task failed", self.name)
        if self.state != "disabled":
            self.state = "stopped"
        self._client = None
        self.tool_count = 0

    async def _run(self) -> None:
        while not self._stopping:
            self._connected_at = None
            reason = await self._attempt()
            if self._stopping:
                break
            lasted = time.monotonic() - (self._connected_at or math.inf)
            if lasted >= self.hub.stable_after:
                self.streak = 0
            self.streak += 1
            self._failed(reason or "the connection ended", lost=self._connected_at is not None)
            delay = self._backoff()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    while not self._stopping:
                        self._wake.clear()
                        await self._wake.wait()

    def _backoff(self) -> float:
        hub = self.hub
        delay = min(hub.backoff_max, hub.backoff_initial * 2 ** min(self.streak - 1, 30))
        return delay * random.uniform(0.8, 1.2)

    async def _attempt(self) -> str | None:
        """One connection, from start to end: why it failed or ended (None: we stopped it)."""
        import anyio
        from mcp import Client
        from mcp.types import Implementation

        self._lost, self._probe, self._relist = None, False, False
        self._stderr_tail.clear()
        reason: str | None = None
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stopping:
                scope.cancel()
            scope.deadline = anyio.current_time() + self.hub.connect_timeout
            try:
                client = Client(
                    open_transport(
                        self.config, on_end=self._on_output_end, stderr_tail=self._stderr_tail
                    ),
                    mode=self.hub.protocol,
                    cache=None,
                    client_info=Implementation(name=self.hub.client_name, version=_version()),
                    message_handler=self._on_message,
                )
                async with client:
                    listing = await list_tools(client)
                    scope.deadline = math.inf
                    self._connected(client, listing)
                    try:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(self._watch_tool_changes, client)
                            reason = await self._serve(client)
                            tg.cancel_scope.cancel()
                    finally:
                        self._client = None
            except Exception as exc:
                reason = describe_failure(self.config, exc, lost=self._lost)
        self._scope = None
        if self._stopping:
            return None
        if scope.cancelled_caught and self._connected_at is None:
            reason = f"did not connect within {self.hub.connect_timeout:g} s"
        elif reason and "exited" in reason and self._stderr_tail:  # its last words explain why
            reason += " (stderr: " + " | ".join(self._stderr_tail)[-STDERR_IN_REASON_MAX:] + ")"
        return reason

    async def _serve(self, client: Client) -> str | None:
        """While connected: handle probes and tool-list changes until the connection is lost."""
        import anyio

        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return None
            if self._lost is not None:
                return self._lost
            if not (self._probe or self._relist):
                continue
            probe, self._probe, self._relist = self._probe, False, False
            try:
                with anyio.fail_after(self.hub.probe_timeout):
                    listing = await list_tools(client)
            except TimeoutError:
                what = "after a call was abandoned" if probe else "for its tool list"
                return f"did not answer within {self.hub.probe_timeout:g} s {what}"
            except Exception as exc:
                return self._lost or describe_failure(self.config, exc, lost=self._lost)
            self._register(listing)

    async def _watch_tool_changes(self, client: Client) -> None:
        await watch_tool_changes(
            client,
            self.name,
            on_change=lambda: self._want(client, relist=True),
            stable_after=self.hub.stable_after,
            max_pause=self.hub.backoff_max,
        )

    async def _on_message(self, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):  # a 2025 session's way
            self._want(None, relist=True)
        elif isinstance(message, Exception):
            log.debug("MCP server %s: transport error: %r", self.name, message)

    def _want(self, client: Client | None, *, relist: bool = False, probe: bool = False) -> None:
        """Ask the connection's task for a tool-list refresh or a probe; ``client``: the
        connection that asks (None: the current one); a former connection's wishes are void."""
        if client is not None and client is not self._client:
            return
        self._relist |= relist
        self._probe |= probe
        self._wake.set()

    def _lose(self, reason: str, client: Client | None = None) -> None:
        """The connection (``client``; None: the current one) is gone: reconnect."""
        if client is not None and client is not self._client:
            return
        if self._lost is None:
            self._lost = reason
        self._wake.set()

    # --- transport and tools -------------------------------------------------------------

    def _on_output_end(self) -> None:
        if self.config.transport == "stdio":
            self._lose("the server process exited or closed its output")
        else:
            self._lose("the server closed the connection")

    def _connected(self, client: Client, listing: list[McpTool]) -> None:
        self._client = client
        self._connected_at = time.monotonic()
        self.connections += 1
        self.protocol_version = client.protocol_version
        self.state = "connected"
        self._register(listing, initial=True)
        again = " again" if self.connections > 1 else ""
        log.info(
            "MCP server %s connected%s (%s, protocol %s): %d tools",
            self.name, again, self.config.where, self.protocol_version, self.tool_count,
        )  # fmt: skip
        self._warned = False
        self.attempts = 0
        self.settled.set()

    def _register(self, listing: list[McpTool], *, initial: bool = False) -> None:
        tools = registry_tools(self.name, listing, self.call, timeout=self.timeout)
        self.hub.registry.replace_source(self.name, tools)
        names = sorted(tool.name for tool in tools)
        if not initial and names != self._tool_names:
            log.info("MCP server %s: its tools changed, now %d", self.name, len(tools))
        self._tool_names = names
        self.tool_count = len(tools)

    async def call(self, tool_name: str, arguments: dict[str, Any]) -> str:
        """Call a tool of this server; its text, or ToolError with what the model should read."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        client = self._client
        if client is None:
            why = f": {self.last_error}" if self.last_error else ""
            raise ToolError(f"the MCP server {self.name} is not connected{why}")
        try:
            # The registry times the call out at self.timeout; the SDK's own timeout is a
            # backstop for callers that do not.
            result = await client.call_tool(
                tool_name, arguments, read_timeout_seconds=self.timeout + CALL_TIMEOUT_MARGIN
            )
        except asyncio.CancelledError:
            self._want(client, probe=True)  # abandoned: is the server still answering?
            raise
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._lose("the connection closed during a call", client)
                raise ToolError(f"the MCP server {self.name} stopped during the call") from exc
            if exc.code == REQUEST_TIMEOUT:
                self._want(client, probe=True)
                raise TimeoutError(f"the MCP server {self.name} did not answer") from exc
            raise ToolError(self.config.redact(exc.message or f"MCP error {exc.code}")) from exc
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or f"the tool {tool_name} failed")
        return text

    # --- state -----------------------------------------------------------------------------

    def _failed(self, reason: str, *, lost: bool) -> None:
        reason = self.config.redact(reason)
        self.last_error = reason
        self.attempts += 1
        self.state = "reconnecting"
        self.tool_count = 0
        self.protocol_version = None
        self.hub.registry.mark_unavailable(self.name, reason)
        if not self._warned:
            self._warned = True
            what = "was lost" if lost else "is unavailable"
            log.warning(
                "MCP server %s (%s) %s: %s; retrying in the background",
                self.name, self.config.where, what, reason,
            )  # fmt: skip
        else:
            log.debug("MCP server %s: attempt %d failed: %s", self.name, self.attempts, reason)
        self.settled.set()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ollacord")
    except PackageNotFoundError:
        return "0"
