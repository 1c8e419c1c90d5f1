"""How streamed answers look in Discord when N questions stream at once.

Runs the real bot (``create_bot``) in this process against the Discord and Ollama emulators,
both in one child process (``bench.streaming_child``), so that ``time.process_time()`` here
covers only the bot and the harness's light driving. For each N, N users ask /ask at once
in N channels; every answer is ``--tokens`` tokens at ``--rate`` tokens/s, Discord allows
5 edits per 2 s per bucket; and it prints, p50 and p95 across the N answers:

- first visible: /ask dispatched -> first edit of the original response showing model text;
- longest gap between visible updates of the answer's messages, first content to final;
- last token -> final: Ollama wrote the last token -> the final content (with the footer)
  was visible in the Discord emulator;
- edits per answer (successful REST writes), 429s, complete answers, the bot's CPU time;
- where the time goes: the phases of those two latencies (the Discord callback, the bot's
  SessionStore calls, the Ollama request, its first token...) and the bot's event-loop lag.

``--worst`` also prints the edit timeline of each N's answer with the longest gap.

    .venv/bin/python -m bench.streaming [--n 1 10 50 100] [--tokens 400] [--rate 50] [--worst]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import math
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord

from bench.floor_bot import FloorBot
from bench.streaming_child import (
    MODEL,
    WARMUP_PROMPT,
    AnswerTimeline,
    Collected,
    answer_for,
    emulators_process,
    prompt_for,
)
from bot.app import OllacordBot, create_bot, point_discord_at
from bot.config import Settings
from bot.discord_reply import InteractionSink
from bot.storage import SessionStore
from bot.streaming import StreamingReply
from tests.emulators.discord_server import running_client

EDIT_LIMIT = 5
EDIT_WINDOW = 2.0
TARGET_N = 50
TARGET_FIRST_VISIBLE = 0.200
TARGET_GAP = 2.0
TARGET_FINAL_SLACK = 0.050
COMPLETE_N = 100
_CLOSER_AT_END = re.compile(r"(`{3,}|~{3,})\Z")
_OPENER_LINE = re.compile(r"(`{3,}|~{3,})[^\n`]*\n")


# -- the bot side -----------------------------------------------------------------------------
class RttRecorder:
    """Durations of the bot's webhook writes (request sent -> response headers), per aiohttp."""

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
            and params.url.path.startswith("/api/v10/webhooks/")
            and params.response.status < 300
        ):
            self.samples.append(time.monotonic() - started)


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


@contextlib.contextmanager
def timed_replies() -> Iterator[list[ReplyMark]]:
    """When each answer's StreamingReply was closed and its final writes ran (this process)."""
    marks: list[ReplyMark] = []
    close, write = StreamingReply.close, InteractionSink.write

    def timed_close(reply: StreamingReply, *args: Any, **kwargs: Any) -> None:
        was_closed = reply.closed
        close(reply, *args, **kwargs)
        sink = reply._sink
        if isinstance(sink, InteractionSink) and not was_closed:
            now = time.monotonic()
            marks.append(ReplyMark(sink._interaction.channel_id or 0, "closed", now, now))

    async def timed_write(sink: InteractionSink, index: int, content: str, *, final: bool) -> None:
        started = time.monotonic()
        try:
            await write(sink, index, content, final=final)
        finally:
            channel = sink._interaction.channel_id or 0
            what = f"{'final write' if final else 'write'} {index}"
            marks.append(ReplyMark(channel, what, started, time.monotonic()))

    StreamingReply.close = timed_close  # type: ignore[method-assign]
    InteractionSink.write = timed_write  # type: ignore[method-assign]
    try:
        yield marks
    finally:
        StreamingReply.close = close  # type: ignore[method-assign]
        InteractionSink.write = write  # type: ignore[method-assign]


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


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, rtts: RttRecorder, floor: bool = False) -> Any:
    bot: discord.Client
    if floor:
        trace = aiohttp.TraceConfig()
        rtts.attach(trace)
        bot = FloorBot(settings, http_trace=trace)
    else:
        ollacord: OllacordBot = create_bot(settings, guild_ready_timeout=0.05)
        rtts.attach(ollacord.rate_limits.trace_config)
        bot = ollacord
    async with running_client(bot, settings.discord_token or "", ready_timeout=30):
        yield bot


# -- one round ---------------------------------------------------------------------------------
@dataclass
class AnswerStats:
    first_visible: float | None
    longest_gap: float | None
    last_to_final: float | None
    writes: int
    complete: bool
    timeline: AnswerTimeline
    last_token_at: float | None
    phases: dict[str, float | None]


