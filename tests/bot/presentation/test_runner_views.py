"""The runner's figures as members read them: answers cut at a break, kept benchmarks as a
fixed-width table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.runner.kept import KeptBench
from bot.presentation.runner_views import CUT_NOTE, bench_table, cut, number


def kept(run_id: int, model: str, tokens_per_second: float | None) -> KeptBench:
    figures: dict[str, Any] = {
        "tokens_per_second": {"count": 5, "mean": tokens_per_second, "median": 40.0},
        "time_to_first_token": {"count": 5, "mean": 0.25, "median": 0.2},
        "load_time": {"count": 0, "mean": None, "median": None},
    }
    moment = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    return KeptBench(run_id, "guild:1", model, None, moment, {"figures": figures})


def test_a_short_answer_is_kept_whole() -> None:
    assert cut("  a short answer \n", 100) == ("a short answer", False)


def test_a_long_answer_is_cut_at_a_word_within_the_limit() -> None:
    text = "abcdefghij " * 100
    for limit in range(250, 261):  # wherever the limit falls within a word
        shown, was_cut = cut(text, limit)
        assert was_cut and len(shown) <= limit
        assert shown.endswith("…" + CUT_NOTE)
        head = shown.removesuffix("…" + CUT_NOTE)
        assert text.startswith(head) and set(head.split()) == {"abcdefghij"}  # whole words


def test_numbers_have_their_unit_and_a_dash_when_missing() -> None:
    assert number(1234.567, " s") == "1,234.57 s"
    assert number(None, " s") == "–"


def test_the_table_marks_the_current_run_and_aligns_the_figures() -> None:
    runs = [kept(3, "qwen3:latest", 41.52), kept(1, "a-very-long-model-name:with-a-tag", 8.0)]
    header, first, second = bench_table(runs, current=3).splitlines()
    assert header.split() == ["model", "UTC", "tok/s", "median", "1st", "tok", "load"]
    assert first.split() == ["▶", "qwen3:latest", "12-01", "15:30", "41.5", "40.0", "0.25", "s",
                             "–"]  # fmt: skip
    assert second.split()[0] == "a-very-long-model-name:…"  # cut to its column
    # Figures are right-aligned: 41.5 and 8.0 end in the same column.
    assert first.index("41.5") + len("41.5") == second.index("8.0") + len("8.0")


def test_without_a_current_run_there_is_no_marker_column() -> None:
    header, row = bench_table([kept(1, "qwen3:latest", 41.5)]).splitlines()
    assert header.startswith("model") and row.startswith("qwen3:latest")
