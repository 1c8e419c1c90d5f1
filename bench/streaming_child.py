"""The emulators of ``bench.streaming`` (Discord and Ollama) in one child process.

The parent (which runs the bot) talks to the child over a multiprocessing Pipe: each request
is a tuple ``(command, *args)`` and gets ``("ok", value)`` or ``("error", traceback)``.
Commands: ``ask`` (one question, awaited: the warm-up), ``invoke`` (ask in every channel at
once), ``wait_done`` (until every answer shows its final content), ``collect`` (the recorded
timelines) and ``stop``. The child asks by /ask, or with ``path="mention"`` by a message
mentioning the bot (``bench.streaming_drivers``, ``bench.streaming_mentions``).

Times are ``time.monotonic()``: CLOCK_MONOTONIC on Linux is system-wide, so the child's
timestamps and the parent's are on the same clock.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

MODEL = "llama3.2"
WARMUP_PROMPT = "warmup: say ok"
_TAG = re.compile(r"^q(\d+):")
_TEXT = (
    "the quick brown fox jumps over lazy dogs while streaming answers arrive token by "
    "token into discord messages edited at a steady pace without bursts or long freezes "
    "and every channel gets its own distinct text so that a mix up shows at once"
)
_WORDS = tuple(_TEXT.split(" "))
# The code block starts once the answer is this long, so that it straddles the first page
# boundary (2000 characters) and the splitter has to close and reopen the fence. It follows
# a prose line directly: a blank line before it would be the natural place to cut instead.
CODE_AT = 1850
CODE_LINES = 10


def prompt_for(index: int) -> str:
    return f"q{index:03d}: tell me something long"


def answer_for(index: int, tokens: int) -> str:
    """A distinct answer of exactly ``tokens`` emulator tokens (``\\s*\\S+`` each)."""
    rng = random.Random(index)
    out = [f"A{index:03d}"]
    length = len(out[0])
    code_done = False
    while len(out) < tokens:
        left = tokens - len(out)
        if not code_done and length >= CODE_AT:
            code_done = True
            block = ["\n```python"]
            for line in range(CODE_LINES):
                block += [f"\nvalue_{line:02d}", " =", f" f({index},{rng.randrange(1000)})"]
            block.append("\n```")
            if len(block) + 1 <= left:  # only a whole block; then prose again
                out += [*block, "\nAfter"]
                length += sum(map(len, block)) + 6
                continue
        word = f" {rng.choice(_WORDS)}"
        if len(out) % 25 == 0:
            word = f" #{index:03d}"  # the channel's mark all along the answer
        out.append(word)
        length += len(word)
    return "".join(out[:tokens])


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return str(users[-1].get("content") or "") if users else ""


def reply_for(tokens: int) -> Callable[[dict[str, Any]], str]:
    def reply(body: dict[str, Any]) -> str:
        match = _TAG.match(_last_user_text(body))
        return answer_for(int(match.group(1)), tokens) if match else "ok"

    return reply


# -- what the child sends back ---------------------------------------------------------------
@dataclass
class AnswerTimeline:
    channel_id: int
    dispatched_at: float
    acked_at: float | None
    # Per message (original first, then follow-ups): [(time, content)], creation included.
    messages: list[list[tuple[float, str]]]
    writes: int  # successful REST calls that wrote one of the answer's messages
    rate_limited: int  # 429s on this answer's webhook bucket
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Collected:
    answers: list[AnswerTimeline]
    count_429: int
    token_times: dict[str, tuple[float, float]]  # answer text -> (first, last token written)
    chat_requests: dict[str, float]  # prompt -> when its /api/chat request arrived
    ollama_requests: list[tuple[str, str]]  # (method, path)
    max_active_streams: int
    cpu_seconds: float  # the child's CPU time during the measured round
    wall_seconds: float
    # When each REST call of the round arrived that Discord counts against a bot's global
    # limit (50 requests/s; interaction callbacks and webhooks are exempt). The emulator
    # does not enforce that limit, so this is how far over it a round would go.
    global_calls: list[float] = field(default_factory=list)


@dataclass
class Setup:
    api_base: str
    gateway_url: str
    ollama_url: str
    guild_id: int
    channels: list[int]  # one per question
    users: list[int]  # the asker in each channel
    warmup_channel: int


# -- the child -------------------------------------------------------------------------------
# How the last line of a final reply starts: the footer, or a failure or stop notice.
_FINAL_LINE = ("-# ", "⚠️", "⏹️")


def shows_final(messages: list[Any]) -> bool:
    """The last message shows an answer's final content: footer or notice, no Stop button."""
    if not messages:
        return False
    last = messages[-1]
    return last.content.rsplit("\n", 1)[-1].startswith(_FINAL_LINE) and not last.components


