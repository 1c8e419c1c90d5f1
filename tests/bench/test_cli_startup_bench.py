"""bench.cli_startup still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_startup_benchmark_runs_and_checks_its_answers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli_startup", "--n", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Each run's whole stdout is compared with the expected answer: a failure exits non-zero.
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line[:24].strip() for line in done.stdout.splitlines()}
    for kind in ("ollacord --help", "raw client", "ollacord chat", "ollacord chat --session"):
        assert kind in rows, done.stdout
    assert "  --help: median " in done.stdout
    assert "  chat first byte - raw client's: median " in done.stdout
