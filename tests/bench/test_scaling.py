"""bench.scaling still runs end to end, small: two bot processes, two Ollama hosts and a
throwaway PostgreSQL, every answer checked by the benchmark itself (its timings are not
checked here). Each phase runs on its own, so that a failure names the phase."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.runner import ROOT, STDERR_SHOWN
from tests.support import postgres

pytestmark = pytest.mark.skipif(
    not postgres.available(), reason="needs the PostgreSQL server binaries (initdb, pg_ctl)"
)

TIMEOUT = 120  # seconds: each run takes 15-30 s on a quiet machine
# Answers of 20 tokens at 20 tok/s: a second each, long enough to be seen streaming.
SMALL = ("--parallel", "2", "--tokens", "20", "--rate", "20", "--channels", "4")
# Three conversations a shard whose last answers all stream at once: within the hosts' slots.
RESTART = ("--parallel", "6", "--conversations", "3", "--turns", "1", "--long-seconds", "4")


def run_scaling(workdir: Path, *args: str) -> tuple[int, str]:
    """Run the benchmark, its bot processes' logs in ``workdir``: (exit code, stdout)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scaling", *SMALL, "--workdir", str(workdir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-STDERR_SHOWN:]
    return done.returncode, done.stdout


def failures(out: str) -> list[str]:
    return re.findall(r"^  FAILED \(.*?\): (.*)$", out, re.MULTILINE)


def test_throughput_with_one_host_then_two(tmp_path: Path) -> None:
    code, out = run_scaling(
        tmp_path, "--phases", "throughput", "--questions", "12", "--min-ratio", "0"
    )
    assert code == 0, out
    assert "every check passed" in out
    one, two = (re.search(rf"^  {n} host\(s\): 12 answers in .*$", out, re.M) for n in (1, 2))
    assert one is not None and "{'A': 12}" in one.group(0), out
    assert two is not None and "'A': " in two.group(0) and "'B': " in two.group(0), out
    assert "ok   both shards' processes answered: {0: 6, 1: 6}" in out
    assert re.search(r"ratio two hosts / one host: \d+\.\d\d", out), out


def test_a_host_killed_mid_run(tmp_path: Path) -> None:
    code, out = run_scaling(tmp_path, "--phases", "kill-host", "--kill-questions", "12")
    assert code == 0, out
    assert "every check passed" in out
    # The kill cut at least one answer streaming from B; each open question was printed.
    streaming = re.search(r"streaming_at_kill: \{.*'B': [1-9]", out)
    assert streaming is not None, out
    assert re.search(r"^    q\d+ shard \d: answered by A ", out, re.M), out


def test_a_bot_process_killed_and_restarted(tmp_path: Path) -> None:
    code, out = run_scaling(tmp_path, "--phases", "kill-bot", *RESTART)
    assert "interrupted: 2" in out and "finished_just_before_the_kill: 1" in out, out
    assert failures(out) == [] and code == 0, out
    assert "every check passed" in out
