"""The load run: many questions over many channels and members, faults injected at random.

The real bot (``create_bot``) runs in this process against the Discord and Ollama emulators
(the e2e ``world``), on SQLite. ``--questions`` /ask questions go over ``--channels``
channels and ``--members`` members (each channel and member gets an equal share), each
member keeping at most two open (the bot's per-member cap, 3 by default, is on). A seeded
schedule (``bench.load_plan``) gives each question its answer (some past one Discord page)
and its fault: Ollama 500s and 503s once (retried), 500 on every attempt, a stall before
the first token (retried) and mid-stream, an error line before any text (retried) and
mid-answer, a dropped stream, a model Ollama does not have, 429s on the answer's Discord
writes, and a 500 or 503 from Discord's edge on an edit (every REST call goes through the
emulators' ``DiscordEdge``). Checked, per question: a completed answer is delivered in
full (its pages joined, footer and page-break fences aside, equal the emulator's answer)
and stored once with that answer; a failed one shows a clear warning and stores nothing.
Then: no unhandled exception (the loop's exception handler, ERROR logs with a traceback,
tasks never retrieved, unraisable exceptions), every channel's and member's questions all
ended, and memory: RSS (VmRSS) before and after each repetition and the peak (VmHWM). The
emulators share the process, so the absolute figures include them; the bound is on growth
between the first repetition and the last (the emulators' records are dropped between
repetitions). Exits 1 when a check fails; the failing questions are printed with their
faults, and the same ``--seed`` replays the schedule.

    .venv/bin/python -m bench.load --questions 500 --channels 100 --members 50 --seed 1 \\
        --repeat 3 [--rate 400] [--print-schedule]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import load_plan
from bench.load_checks import Memory, Watch, memory
from bench.load_report import Summary, lines, summarise
from bench.load_run import run_repetition
from tests.e2e.conftest import World, world
from tests.emulators.discord_faults import DiscordEdge
from tests.emulators.discord_server import Channel, User

# Growth of RSS between the end of the first repetition and the end of the last that counts
# as bounded (the first one warms caches, pools and the allocator's arenas).
GROWTH_BOUND_MIB: Final = 48.0
EMULATOR_SLOTS: Final = 8  # more than the bot's 4: a stalled stream the bot gave up on
# keeps its emulator slot until the stall ends, and must not delay the next question
SETTINGS: Final = {
    "MAX_QUEUED_PER_MEMBER": "3",  # the default cap, on
    "FIRST_TOKEN_TIMEOUT": "2",
    "STREAM_IDLE_TIMEOUT": "2",
}


@dataclass(frozen=True)
class LoadConfig:
    questions: int = 500
    channels: int = 100
    members: int = 50
    seed: int = 1
    repeat: int = 3
    rate: float = 400.0  # tokens per second per answer, from the Ollama emulator

    def command(self) -> str:
        return (
            f".venv/bin/python -m bench.load --questions {self.questions} --channels "
            f"{self.channels} --members {self.members} --seed {self.seed} --repeat "
            f"{self.repeat} --rate {self.rate:g}"
        )


@dataclass
class LoadReport:
    config: LoadConfig
    summaries: list[Summary] = field(default_factory=list)
    memories: list[Memory] = field(default_factory=list)  # before, then after each repetition
    watch: Watch = field(default_factory=Watch)
    faults: Counter[str] = field(default_factory=Counter)

    @property
    def growth_mib(self) -> float | None:
        after = self.memories[1:]
        return (after[-1].rss_kib - after[0].rss_kib) / 1024 if len(after) > 1 else None

    @property
    def problems(self) -> list[str]:
        found = [p for s in self.summaries for p in s.problems]
        found += [f"unhandled: {line}" for line in self.watch.unhandled]
        if (growth := self.growth_mib) is not None and growth > GROWTH_BOUND_MIB:
            found.append(f"RSS grew {growth:.1f} MiB over the repetitions")
        return found

    def lines(self) -> list[str]:
        head = [
            f"load: {self.config.command()}",
            "faults: " + ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())),
        ]
        body = lines(
            self.summaries,
            self.memories,
            self.watch.unhandled,
            self.watch.error_logs,
            GROWTH_BOUND_MIB,
        )
        tail = [f"problem: {p}" for p in self.problems[:50]]
        return [*head, *body, *tail, "PASS" if not self.problems else "FAIL"]


def answers_by_tag(replies: dict[str, str]) -> Any:
    def answer(body: dict[str, Any]) -> str:
        question = str((body.get("messages") or [{}])[-1].get("content", ""))
        found = load_plan.TAG.search(question)
        return replies.get(found.group(0), "Fine.") if found else f"Echo: {question}"

    return answer


def forget_records(w: World, edge: DiscordEdge, channels: list[Channel]) -> None:
    """Drop what the emulators recorded of a finished repetition (requests, REST calls,
    interactions and their messages), so that memory growth is the bot's."""
    edge.calls.clear()
    edge.rules.clear()
    w.ollama.requests.clear()
    w.ollama.truncations.clear()
    w.discord.rest.calls.clear()
    w.discord.rest.limiter.forced.clear()
    w.discord.gateway.received.clear()
    state = w.discord.world
    gone = set()
    for rec in state.interactions.values():
        gone.update(m.id for m in (rec.original, *rec.followups) if m is not None)
    state.interactions.clear()
    state.interactions_by_token.clear()
    for message_id in gone:
        state.messages.pop(message_id, None)
    for channel in channels:
        channel.message_ids = [m for m in channel.message_ids if m not in gone]


