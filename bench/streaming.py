"""How streamed answers look in Discord when N questions stream at once.

Runs the real bot (``create_bot``) in this process against the Discord and Ollama emulators,
both in one child process (``bench.streaming_child``), so that ``time.process_time()`` here
covers only the bot and the harness's light driving. For each N, N users ask /ask at once
in N channels (``--path mention``: each posts a message mentioning the bot instead, with
MENTION_CHAT on, and the answer is the bot's reply and its follow-up pages); every answer
is ``--tokens`` tokens at ``--rate`` tokens/s, Discord allows 5 edits per 2 s per bucket;
and it prints, p50 and p95 across the N answers:

- first visible: /ask (or the mention) dispatched -> first model text in the answer's first
  message (the original response's first edit, or the reply's creation);
- longest gap between visible updates of the answer's messages, first content to final;
- last token -> final: Ollama wrote the last token -> the final content (with the footer)
  was visible in the Discord emulator;
- edits per answer (successful REST writes), 429s, complete answers, the bot's CPU time
  (also per answer);
- how many REST calls count against Discord's global limit of 50/s (the mention path's
  writes do; /ask's interaction webhooks are exempt), which the emulator enforces as
  Discord does (a global 429);
- where the time goes: the phases of those two latencies (the Discord callback, the bot's
  SessionStore calls, the Ollama request, its first token...) and the bot's event-loop lag.

``--worst`` also prints the edit timeline of each N's answer with the longest gap.

    .venv/bin/python -m bench.streaming [--n 1 10 50 100] [--tokens 400] [--rate 50] [--worst]
        [--path ask|mention]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bench.floor_bot import FloorBot
from bench.streaming_analysis import RoundResult, analyse
from bench.streaming_child import (
    MODEL,
    WARMUP_PROMPT,
    Collected,
    answer_for,
    emulators_process,
    prompt_for,
)
from bench.streaming_probes import (
    RttRecorder,
    counted_logs,
    profile_window,
    timed_replies,
    timed_store,
    watch_loop_lag,
)
from bench.streaming_report import (
    print_notes,
    print_phases,
    print_table,
    print_targets,
    print_worst,
)
from bot.core.config import Settings
from bot.discord_app.app import OllacordBot, create_bot
from bot.discord_app.connection import point_discord_at
from tests.emulators.discord_server import DiscordEmulator, running_client

EDIT_LIMIT = 5
EDIT_WINDOW = 2.0


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


async def run_round(
    n: int,
    tokens: int,
    rate: float,
    profile: tuple[str, float, float] | None = None,
    floor: bool = False,
    path: str = "ask",
) -> RoundResult:
    stream_seconds = tokens / rate
    with (
        emulators_process(n, tokens, rate, EDIT_LIMIT, EDIT_WINDOW, path) as ctl,
        tempfile.TemporaryDirectory() as tmp,
        timed_store() as db,
        timed_replies() as replies,
        counted_logs() as logs,
    ):
        setup = ctl.setup
        settings = Settings.from_mapping(
            {
                "DISCORD_TOKEN": DiscordEmulator.token,
                "OLLAMA_HOST": setup.ollama_url,
                "DEFAULT_MODEL": MODEL,
                "DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                "DEV_GUILD_ID": str(setup.guild_id),
                "MAX_CONCURRENT_REQUESTS": str(n),
                "LOG_LEVEL": "WARNING",
                "MENTION_CHAT": str(path == "mention").lower(),
            }
        )
        point_discord_at(setup.api_base, setup.gateway_url)
        rtts = RttRecorder()
        async with running_bot(settings, rtts, floor):
            # Warm-up in a channel of its own: imports, connection pools, the database.
            await ctl.call("ask", setup.warmup_channel, setup.users[0], WARMUP_PROMPT, 20.0)
            # Long enough for the warm-up's writes to leave Discord's global one-second window.
            await asyncio.sleep(1.2)
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
        path,
    )


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
    parser.add_argument(
        "--path",
        choices=("ask", "mention"),
        default="ask",
        help="how the N users ask: /ask, or a message mentioning the bot (MENTION_CHAT)",
    )
    args = parser.parse_args()
    if args.floor and args.path != "ask":
        parser.error("--floor answers /ask only")
    sample = answer_for(0, args.tokens)
    code = ", a code block across the 2000-char page break" if "```" in sample else ""
    python = os.path.relpath(sys.executable)
    print("$ " + shlex.join([python, "-m", "bench.streaming", *sys.argv[1:]]))
    how = "ask /ask" if args.path == "ask" else "post '<@bot> q###: …' (MENTION_CHAT)"
    buckets = (
        "bucket (the interaction's webhook)"
        if args.path == "ask"
        else "bucket (per channel: one for message creates, one for edits), and the global "
        "limit of 50 requests/s per bot"
    )
    print(
        f"setup: N users {how} at once in N channels; each answer {args.tokens} tokens "
        f"(~{len(sample)} chars{code}) at "
        f"{args.rate:g} tok/s; Discord emulator: {EDIT_LIMIT} edits per {EDIT_WINDOW:g} s per "
        f"{buckets}; MAX_CONCURRENT_REQUESTS=N and Ollama num_parallel=N+1, so all N stream at "
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
        r = asyncio.run(run_round(n, args.tokens, args.rate, profile, args.floor, args.path))
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
