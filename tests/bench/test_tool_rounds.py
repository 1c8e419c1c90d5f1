"""bench.tool_rounds still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tool_rounds_benchmark_runs_every_round_it_reports(tmp_path: Path) -> None:
    profile = tmp_path / "rounds.prof"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.tool_rounds",
            "--n",
            "2",
            "--rounds",
            "0",
            "1",
            "3",
            "--profile",
            str(profile),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Every answer is checked in the benchmark: the tool ran once per round, the model was
    # asked once per round and once more, or it exits non-zero.
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    assert {"no", "K=0", "K=1", "K=3"} <= rows, done.stdout
    assert "K=2" not in rows
    assert "per tool round, (answer - K=0 median) / K" in done.stdout
    assert "least squares over the K medians: CPU" in done.stdout
    assert "K=3 and 2 with K=0" in done.stdout
    assert "bot/core/generation.py" in done.stdout  # the round's cost, named by function
    assert profile.stat().st_size > 0