async def run_load(
    config: LoadConfig, workdir: Path, progress: Callable[[str], None] = lambda line: None
) -> LoadReport:
    report = LoadReport(config)
    report.watch.install(asyncio.get_running_loop())
    try:
        ollama = {"num_parallel": EMULATOR_SLOTS, "tokens_per_second": config.rate}
        async with (
            world(workdir, ollama_options=ollama, **SETTINGS) as w,
            DiscordEdge(w.discord) as edge,
        ):
            with edge.in_front():  # every REST call through Discord's edge, which can fail
                await _repetitions(report, w, edge, progress)
    finally:
        report.watch.uninstall()
    return report


async def _repetitions(
    report: LoadReport, w: World, edge: DiscordEdge, progress: Callable[[str], None]
) -> None:
    config = report.config
    guild = w.guild.id
    channels = [w.discord.add_channel(guild, f"load-{i}") for i in range(config.channels)]
    members: list[User] = []
    for i in range(config.members):
        members.append(w.discord.add_user(f"member-{i}"))
        w.discord.add_member(guild, members[-1].id)
    replies: dict[str, str] = {}
    w.ollama.set_reply(answers_by_tag(replies))
    report.memories.append(memory())
    for repetition in range(config.repeat):
        plan = load_plan.schedule(
            questions=config.questions,
            channels=config.channels,
            members=config.members,
            seed=config.seed,
            repetition=repetition,
        )
        replies.update({q.tag: q.reply for q in plan})
        report.faults.update(q.fault for q in plan)
        result = await run_repetition(w, edge, plan, channels, members)
        report.summaries.append(summarise(result, config.channels, config.members))
        del result
        replies.clear()
        forget_records(w, edge, channels)
        report.memories.append(memory())
        done = report.summaries[-1]
        progress(
            f"repetition {repetition + 1} of {config.repeat}: {done.seconds:.0f} s, {done.outcomes}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = LoadConfig()
    parser.add_argument("--questions", type=int, default=defaults.questions)
    parser.add_argument("--channels", type=int, default=defaults.channels)
    parser.add_argument("--members", type=int, default=defaults.members)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--repeat", type=int, default=defaults.repeat)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="tokens/s")
    parser.add_argument(
        "--print-schedule", action="store_true", help="every question's channel, member, fault"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = LoadConfig(
        args.questions, args.channels, args.members, args.seed, args.repeat, args.rate
    )
    print(f"$ {shlex.join(sys.argv[:1])} ... seed {config.seed}", flush=True)
    if args.print_schedule:
        for repetition in range(config.repeat):
            plan = load_plan.schedule(
                questions=config.questions,
                channels=config.channels,
                members=config.members,
                seed=config.seed,
                repetition=repetition,
            )
            print(load_plan.describe(plan))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ollacord-load-") as workdir:
        report = asyncio.run(run_load(config, Path(workdir), lambda line: print(line, flush=True)))
    print("\n".join(report.lines()))
    print(f"total {time.monotonic() - started:.0f} s")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
