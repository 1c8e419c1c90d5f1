"""How the hub reaches one MCP server (``mcp_link`` opens a transport per connection
attempt): a child process over stdio, its stderr relayed to our log, or streamable HTTP.

    transport = open_transport(config, on_end=lose, stderr_tail=tail)
    async with transport as (read, write): ...   # the SDK's Client takes the streams

Both transports wrap the read stream so that its end (the process exited, the server hung
up) is reported at once through ``on_end``: the SDK's session only fails the calls in flight.
A stdio server's stderr is logged at DEBUG on ``<this module>.stderr`` line by line, secrets
redacted, and its last lines are kept in ``stderr_tail`` to explain an exit.
``describe_failure`` says in a few words why a connection failed or ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO, cast

from bot.core.tools.mcp_config import McpServerConfig

stderr_log = logging.getLogger(__name__ + ".stderr")  # what the servers write to stderr

STDERR_LINE_MAX = 500  # characters of one stderr line logged or kept
STDERR_BUFFER_MAX = 4096  # bytes without a newline before they are logged as a line anyway
STDERR_DRAIN_TIMEOUT = 0.5  # seconds to read what an ended process wrote last
FAILURE_TEXT_MAX = 500  # characters of a failure's description


def describe_failure(config: McpServerConfig, exc: BaseException, *, lost: str | None) -> str:
    """Why a connection attempt to ``config``'s server failed or ended, in a few words
    (``lost``: the reason already known, e.g. the read stream ended)."""
    from mcp import MCPError
    from mcp.types import CONNECTION_CLOSED

    exc = _first_leaf(exc)
    if isinstance(exc, FileNotFoundError) and config.transport == "stdio":
        command = str(config.command)
        path = (config.env.get("PATH") if config.env else None) or os.environ.get("PATH")
        if os.sep not in command and shutil.which(command, path=path) is None:
            return f"command not found: {command}"
        return f"cannot start {command}: {exc.strerror or exc}"
    if isinstance(exc, PermissionError) and config.transport == "stdio":
        return f"cannot start {config.command}: {exc.strerror or exc}"
    if lost is not None:
        text = lost
    elif isinstance(exc, MCPError):
        text = exc.message or f"MCP error {exc.code}"
        if exc.code == CONNECTION_CLOSED and config.transport == "stdio":
            text = "the server process exited or closed its output"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:FAILURE_TEXT_MAX]


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def open_transport(
    config: McpServerConfig, *, on_end: Callable[[], None], stderr_tail: deque[str]
) -> contextlib.AbstractAsyncContextManager[tuple[Any, Any]]:
    """The (read, write) streams of one connection to ``config``'s server."""
    if config.transport == "stdio":
        return _stdio(config, on_end, stderr_tail)
    return _http(config, on_end)


@contextlib.asynccontextmanager
async def _stdio(
    config: McpServerConfig, on_end: Callable[[], None], stderr_tail: deque[str]
) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=str(config.command),
        args=list(config.args),
        env=dict(config.env) or None,  # over the SDK's default: HOME, PATH, SHELL... only
        cwd=config.cwd,
    )
    relay = await _StderrRelay.open(config, stderr_tail)
    try:
        async with stdio_client(params, errlog=relay.errlog) as (read, write):
            relay.close_child_end()  # the child holds its own copy
            yield _WatchedReadStream(read, on_end), write
    finally:
        await relay.finish()


@contextlib.asynccontextmanager
async def _http(
    config: McpServerConfig, on_end: Callable[[], None]
) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = dict(config.headers) or None
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(str(config.url), http_client=http) as (read, write),
    ):
        yield _WatchedReadStream(read, on_end), write


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

    def __init__(self, config: McpServerConfig, tail: deque[str]) -> None:
        self._config = config
        self._tail = tail
        self._buffer = b""
        self._done = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None
        self.errlog: TextIO = sys.stderr

    @classmethod
    async def open(cls, config: McpServerConfig, tail: deque[str]) -> _StderrRelay:
        relay = cls(config, tail)
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
        with anyio.CancelScope(shield=True), anyio.move_on_after(STDERR_DRAIN_TIMEOUT):
            await self._done.wait()
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        if len(self._buffer) > STDERR_BUFFER_MAX:
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
        text = self._config.redact(text)[:STDERR_LINE_MAX]
        self._tail.append(text)
        stderr_log.debug("%s: %s", self._config.name, text)
