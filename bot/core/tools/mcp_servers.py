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
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import os
import random
import re
import shutil
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

from bot.core.errors import ConfigError
from bot.core.tools.mcp_config import McpServerConfig, Transport, load_mcp_config
from bot.core.tools.registry import DEFAULT_TOOL_TIMEOUT, Tool, ToolContext, ToolError, ToolRegistry

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as McpTool

    from bot.core.config import Settings

__all__ = [
    "McpHub",
    "McpServerConfig",
    "McpServerStatus",
    "load_mcp_config",
    "result_text",
]

log = logging.getLogger(__name__)
stderr_log = logging.getLogger(__name__ + ".stderr")  # what the servers write to stderr

DEFAULT_CONNECT_TIMEOUT = 20.0
DEFAULT_PROBE_TIMEOUT = 10.0
DEFAULT_BACKOFF_INITIAL = 1.0
DEFAULT_BACKOFF_MAX = 300.0
# A connection that lasted this long resets the backoff; one lost sooner (a server crashing
# at every call) keeps doubling it.
DEFAULT_STABLE_AFTER = 60.0
MAX_TOOL_PAGES = 50
LISTEN_RETRY = 5.0  # seconds before opening a dropped tool-change stream again
STDERR_TAIL_LINES = 3
# MCP's own rule for tool names (SEP-986), so "<server>.<tool>" stays a plain identifier.
TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

ServerState = Literal["disabled", "connecting", "connected", "reconnecting", "stopped"]


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
        self._links = {s.name: _ServerLink(self, s) for s in self.servers}
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
        return [link.status() for link in self._links.values()]


