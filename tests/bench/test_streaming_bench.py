"""bench.streaming still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

import pytest

from tests.bench.runner import run_bench

TINY = ("--n", "2", "--tokens", "40", "--rate", "400")


@pytest.mark.parametrize("floor", [False, True])
def test_the_streaming_benchmark_runs_and_checks_its_answers(floor: bool) -> None:
    out = run_bench("streaming", *TINY, *(["--floor"] if floor else []), timeout=120)
    row = next(line.split() for line in out.splitlines() if line.startswith("   2 "))
    assert row[row.index("2/2") - 1] == "0"  # no 429s, and both answers complete
    assert "where the time goes" in out
    assert "N=50 not run" in out


def test_the_mention_path_runs_and_every_answer_is_the_models() -> None:
    out = run_bench("streaming", *TINY, "--path", "mention", timeout=120)
    row = next(line.split() for line in out.splitlines() if line.startswith("   2 "))
    # 0 429s and both final texts equal the model's answers (the reply and its pages).
    assert row[row.index("2/2") - 1] == "0"
    assert "not every answer reached its final content" not in out
    assert "targets (mention path):" in out
    assert "N=2 requests under Discord's global limit:" in out
    assert "N=50 not run" in out
