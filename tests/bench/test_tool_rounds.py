"""bench.tool_rounds still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.bench.runner import run_bench


def test_the_tool_rounds_benchmark_runs_every_round_it_reports(tmp_path: Path) -> None:
    profile = tmp_path / "rounds.prof"
    # Every answer is checked in the benchmark: the tool ran once per round, the model was
    # asked once per round and once more, or it exits non-zero.
    rounds = ("--n", "2", "--rounds", "0", "1", "3")
    out = run_bench("tool_rounds", *rounds, "--profile", str(profile), timeout=180)
    rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"no", "K=0", "K=1", "K=3"} <= rows, out
    assert "K=2" not in rows
    assert "per tool round, (answer - K=0 median) / K" in out
    assert "least squares over the K medians: CPU" in out
    assert "K=3 and 2 with K=0" in out
    # The round's cost, named by function (which ones lead varies with the machine).
    assert re.search(r"^\s+[-\d.]+\s+\S+\.py:\d+\(\w+\)$", out, re.MULTILINE), out
    assert profile.stat().st_size > 0
