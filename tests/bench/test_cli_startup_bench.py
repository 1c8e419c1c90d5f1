"""bench.cli_startup still runs end to end (its figures are not checked here: no timings)."""

from __future__ import annotations

from tests.bench.runner import run_bench


def test_the_cli_startup_benchmark_runs_and_checks_its_answers() -> None:
    # Each run's whole stdout is compared with the expected answer: a failure exits non-zero.
    out = run_bench("cli_startup", "--n", "2", timeout=180)
    rows = {line[:24].strip() for line in out.splitlines()}
    for kind in ("ollacord --help", "raw client", "ollacord chat", "ollacord chat --session"):
        assert kind in rows, out
    assert "  --help: median " in out
    assert "  chat first byte - raw client's: median " in out