class _ServerLink:
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
                    self._transport(),
                    mode=self.hub.protocol,
                    cache=None,
                    client_info=Implementation(name=self.hub.client_name, version=_version()),
                    message_handler=self._on_message,
                )
                async with client:
                    listing = await self._list_tools(client)
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
                reason = self._describe(exc)
        self._scope = None
        if self._stopping:
            return None
        if scope.cancelled_caught and self._connected_at is None:
            reason = f"did not connect within {self.hub.connect_timeout:g} s"
        elif reason and "exited" in reason and self._stderr_tail:  # its last words explain why
            reason += " (stderr: " + " | ".join(self._stderr_tail)[-300:] + ")"
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
                    listing = await self._list_tools(client)
            except TimeoutError:
                what = "after a call was abandoned" if probe else "for its tool list"
                return f"did not answer within {self.hub.probe_timeout:g} s {what}"
            except Exception as exc:
                return self._lost or self._describe(exc)
            self._register(listing)

    async def _watch_tool_changes(self, client: Client) -> None:
        """On 2026-07-28 connections, changes come on a ``subscriptions/listen`` stream (on
        earlier ones as notifications, see ``_on_message``); re-listen when it drops (an idle
        HTTP stream times out), less and less often if it keeps failing."""
        import anyio
        from mcp.client.subscriptions import ListenNotSupportedError

        capability = client.server_capabilities.tools
        if capability is None or not capability.list_changed:
            return
        pause = LISTEN_RETRY
        while True:
            opened = time.monotonic()
            try:
                async with client.listen(tools_list_changed=True) as events:
                    async for _event in events:
                        self._want(client, relist=True)
            except ListenNotSupportedError:
                return  # a 2025 session: the server notifies without being asked
            except Exception as exc:
                log.debug("MCP server %s: the tool-change stream ended: %r", self.name, exc)
            stable = time.monotonic() - opened >= self.hub.stable_after
            pause = LISTEN_RETRY if stable else min(pause * 2, self.hub.backoff_max)
            await anyio.sleep(pause)
            self._want(client, relist=True)  # changes may have been missed meanwhile

    async def _on_message(self, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):
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

    # --- transports ------------------------------------------------------------------------

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._stdio() if self.config.transport == "stdio" else self._http()

    @contextlib.asynccontextmanager
    async def _stdio(self) -> AsyncIterator[tuple[Any, Any]]:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        config = self.config
        params = StdioServerParameters(
            command=str(config.command),
            args=list(config.args),
            env=dict(config.env) or None,  # over the SDK's default: HOME, PATH, SHELL... only
            cwd=config.cwd,
        )
        relay = await _StderrRelay.open(self)
        try:
            async with stdio_client(params, errlog=relay.errlog) as (read, write):
                relay.close_child_end()  # the child holds its own copy
                yield _WatchedReadStream(read, self._on_output_end), write
        finally:
            await relay.finish()

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[tuple[Any, Any]]:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        headers = dict(self.config.headers) or None
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(str(self.config.url), http_client=http) as (read, write),
        ):
            yield _WatchedReadStream(read, self._on_output_end), write

    def _on_output_end(self) -> None:
        if self.config.transport == "stdio":
            self._lose("the server process exited or closed its output")
        else:
            self._lose("the server closed the connection")

    # --- tools -----------------------------------------------------------------------------

    async def _list_tools(self, client: Client) -> list[McpTool]:
        tools: list[McpTool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

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
        tools = []
        for mcp_tool in listing:
            if not TOOL_NAME.match(mcp_tool.name):
                log.warning("MCP server %s: skipping the tool %r (not a valid tool name)",
                            self.name, mcp_tool.name[:200])  # fmt: skip
                continue
            tools.append(self._tool(mcp_tool))
        self.hub.registry.replace_source(self.name, tools)
        names = sorted(tool.name for tool in tools)
        if not initial and names != self._tool_names:
            log.info("MCP server %s: its tools changed, now %d", self.name, len(tools))
        self._tool_names = names
        self.tool_count = len(tools)

    def _tool(self, mcp_tool: McpTool) -> Tool:
        tool_name = mcp_tool.name

        async def handler(arguments: dict[str, Any], _context: ToolContext) -> str:
            return await self.call(tool_name, arguments)

        schema = dict(mcp_tool.input_schema or {})
        schema.setdefault("type", "object")
        if schema.get("type") == "object":
            schema.setdefault("properties", {})
        description = (mcp_tool.description or mcp_tool.title or "").strip()
        return Tool(
            name=f"{self.name}.{tool_name}",
            description=description or f"The tool {tool_name} of the MCP server {self.name}.",
            parameters=schema,
            handler=handler,
            timeout=self.timeout,
            source=self.name,
        )

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
                tool_name, arguments, read_timeout_seconds=self.timeout + 5
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

    def _describe(self, exc: BaseException) -> str:
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        exc = _first_leaf(exc)
        if isinstance(exc, FileNotFoundError) and self.config.transport == "stdio":
            command = str(self.config.command)
            path = (self.config.env.get("PATH") if self.config.env else None) or os.environ.get(
                "PATH"
            )
            if os.sep not in command and shutil.which(command, path=path) is None:
                return f"command not found: {command}"
            return f"cannot start {command}: {exc.strerror or exc}"
        if isinstance(exc, PermissionError) and self.config.transport == "stdio":
            return f"cannot start {self.config.command}: {exc.strerror or exc}"
        if self._lost is not None:
            text = self._lost
        elif isinstance(exc, MCPError):
            text = exc.message or f"MCP error {exc.code}"
            if exc.code == CONNECTION_CLOSED and self.config.transport == "stdio":
                text = "the server process exited or closed its output"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return text[:500]

    def status(self) -> McpServerStatus:
        return McpServerStatus(
            name=self.name,
            transport=self.config.transport,
            where=self.config.where,
            state=self.state,
            tools=self.tool_count,
            last_error=self.last_error,
            reconnect_attempts=self.attempts,
            connections=self.connections,
            protocol_version=self.protocol_version,
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ollacord")
    except PackageNotFoundError:
        return "0"


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def result_text(result: CallToolResult) -> str:
    """A tool result as the text a model reads: text content joined; images, audio and
    binary resources named (``[image: image/png]``); the structured content when nothing
    else was given."""
    from mcp.types import (
        AudioContent,
        EmbeddedResource,
        ImageContent,
        ResourceLink,
        TextContent,
        TextResourceContents,
    )

    parts: list[str] = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        elif isinstance(item, ImageContent):
            parts.append(f"[image: {item.mime_type}]")
        elif isinstance(item, AudioContent):
            parts.append(f"[audio: {item.mime_type}]")
        elif isinstance(item, ResourceLink):
            parts.append(f"[resource link: {item.uri}]")
        elif isinstance(item, EmbeddedResource):
            resource = item.resource
            if isinstance(resource, TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[resource: {resource.uri} ({resource.mime_type or 'binary'})]")
        else:
            parts.append(f"[{getattr(item, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        import json

        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


class _WatchedReadStream:
    """A transport's read stream that tells when it ends (the server exited or hung up): the
    SDK's session only fails the calls in flight, we want to reconnect at once."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:  # the SDK reads it where the transport provides it
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        import anyio

        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._on_end()
            raise

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _StderrRelay(asyncio.Protocol):
    """A stdio server's stderr, read through a pipe: logged at DEBUG line by line (secrets
    redacted), the last lines kept to explain an exit. Falls back to our stderr where pipes
    cannot be read this way (Windows)."""

    def __init__(self, link: _ServerLink) -> None:
        self._link = link
        self._buffer = b""
        self._done = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None
        self.errlog: TextIO = sys.stderr

    @classmethod
    async def open(cls, link: _ServerLink) -> _StderrRelay:
        relay = cls(link)
        if sys.platform == "win32":  # pragma: no cover
            relay._done.set()
            return relay
        read_fd, write_fd = os.pipe()
        reader = os.fdopen(read_fd, "rb", buffering=0)
        relay.errlog = cast(TextIO, os.fdopen(write_fd, "wb", buffering=0))
        try:
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: relay, reader)
        except BaseException:
            reader.close()
            relay.errlog.close()
            raise
        return relay

    def close_child_end(self) -> None:
        if self.errlog is not sys.stderr:
            self.errlog.close()

    async def finish(self) -> None:
        """After the process ended: read what it wrote last (briefly), then close."""
        import anyio

        self.close_child_end()
        with anyio.CancelScope(shield=True), anyio.move_on_after(0.5):
            await self._done.wait()
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        if len(self._buffer) > 4096:
            lines.append(self._buffer)
            self._buffer = b""
        for line in lines:
            self._line(line)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buffer:
            self._line(self._buffer)
            self._buffer = b""
        self._done.set()

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        text = self._link.config.redact(text)[:500]
        self._link._stderr_tail.append(text)
        stderr_log.debug("%s: %s", self._link.name, text)