def _record_token_times(token_times: dict[str, tuple[float, float]]) -> None:
    """Timestamp, per answer, when its first and its last content token were written.

    The emulator does not record it, so ``ollama_answers.play`` (looked up at call time by
    ``send_stream``) is wrapped here, in the child only.
    """
    from tests.emulators import ollama_answers

    original_play = ollama_answers.play

    async def play(
        answer: Any, rate: Any, emit: Callable[[str, Any], Awaitable[None]] | None
    ) -> Any:
        key = "".join(answer.content)

        async def timed(kind: str, value: Any) -> None:
            assert emit is not None
            await emit(kind, value)
            if kind == "content":
                now = time.monotonic()
                token_times[key] = (token_times.get(key, (now, now))[0], now)

        return await original_play(answer, rate, timed if emit is not None else None)

    ollama_answers.play = play


def _serve(
    conn: Connection, n: int, tokens: int, rate: float, edit_limit: int, window: float, path: str
) -> None:
    from bench.streaming_drivers import AskDriver, Driver
    from bench.streaming_mentions import MentionDriver
    from tests.emulators.discord_server import DiscordEmulator
    from tests.emulators.ollama_server import OllamaEmulator

    token_times: dict[str, tuple[float, float]] = {}
    _record_token_times(token_times)

    async def main() -> None:
        discord_emu = DiscordEmulator(edit_limit=edit_limit, edit_window=window)
        ollama = OllamaEmulator(
            tokens_per_second=rate, num_parallel=max(n, 1) + 1, max_queue=4 * n + 16
        )
        ollama.set_reply(reply_for(tokens))
        await discord_emu.start()
        await ollama.start()
        guild = discord_emu.add_guild("Bench Guild")
        channels, users = [], []
        for i in range(n):
            channels.append(discord_emu.add_channel(guild.id, f"bench-{i}").id)
            user = discord_emu.add_user(f"user{i}")
            discord_emu.add_member(guild.id, user.id)
            users.append(user.id)
        warmup = discord_emu.add_channel(guild.id, "warmup").id
        conn.send(
            Setup(
                discord_emu.api_base,
                discord_emu.gateway_url,
                ollama.url,
                guild.id,
                channels,
                users,
                warmup,
            )
        )
        loop = asyncio.get_running_loop()

        def _collected(answers: list[AnswerTimeline], cpu: float, wall: float) -> Collected:
            return Collected(
                answers=answers,
                count_429=discord_emu.count_429(),
                token_times=dict(token_times),
                chat_requests={
                    _last_user_text(q.json): q.time
                    for q in ollama.requests
                    if q.path == "/api/chat" and q.json is not None
                },
                ollama_requests=[(q.method, q.path) for q in ollama.requests],
                max_active_streams=ollama.max_active_seen,
                cpu_seconds=cpu,
                wall_seconds=wall,
                global_calls=[
                    c.at
                    for c in discord_emu.calls
                    if c.at >= time.monotonic() - wall
                    and not c.path.startswith(("/webhooks/", "/interactions/"))
                ],
            )

        driver: Driver = (
            MentionDriver(discord_emu, _collected)
            if path == "mention"
            else AskDriver(discord_emu, guild.id, _collected)
        )

        try:
            while True:
                ready = loop.create_future()
                loop.add_reader(conn.fileno(), lambda f=ready: f.done() or f.set_result(None))
                try:
                    await ready
                finally:
                    loop.remove_reader(conn.fileno())
                try:
                    command, *args = conn.recv()
                except EOFError:
                    return
                if command == "stop":
                    conn.send(("ok", None))
                    return
                try:
                    conn.send(("ok", await driver.handle(command, *args)))
                except Exception:
                    conn.send(("error", traceback.format_exc()))
        finally:
            await ollama.stop()
            await discord_emu.stop()

    asyncio.run(main())


class EmulatorControl:
    """The parent's end: ``await call(command, *args)`` without blocking its event loop."""

    def __init__(self, conn: Connection, setup: Setup) -> None:
        self._conn = conn
        self.setup = setup

    async def call(self, command: str, *args: Any, timeout: float = 120.0) -> Any:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        self._conn.send((command, *args))
        ready = loop.create_future()
        fd = self._conn.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout)
        finally:
            loop.remove_reader(fd)
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the emulator process failed on {command!r}:\n{value}")
        return value


@contextmanager
def child_process(target: Callable[..., None], *args: Any) -> Iterator[EmulatorControl]:
    """Run ``target(conn, *args)`` in a spawned process; it sends its setup, then serves."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, *args), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(60):
            raise RuntimeError("the emulator process did not start")
        yield EmulatorControl(parent, parent.recv())
    finally:
        try:
            parent.send(("stop",))
            if parent.poll(10):
                parent.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)


@contextmanager
def emulators_process(
    n: int, tokens: int, rate: float, edit_limit: int, edit_window: float, path: str = "ask"
) -> Iterator[EmulatorControl]:
    """Both emulators in a child process, with ``n`` channels (and askers) plus a warm-up one;
    questions are asked by ``path``: "ask" (/ask) or "mention" (a message mentioning the bot)."""
    with child_process(_serve, n, tokens, rate, edit_limit, edit_window, path) as ctl:
        yield ctl