@dataclass
class RoundResult:
    n: int
    finished: bool
    answers: list[AnswerStats]
    collected: Collected
    bot_cpu: float
    wall: float
    rtts: list[float]
    db: list[DbCall] = field(default_factory=list)
    loop_lag: list[float] = field(default_factory=list)
    logs: Counter[str] = field(default_factory=Counter)
    replies: list[ReplyMark] = field(default_factory=list)


def rebuild(pages: list[str], expected: str) -> str | None:
    """The answer as the final pages show it: footer line and added fence pairs removed.

    A page the splitter cut inside a code block ends with a closing fence and the next one
    starts by reopening it. The closer is preceded by a "\\n" that may or may not be the
    answer's own (it is added when the cut was not at a line end); the expected answer only
    decides between these two readings, never anything else.
    """
    if not pages:
        return None
    pages = list(pages)
    head, _, last_line = pages[-1].rpartition("\n")
    if not last_line.startswith("-# "):
        return None
    pages[-1] = head
    if not pages[-1]:
        pages.pop()
    text = pages[0] if pages else ""
    for page in pages[1:]:
        opener = _OPENER_LINE.match(page)
        closer = _CLOSER_AT_END.search(text)
        if opener and closer and closer.group(1)[0] == opener.group(1)[0]:
            body = page[opener.end() :]
            cut = text[: closer.start()]
            readings = [cut + body, cut.removesuffix("\n") + body]
            text = next((r for r in readings if expected.startswith(r)), readings[0])
        else:
            text += page
    return text


