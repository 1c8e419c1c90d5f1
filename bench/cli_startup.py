"""How fast the `ollacord` command line starts, each run in a fresh process.

Each round runs, in random order: `ollacord --help` (time to exit); `ollacord chat --stream
"hi"` and a minimal script that asks the same through the raw `ollama` client (time from
spawning the process to the answer's first byte on its stdout); `ollacord chat --session`
on a database already at head; and `python -c pass`, the interpreter's own start, for
scale. The Ollama emulator runs in another process. Prints medians and p90s, and the
figures against the targets: `--help` under 300 ms, `chat` within 100 ms of the raw client
(paired by round), with each process's CPU time, which depends less on the machine's load.

    .venv/bin/python -m bench.cli_startup [--n 20]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from bench.emulator_process import ollama_emulator_process
from bot.core.config import Settings

MODEL = "llama3.2"
QUESTION = "hi"
ANSWER = "Hello! How can I help you today?"
HELP_TARGET = 0.300
CHAT_GAP_TARGET = 0.100

# What a newcomer would write with the official client: no retries, no sessions.
RAW_CLIENT = """\
import sys
import ollama

client = ollama.Client(host=sys.argv[1])
messages = [{"role": "user", "content": sys.argv[3]}]
for part in client.chat(model=sys.argv[2], messages=messages, stream=True):
    sys.stdout.write(part.message.content or "")
    sys.stdout.flush()
sys.stdout.write("\\n")
"""


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    argv: list[str]
    first_byte: bool  # time to the first byte on stdout, else time to exit
    expected: str | None  # the whole stdout, checked after each run


def ollacord() -> list[str]:
    """The installed console script, as users run it; `python -m bot.cli` without one."""
    script = Path(sys.executable).parent / "ollacord"
    if script.exists():
        return [str(script)]
    found = shutil.which("ollacord")
    return [found] if found else [sys.executable, "-m", "bot.cli"]


def kinds(url: str) -> list[Kind]:
    cli = ollacord()
    answer = ANSWER + "\n"
    return [
        Kind("python -c pass", [sys.executable, "-c", "pass"], False, ""),
        Kind("ollacord --help", [*cli, "--help"], False, None),
        Kind("raw client", [sys.executable, "-c", RAW_CLIENT, url, MODEL, QUESTION], True, answer),
        Kind("ollacord chat", [*cli, "chat", "--stream", QUESTION], True, answer),
        Kind(
            "ollacord chat --session",
            [*cli, "chat", "--stream", "--session", "bench", QUESTION],
            True,
            answer,
        ),
    ]


def child_env(url: str, database: Path) -> dict[str, str]:
    """The caller's environment without any ollacord setting, plus the emulator's."""
    names = {f.name.upper() for f in fields(Settings)}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(
        OLLAMA_HOST=url,
        DEFAULT_MODEL=MODEL,
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
    )
    return env


@dataclass(frozen=True, slots=True)
class Run:
    wall: float  # seconds from spawning to the first output byte, or to exit
    cpu: float  # the process's CPU seconds (user + system), whole run


def run_once(kind: Kind, env: dict[str, str], cwd: Path) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        kind.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    assert process.stdout is not None and process.stderr is not None
    first = os.read(process.stdout.fileno(), 1) if kind.first_byte else b""
    elapsed = time.perf_counter() - started
    out, err = process.communicate(timeout=60)
    if not kind.first_byte:
        elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the emulator is not done: not in it
    output = (first + out).decode()
    if process.returncode != 0 or (kind.expected is not None and output != kind.expected):
        raise RuntimeError(
            f"{kind.name} failed (exit {process.returncode}): {output!r} {err.decode()[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(elapsed, cpu)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(n: int, progress: Callable[[str], None]) -> dict[str, list[Run]]:
    with (
        ollama_emulator_process(reply=ANSWER) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cwd = Path(tmp)  # no stray .env
        env = child_env(url, cwd / "ollacord.db")
        runs = kinds(url)
        for kind in runs:  # warm-up: bytecode caches, the page cache, the database migrated
            run_once(kind, env, cwd)
        results: dict[str, list[Run]] = {k.name: [] for k in runs}
        for i in range(n):
            for kind in random.sample(runs, len(runs)):
                results[kind.name].append(run_once(kind, env, cwd))
            progress(f"  round {i + 1}/{n}")
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def report(results: dict[str, list[Run]]) -> None:
    n = len(next(iter(results.values())))
    print(f"\n{'':24} {'median ms':>10} {'p90 ms':>8} {'CPU ms':>8}   (N={n} fresh processes each)")
    for name, runs in results.items():
        what = "to first byte" if name.endswith(("client", "chat", "--session")) else "to exit"
        walls = [r.wall for r in runs]
        median, p90 = ms(statistics.median(walls)), ms(percentile(walls, 0.9))
        cpu = ms(statistics.median(r.cpu for r in runs))
        print(f"{name:24} {median:>10} {p90:>8} {cpu:>8}   {what}")
    help_median = statistics.median(r.wall for r in results["ollacord --help"])
    chat, raw = results["ollacord chat"], results["raw client"]
    # Paired by round: both ran within a second of each other, under the same load.
    gaps = [c.wall - r.wall for c, r in zip(chat, raw, strict=True)]
    gap, gap_p90 = statistics.median(gaps), percentile(gaps, 0.9)
    chat_median = statistics.median(r.wall for r in chat)
    raw_median = statistics.median(r.wall for r in raw)
    cpu_gap = statistics.median(c.cpu - r.cpu for c, r in zip(chat, raw, strict=True))
    print("\ntargets:")
    verdict = "met" if help_median < HELP_TARGET else "NOT met"
    print(f"  --help: median {ms(help_median)} ms (target < {ms(HELP_TARGET)} ms): {verdict}")
    verdict = "met" if gap <= CHAT_GAP_TARGET else "NOT met"
    print(
        f"  chat first byte - raw client's: median {ms(gap)} ms, p90 {ms(gap_p90)} ms "
        f"(target <= {ms(CHAT_GAP_TARGET)} ms): {verdict}; difference of medians "
        f"{ms(chat_median - raw_median)} ms, ratio {chat_median / raw_median:.2f}; "
        f"CPU difference, median {ms(cpu_gap)} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="rounds (default 20)")
    args = parser.parse_args()
    python = os.path.relpath(sys.executable)
    print("$ " + shlex.join([python, "-m", "bench.cli_startup", *sys.argv[1:]]))
    print(f"ollacord command: {shlex.join(ollacord())}; Python {sys.version.split()[0]}")
    results = measure(args.n, lambda line: print(line, file=sys.stderr, flush=True))
    report(results)


if __name__ == "__main__":
    main()
