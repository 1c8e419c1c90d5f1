"""Running a benchmark the way its smoke test does: `python -m bench.<name>` from the
repository's root, tiny, in a child process like a person at a shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDERR_SHOWN = 2000  # characters of a failed run's stderr kept in the assertion message


def run_bench(name: str, *args: str, timeout: float) -> str:
    """Run bench.<name> with args and return its stdout; fail the test if it exits non-zero.

    Each benchmark checks its own answers and exits non-zero on a wrong one, so the exit code
    is a check of its own, and the figures it prints are never compared (no timings).
    """
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-STDERR_SHOWN:]
    return done.stdout
