"""The scaling load test: two bot processes (two shards) and two Ollama hosts on PostgreSQL.

Everything is real but Discord and Ollama: a throwaway PostgreSQL server
(``tests.support.postgres``), ``python -m bot`` once per shard (SHARD_COUNT=2, SHARD_IDS=0
and 1, one database), Ollama emulators in child processes (``bench.scaling_hosts``: each
with ``--parallel`` slots like OLLAMA_NUM_PARALLEL and ``--rate`` tokens per second, so the
model is the bottleneck; listed in OLLAMA_HOSTS with that capacity), and the Discord
emulator in this process, its servers split between the shards. Phases (``--phases``):

1. throughput: ``--questions`` /ask at once over both shards' channels, with one host, then
   (processes restarted) with both: answers per minute from the first question to the last
   final answer, and their ratio (``--min-ratio``, 1.8 by default);
2. kill-host: both hosts; ``--kill-questions`` at once; once a third are answered, host B
   is SIGKILLed: every question must be answered, none twice (in Discord, and stored once in
   PostgreSQL); each question still open at the kill is printed with what its asker saw;
3. kill-bot: conversations of ``--turns`` turns on both shards; shard 1's process SIGKILLed
   while answers stream, then restarted: every turn completed before stored once, the
   interrupted replies ended by the restart, a new question sent with the history.

Every answer's text is checked against the host's reply; the run exits 1 when a check
fails. Bot logs are kept in ``--workdir`` (a temporary directory by default).

    .venv/bin/python -m bench.scaling [--phases throughput kill-host kill-bot]
        [--questions 96] [--kill-questions 48] [--parallel 4] [--tokens 24] [--rate 24]
        [--channels 12] [--turns 2] [--long-seconds 5] [--min-ratio 1.8] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable
from pathlib import Path

from bench.scaling_bots import Cluster
from bench.scaling_checks import Checks, Database
from bench.scaling_discord import DiscordSide
from bench.scaling_hosts import HostProcess
from bench.scaling_phases import Bench, Phase, host_killed, throughput
from bench.scaling_report import print_phase, print_summary
from bench.scaling_restart import process_killed
from bot.storage.engine import open_engine, upgrade_database
from tests.emulators.discord_server import DiscordEmulator
from tests.support import postgres

PHASES = ("throughput", "kill-host", "kill-bot")
SHARDS = 2
SERVERS = 2  # per shard
MEMBERS = 3  # per server, taking turns asking
DATABASE = "ollacord_scaling"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    add("--questions", type=int, default=96, help="per throughput run")
    add("--kill-questions", type=int, default=48)
    add("--parallel", type=int, default=4, help="each host's slots (and its *N)")
    add("--tokens", type=int, default=24, help="an answer's length in tokens")
    add("--rate", type=float, default=24.0, help="tokens per second of each answer")
    add("--channels", type=int, default=12, help="per shard, for each throughput run")
    add("--conversations", type=int, default=2, help="per shard, in kill-bot")
    add("--turns", type=int, default=2, help="turns of each conversation before the kill")
    add("--long-seconds", type=float, default=5.0, help="the answer the kill interrupts")
    add("--min-ratio", type=float, default=1.8, help="two hosts' answers per minute / one's")
    add("--workdir", type=Path, default=None, help="where the bots run and log (kept)")
    args = parser.parse_args(argv)
    if "kill-bot" in args.phases and SHARDS * args.conversations > args.parallel:
        # The last answers must all stream at once, though each process may send all of its
        # own to one host (it counts only its own questions against a host's capacity).
        parser.error(f"--conversations (per shard) may be at most --parallel / {SHARDS}")
    return args


async def migrated_database(admin_url: str) -> str:
    """A database for the bots, migrated once here (the processes then find it at head)."""
    url = await asyncio.to_thread(postgres.create_database, admin_url, DATABASE)
    engine = open_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    return url


async def guarded(name: str, work: Awaitable[Phase]) -> Phase:
    """The phase, or (when it broke off) a phase with one failed check saying why."""
    try:
        phase = await work
    except Exception as exc:
        traceback.print_exc()
        phase = Phase(Checks(name))
        phase.checks.check(False, f"broke off: {type(exc).__name__}: {exc}")
    print_phase(phase)
    return phase


def start_hosts(args: argparse.Namespace) -> list[HostProcess]:
    options = {"tokens_per_second": args.rate, "num_parallel": args.parallel}
    hosts = [HostProcess(name, args.tokens, **options) for name in ("A", "B")]
    for host in hosts:
        host.start()
    return hosts


async def run(args: argparse.Namespace, workdir: Path) -> list[Phase]:
    answer = args.tokens / args.rate
    per_round = max(args.questions, args.kill_questions) * answer / args.parallel
    channels = {"warmup": 1, "throughput-1": args.channels, "throughput-2": args.channels}
    channels |= {"kill": args.channels, "restart": args.conversations}
    phases: list[Phase] = []
    async with postgres.PostgresServer() as admin_url, DiscordEmulator() as emu:
        database_url = await migrated_database(admin_url)
        side = DiscordSide(emu, SHARDS, SERVERS, MEMBERS, channels)
        env = {
            "DISCORD_TOKEN": emu.token,
            "DISCORD_API_BASE": emu.api_base,
            "DISCORD_GATEWAY_URL": emu.gateway_url,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "INFO",
            # Only answers reach the hosts: no embeddings of turns, no running summaries.
            "CONVERSATION_MEMORY": "false",
        }
        hosts = await asyncio.to_thread(start_hosts, args)
        cluster = Cluster(env, workdir, SHARDS)
        bench = Bench(
            side, hosts, cluster, Database(database_url), args.parallel, args.tokens,
            answer_timeout=60 + 4 * per_round + 4 * args.long_seconds,
        )  # fmt: skip
        try:
            if "throughput" in args.phases:
                one = throughput(bench, hosts[:1], args.questions)
                phases.append(await guarded("throughput, 1 host", one))
                keep = "kill-host" in args.phases
                two = throughput(bench, hosts, args.questions, keep=keep)
                phases.append(await guarded("throughput, 2 hosts", two))
            if "kill-host" in args.phases:
                if not any(bot.proc for bot in cluster.bots):
                    await bench.start("kill", hosts)
                killed = host_killed(bench, args.kill_questions, hosts[1])
                phases.append(await guarded("host B killed", killed))
            if "kill-bot" in args.phases:
                if hosts[1].killed:  # a new server in its place (another port)
                    hosts[1] = HostProcess("B", args.tokens, **hosts[1].options)
                    await asyncio.to_thread(hosts[1].start)
                words = max(args.tokens, round(args.long_seconds * args.rate))
                restart = process_killed(bench, hosts, turns=args.turns, long_words=words)
                phases.append(await guarded("shard 1's process killed", restart))
        finally:
            await bench.cluster.stop()
            await bench.db.close()
            for host in hosts:
                await asyncio.to_thread(host.stop)
    return phases


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not postgres.available():
        print("bench.scaling needs the PostgreSQL server binaries (initdb, pg_ctl)")
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ollacord-scaling-"))
    command = shlex.join([".venv/bin/python", "-m", "bench.scaling", *sys.argv[1:]])
    started = time.monotonic()
    load = os.getloadavg()
    phases = asyncio.run(run(args, workdir))
    failed = print_summary(
        phases, args, command, workdir, load, os.getloadavg(), time.monotonic() - started
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
