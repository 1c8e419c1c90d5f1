"""What ``bench.scaling`` prints: each phase's figures and checks as it ends, then a summary
with the throughput ratio, the machine's load, the command, and every failed check."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.scaling_phases import Phase


def print_phase(phase: Phase) -> None:
    print(f"\n== {phase.checks.phase}", flush=True)
    for name, value in phase.figures.items():
        print(f"  {name}: {_shown(value)}")
    for line in phase.lines:
        print(line)
    for line in phase.checks.lines():
        print(line)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return "".join(f"\n    {item}" for item in value) or "(none)"
    return str(value)


def throughput_ratio(phases: Sequence[Phase]) -> float | None:
    """Two hosts' answers per minute over one host's (None: not both measured)."""
    rates = {p.figures.get("hosts"): p.figures.get("per_minute") for p in phases}
    one, two = rates.get(1), rates.get(2)
    if one is None or two is None or not one or math.isnan(one) or math.isnan(two):
        return None
    return float(two) / float(one)


def print_summary(
    phases: list[Phase],
    args: argparse.Namespace,
    command: str,
    workdir: Path,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    seconds: float,
) -> bool:
    """Print the summary (adding the ratio's check to the throughput phase); True if any
    check failed."""
    print("\n== summary")
    print(f"  command: {command}")
    answer = args.tokens / args.rate
    print(
        f"  hosts: 2 emulators, {args.parallel} slots each (OLLAMA_HOSTS *{args.parallel}), "
        f"answers of {args.tokens} tokens at {args.rate:g} tok/s ({answer:.2f} s); "
        "bots: 2 processes (SHARD_COUNT=2), PostgreSQL"
    )
    for phase in phases:
        if "per_minute" in phase.figures:
            f = phase.figures
            print(
                f"  {f['hosts']} host(s): {f['questions']} answers in {f['seconds']:.1f} s = "
                f"{f['per_minute']:.0f} answers/min (by host {f['by_host']})"
            )
    ratio = throughput_ratio(phases)
    if ratio is not None:
        two = next(p for p in phases if p.figures.get("hosts") == 2)
        two.checks.check(
            ratio >= args.min_ratio, f"two hosts / one host = {ratio:.2f} (>= {args.min_ratio})"
        )
        print(f"  ratio two hosts / one host: {ratio:.2f} (target >= {args.min_ratio})")
    print(
        f"  load average: {_load(load_before)} before, {_load(load_after)} after; "
        f"{seconds:.0f} s in all"
    )
    print(f"  bot logs: {workdir}")
    failed = [(p.checks.phase, what) for p in phases for what in p.checks.failed]
    for name, what in failed:
        print(f"  FAILED ({name}): {what}")
    print("  every check passed" if not failed else f"  {len(failed)} check(s) failed")
    return bool(failed)


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)