def percentile(values: list[float], p: float) -> float:
    """Nearest rank (p95 of 10 values is the 10th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def analyse(
    timeline: AnswerTimeline,
    index: int,
    tokens: int,
    collected: Collected,
    db: list[DbCall],
    replies: list[ReplyMark],
) -> AnswerStats:
    expected = answer_for(index, tokens)
    mark = expected.split()[0]
    original = timeline.messages[0] if timeline.messages else []
    first = next((t for t, content in original if content.startswith(mark)), None)
    shown = sorted(t for message in timeline.messages for t, content in message if content)
    final_at = shown[-1] if shown else None
    gap = None
    if first is not None and final_at is not None:
        times = [t for t in shown if first <= t <= final_at]
        gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    first_token, last_token = collected.token_times.get(expected, (None, None))
    asked = collected.chat_requests.get(prompt_for(index))
    pages = [message[-1][1] for message in timeline.messages if message]
    mine = [c for c in db if str(timeline.channel_id) in c.key]
    routed = next((c for c in mine if c.name == "settings_of"), None)
    loaded = next((c for c in mine if c.name == "load_context"), None)
    stored = next((c for c in mine if c.name == "append_turn"), None)
    marks = [m for m in replies if m.channel_id == timeline.channel_id]
    closed = next((m.end for m in marks if m.what == "closed"), None)
    final_sent = max((m.start for m in marks if m.what.startswith("final write")), default=None)
    return AnswerStats(
        first_visible=_since(timeline.dispatched_at, first),
        longest_gap=gap,
        last_to_final=_since(last_token, final_at),
        writes=timeline.writes,
        complete=rebuild(pages, expected) == expected,
        timeline=timeline,
        last_token_at=last_token,
        phases={
            "dispatch→ack": _since(timeline.dispatched_at, timeline.acked_at),
            "ack→DB load": _since(timeline.acked_at, loaded.start if loaded else None),
            "(settings_of)": _since(routed.start, routed.end) if routed else None,
            "DB load_context": _since(loaded.start, loaded.end) if loaded else None,
            "DB→chat request": _since(loaded.end if loaded else None, asked),
            "request→1st tok": _since(asked, first_token),
            "1st tok→visible": _since(first_token, first),
            "last tok→closed": _since(last_token, closed),
            "closed→final sent": _since(closed, final_sent),
            "final sent→shown": _since(final_sent, final_at),
            "DB append_turn": _since(stored.start, stored.end) if stored else None,
        },
    )


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


async def run_round(
    n: int,
    tokens: int,
    rate: float,
    profile: tuple[str, float, float] | None = None,
    floor: bool = False,
) -> RoundResult:
    stream_seconds = tokens / rate
    with (
        emulators_process(n, tokens, rate, EDIT_LIMIT, EDIT_WINDOW) as ctl,
        tempfile.TemporaryDirectory() as tmp,
        timed_store() as db,
        timed_replies() as replies,
        counted_logs() as logs,
    ):
        setup = ctl.setup
        settings = Settings.from_mapping(
            {
                "DISCORD_TOKEN": "test-token",
                "OLLAMA_HOST": setup.ollama_url,
                "DEFAULT_MODEL": MODEL,
                "DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                "DEV_GUILD_ID": str(setup.guild_id),
                "MAX_CONCURRENT_REQUESTS": str(n),
                "LOG_LEVEL": "WARNING",
            }
        )
        point_discord_at(setup.api_base, setup.gateway_url)
        rtts = RttRecorder()
        async with running_bot(settings, rtts, floor):
            # Warm-up in a channel of its own: imports, connection pools, the database.
            await ctl.call("ask", setup.warmup_channel, setup.users[0], WARMUP_PROMPT, 20.0)
            await asyncio.sleep(0.2)
            rtts.samples.clear()
            db.clear()
            replies.clear()
            logs.counts.clear()
            questions = [
                (channel, user, prompt_for(i))
                for i, (channel, user) in enumerate(zip(setup.channels, setup.users, strict=True))
            ]
            timeout = 3 * stream_seconds + 30
            lag: list[float] = []
            monitor = asyncio.create_task(watch_loop_lag(lag))
            cpu0, wall0 = time.process_time(), time.monotonic()
            profiling = asyncio.create_task(profile_window(*profile)) if profile else None
            await ctl.call("invoke", questions)
            finished = await ctl.call("wait_done", timeout, timeout=timeout + 30)
            wall = time.monotonic() - wall0
            await asyncio.sleep(0.3)  # the bot's tail work (history written) after the final edit
            bot_cpu = time.process_time() - cpu0
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
            if profiling is not None:
                await profiling
            collected: Collected = await ctl.call("collect")
    answers = [
        analyse(timeline, i, tokens, collected, db, replies)
        for i, timeline in enumerate(collected.answers)
    ]
    return RoundResult(
        n,
        finished,
        answers,
        collected,
        bot_cpu,
        wall,
        list(rtts.samples),
        db,
        lag,
        logs.counts,
        replies,
    )


# -- output -------------------------------------------------------------------------------------
def _pair(values: list[float], scale: float, fmt: str) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 50) * scale:{fmt}} / {percentile(values, 95) * scale:{fmt}}"


def _present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def print_table(results: list[RoundResult]) -> None:
    head = (
        f"{'N':>4} {'first visible ms':>17} {'longest gap s':>14} {'last tok→final ms':>18}"
        f" {'edit RTT ms':>12} {'edits/answer':>13} {'429s':>5} {'complete':>9}"
        f" {'bot CPU s':>10} {'ms/answer':>10} {'% core':>7} {'emu % core':>11}"
    )
    print(head)
    print(
        f"{'':>4} {'p50 / p95':>17} {'p50 / p95':>14} {'p50 / p95':>18} {'p50 / p95':>12}"
        f" {'p50 / p95':>13}"
    )
    for r in results:
        done = sum(a.complete for a in r.answers)
        print(
            f"{r.n:>4} {_pair(_present([a.first_visible for a in r.answers]), 1000, '.0f'):>17}"
            f" {_pair(_present([a.longest_gap for a in r.answers]), 1, '.2f'):>14}"
            f" {_pair(_present([a.last_to_final for a in r.answers]), 1000, '.0f'):>18}"
            f" {_pair(r.rtts, 1000, '.1f'):>12}"
            f" {_pair([float(a.writes) for a in r.answers], 1, '.0f'):>13}"
            f" {r.collected.count_429:>5} {f'{done}/{r.n}':>9}"
            f" {r.bot_cpu:>10.2f} {r.bot_cpu / r.n * 1000:>10.0f}"
            f" {r.bot_cpu / r.wall * 100:>6.0f}%"
            f" {r.collected.cpu_seconds / r.collected.wall_seconds * 100:>10.0f}%"
        )


FIRST_PHASES = (
    "dispatch→ack",
    "ack→DB load",
    "(settings_of)",
    "DB load_context",
    "DB→chat request",
    "request→1st tok",
    "1st tok→visible",
)
FINAL_PHASES = ("last tok→closed", "closed→final sent", "final sent→shown", "DB append_turn")


def print_phases(results: list[RoundResult]) -> None:
    """Where the first-visible and final times go, from the emulators' and the bot's clocks."""
    print(
        "where the time goes (ms, p50 / p95). Wire events come from the emulators; 'DB' are the\n"
        "bot's SessionStore calls, timed in this process; 'loop lag' is how late a 50 ms timer\n"
        "fired in the bot's event loop. Phases of one answer add up to its total (p95s need\n"
        "not); '(settings_of)' is the conversation router's DB read, part of 'ack→DB load'."
    )
    for title, names, extra in (
        ("question -> first visible", FIRST_PHASES, True),
        ("last token -> final", FINAL_PHASES, False),
    ):
        columns = [*names, "loop lag"] if extra else list(names)
        print(f"  {title}")
        print(f"{'N':>4}" + "".join(f" {c:>17}" for c in columns))
        for r in results:
            cells = [
                _pair(_present([a.phases[name] for a in r.answers]), 1000, ".0f") for name in names
            ]
            if extra:
                cells.append(_pair(r.loop_lag, 1000, ".0f"))
            print(f"{r.n:>4}" + "".join(f" {c:>17}" for c in cells))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_targets(results: list[RoundResult]) -> None:
    by_n = {r.n: r for r in results}
    print("targets:")
    at = by_n.get(TARGET_N)
    if at is None:
        print(f"  N={TARGET_N} not run: first visible, gap and final targets not checked")
    else:
        first = _present([a.first_visible for a in at.answers])
        gaps = _present([a.longest_gap for a in at.answers])
        finals = _present([a.last_to_final for a in at.answers])
        rtt = statistics.median(at.rtts) if at.rtts else 0.0
        bound = rtt + TARGET_FINAL_SLACK
        missing = at.n - min(len(first), len(gaps), len(finals))
        p_first = percentile(first, 95) if first else math.inf
        p_gap = percentile(gaps, 95) if gaps else math.inf
        p_final = percentile(finals, 95) if finals else math.inf
        extra = f" ({missing} answers without a value count as failures)" if missing else ""
        print(
            f"  N={TARGET_N} first visible p95 {p_first * 1000:.0f} ms <= "
            f"{TARGET_FIRST_VISIBLE * 1000:.0f} ms: "
            f"{_verdict(p_first <= TARGET_FIRST_VISIBLE and not missing)}{extra}"
        )
        print(
            f"  N={TARGET_N} longest gap p95 {p_gap:.2f} s <= {TARGET_GAP:.0f} s: "
            f"{_verdict(p_gap <= TARGET_GAP and not missing)}"
        )
        print(
            f"  N={TARGET_N} last token -> final p95 {p_final * 1000:.0f} ms <= median edit RTT "
            f"{rtt * 1000:.1f} ms + {TARGET_FINAL_SLACK * 1000:.0f} ms = {bound * 1000:.0f} ms: "
            f"{_verdict(p_final <= bound and not missing)}"
        )
    full = by_n.get(COMPLETE_N)
    if full is None:
        print(f"  N={COMPLETE_N} not run: 429 and completeness targets not checked")
    else:
        done = sum(a.complete for a in full.answers)
        print(
            f"  N={COMPLETE_N} 429s {full.collected.count_429} == 0: "
            f"{_verdict(full.collected.count_429 == 0)}"
        )
        print(
            f"  N={COMPLETE_N} complete answers {done}/{full.n} = 100%: "
            f"{_verdict(done == full.n and full.finished)}"
        )


def print_notes(results: list[RoundResult]) -> None:
    """Anything that went wrong in a round, with the bot's own warnings and errors."""
    notes: list[str] = []
    for r in results:
        lines: list[str] = []
        if not r.finished:
            lines.append("not every answer reached its final content before the timeout")
        bad = [i for i, a in enumerate(r.answers) if not a.complete]
        if bad:
            pages = [m[-1][1] for m in r.answers[bad[0]].timeline.messages if m]
            shown = " | ".join(pages)[-160:].replace("\n", "⏎")
            lines.append(f"{len(bad)} answers differ from the model's text (questions {bad[:8]})")
            lines.append(f"  question {bad[0]} shows: …{shown}")
        errors = sum(len(a.timeline.errors) for a in r.answers)
        if errors:
            lines.append(f"{errors} Discord error bodies returned to the bot")
        chats = sum(1 for _, path in r.collected.ollama_requests if path == "/api/chat")
        if chats != r.n + 1:
            lines.append(f"{chats} /api/chat requests for {r.n} questions + 1 warm-up")
        if r.collected.max_active_streams < r.n:
            lines.append(
                f"at most {r.collected.max_active_streams} of {r.n} answers streamed at once"
            )
        lines += [f"bot log, {count}x: {line}" for line, count in r.logs.most_common(5)]
        notes += [f"N={r.n}: {line}" for line in lines]
    if notes:
        print("notes:")
        for note in notes:
            print(f"  {note}")


