"""What bench.streaming measures inside the bot's process: REST round trips, the
SessionStore's calls, when each reply ended and wrote, warnings, event-loop lag, a profile.

The wrappers patch classes for the duration of a round only (this process, never the bot's
code on disk)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp

from bot.discord_app.replies import ChannelSink, InteractionSink
from bot.presentation.streaming import StreamingReply
from bot.storage import SessionStore


class RttRecorder:
    """Durations of the bot's answer writes (request sent -> response headers), per aiohttp:
    webhook (/ask) and channel message (mention) POSTs and PATCHes."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def attach(self, config: aiohttp.TraceConfig) -> None:
        config.on_request_start.append(self._start)
        config.on_request_end.append(self._end)

    async def _start(
        self, _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: Any
    ) -> None:
        ctx.bench_started = time.monotonic()

    async def _end(
        self, _session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        started = getattr(ctx, "bench_started", None)
        if (
            started is not None
            and params.method in ("PATCH", "POST")
            and _answer_write(params.url.path)
            and params.response.status < 300
        ):
            self.samples.append(time.monotonic() - started)


def _answer_write(path: str) -> bool:
    parts = path.split("/")  # "", "api", "v10", ...
    return len(parts) > 4 and (
        parts[3] == "webhooks" or (parts[3] == "channels" and parts[5:6] == ["messages"])
    )


DB_CALLS = ("settings_of", "load_context", "append_turn")


@dataclass(frozen=True)
class DbCall:
    name: str
    key: str  # the session id(s) it was called with
    start: float
    end: float


@contextlib.contextmanager
def timed_store() -> Iterator[list[DbCall]]:
    """The SessionStore calls an /ask makes, timed (wrapped in this process only)."""
    calls: list[DbCall] = []
    originals = {name: getattr(SessionStore, name) for name in DB_CALLS}

    def wrap(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(store: SessionStore, key: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await method(store, key, *args, **kwargs)
            finally:
                calls.append(DbCall(name, str(key), started, time.monotonic()))

        return timed

    for name, method in originals.items():
        setattr(SessionStore, name, wrap(name, method))
    try:
        yield calls
    finally:
        for name, method in originals.items():
            setattr(SessionStore, name, method)


@dataclass(frozen=True)
class ReplyMark:
    channel_id: int
    what: str  # "closed" (the answer ended in the bot), "write" or "final write" (a page's last)
    start: float
    end: float


def _channel_of(sink: object) -> int | None:
    if isinstance(sink, InteractionSink):
        return sink._interaction.channel_id or 0
    if isinstance(sink, ChannelSink):
        return sink._reply_to.channel.id
    return None


@contextlib.contextmanager
def timed_replies() -> Iterator[list[ReplyMark]]:
    """When each answer's StreamingReply was closed and its final writes ran (this process),
    for /ask (InteractionSink) and mention (ChannelSink) answers."""
    marks: list[ReplyMark] = []
    close = StreamingReply.close
    writes = {sink: sink.write for sink in (InteractionSink, ChannelSink)}

    def timed_close(reply: StreamingReply, *args: Any, **kwargs: Any) -> None:
        was_closed = reply.closed
        close(reply, *args, **kwargs)
        channel = _channel_of(reply._sink)
        if channel is not None and not was_closed:
            now = time.monotonic()
            marks.append(ReplyMark(channel, "closed", now, now))

    def timed(write: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def timed_write(sink: Any, index: int, content: str, *, final: bool) -> None:
            started = time.monotonic()
            try:
                await write(sink, index, content, final=final)
            finally:
                what = f"{'final write' if final else 'write'} {index}"
                marks.append(ReplyMark(_channel_of(sink) or 0, what, started, time.monotonic()))

        return timed_write

    StreamingReply.close = timed_close  # type: ignore[method-assign]
    for sink, write in writes.items():
        sink.write = timed(write)  # type: ignore[method-assign]
    try:
        yield marks
    finally:
        StreamingReply.close = close  # type: ignore[method-assign]
        for sink, write in writes.items():
            sink.write = write  # type: ignore[method-assign]


class LogCounter(logging.Handler):
    """Counts the bot's warnings and errors (one line each) instead of printing tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            first = str(exc).splitlines()[0] if str(exc) else ""
            line = f"{line}: {type(exc).__name__}: {first}"
        self.counts[f"{record.levelname} {record.name}: {line}"[:160]] += 1


@contextlib.contextmanager
def counted_logs() -> Iterator[LogCounter]:
    handler = LogCounter()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


LAG_INTERVAL = 0.05


async def watch_loop_lag(lags: list[float]) -> None:
    """How late a 50 ms timer fires: how long the bot's event loop keeps callbacks waiting."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(LAG_INTERVAL)
        lags.append(max(0.0, time.monotonic() - started - LAG_INTERVAL))


async def profile_window(path: str, start: float, seconds: float) -> None:
    """cProfile this process from ``start`` s after the questions go out, for ``seconds``."""
    import cProfile

    await asyncio.sleep(start)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await asyncio.sleep(seconds)
    finally:
        profiler.disable()
        profiler.dump_stats(path)
