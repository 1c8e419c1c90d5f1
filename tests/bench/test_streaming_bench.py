"""bench.streaming still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.streaming",
            "--n",
            "2",
            "--tokens",
            "40",
            "--rate",
            "400",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("floor", [False, True])
def test_the_streaming_benchmark_runs_and_checks_its_answers(floor: bool) -> None:
    out = run_bench(*(["--floor"] if floor else []))
    row = next(line.split() for line in out.splitlines() if line.startswith("   2 "))
    assert row[row.index("2/2") - 1] == "0"  # no 429s, and both answers complete
    assert "where the time goes" in out
    assert "N=50 not run" in out


def test_the_mention_path_runs_and_every_answer_is_the_models() -> None:
    out = run_bench("--path", "mention")
    row = next(line.split() for line in out.splitlines() if line.startswith("   2 "))
    # 0 429s and both final texts equal the model's answers (the reply and its pages).
    assert row[row.index("2/2") - 1] == "0"
    assert "not every answer reached its final content" not in out
    assert "targets (mention path):" in out
    assert "N=2 requests under Discord's global limit:" in out
    assert "N=50 not run" in out