def print_worst(r: RoundResult) -> None:
    """The edit timeline of the answer with the longest gap (times from its dispatch)."""
    candidates = [a for a in r.answers if a.longest_gap is not None]
    if not candidates:
        return
    worst = max(candidates, key=lambda a: a.longest_gap or 0.0)
    t0 = worst.timeline.dispatched_at
    print(f"N={r.n}: timeline of the answer with the longest gap ({worst.longest_gap:.2f} s)")
    events = sorted(
        (t, index, content)
        for index, message in enumerate(worst.timeline.messages)
        for t, content in message
    )
    previous = None
    for t, index, content in events:
        gap = "" if previous is None else f"+{(t - previous) * 1000:6.0f} ms"
        tail = content[-24:].replace("\n", "⏎")
        print(f"  {(t - t0) * 1000:8.0f} ms {gap:>10}  msg {index} len {len(content):>4}  …{tail}")
        previous = t
    if worst.last_token_at is not None:
        print(f"  {(worst.last_token_at - t0) * 1000:8.0f} ms  last token written by Ollama")
    slowest = max(r.answers, key=lambda a: a.last_to_final or 0.0)
    end = slowest.last_token_at
    if end is None or slowest.last_to_final is None:
        return
    print(
        f"N={r.n}: the end of the answer with the slowest final ({slowest.last_to_final * 1000:.0f}"
        " ms), times from its last token; bot-side marks: write start -> end"
    )
    channel = slowest.timeline.channel_id
    rows = [
        (
            m.start,
            f"bot {m.what}" + (f" ({(m.end - m.start) * 1000:.0f} ms)" if m.end > m.start else ""),
        )
        for m in r.replies
        if m.channel_id == channel and m.end >= end - 1.0
    ]
    rows += [
        (t, f"shown: msg {index} len {len(content)}")
        for index, message in enumerate(slowest.timeline.messages)
        for t, content in message
        if t >= end - 1.0
    ]
    for t, what in sorted(rows):
        print(f"  {(t - end) * 1000:+8.0f} ms  {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument(
        "--worst", action="store_true", help="print the edit timeline of each N's worst answer"
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="cProfile the bot's process into FILE (pstats) during the largest N's round",
    )
    parser.add_argument(
        "--profile-window",
        type=float,
        nargs=2,
        default=(0.0, 0.3),
        metavar=("START", "SECONDS"),
        help="what --profile covers, from the questions going out (default: 0 0.3)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="run bench.floor_bot (defer, stream, 4 writes, nothing else) instead of ollacord",
    )
    args = parser.parse_args()
    sample = answer_for(0, args.tokens)
    code = ", a code block across the 2000-char page break" if "```" in sample else ""
    python = os.path.relpath(sys.executable)
    print("$ " + shlex.join([python, "-m", "bench.streaming", *sys.argv[1:]]))
    print(
        f"setup: N users ask /ask at once in N channels; each answer {args.tokens} tokens "
        f"(~{len(sample)} chars{code}) at "
        f"{args.rate:g} tok/s; Discord emulator: {EDIT_LIMIT} edits per {EDIT_WINDOW:g} s per "
        f"bucket; MAX_CONCURRENT_REQUESTS=N and Ollama num_parallel=N+1, so all N stream at "
        f"once; discord.py {discord.__version__}; the bot runs in this process, both emulators "
        f"in one child process: 'bot CPU' is time.process_time() here (bot + light harness "
        f"driving, incl. a 20 Hz loop-lag probe, ~4 ms CPU/s), emulators excluded ('emu % core' "
        f"is theirs); times are time.monotonic(), shared by both processes; p50 / p95 across "
        f"the N answers."
    )
    results: list[RoundResult] = []
    for n in args.n:
        profile = None
        if args.profile and n == max(args.n):
            profile = (args.profile, *args.profile_window)
        r = asyncio.run(run_round(n, args.tokens, args.rate, profile, args.floor))
        results.append(r)
        print(f"  N={n}: done in {r.wall:.1f} s", file=sys.stderr, flush=True)
    print_table(results)
    print_phases(results)
    print_targets(results)
    print_notes(results)
    if args.worst:
        for r in results:
            print_worst(r)


if __name__ == "__main__":
    main()
