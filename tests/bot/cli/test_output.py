"""Terminal rendering: sizes, ages, tables, pull progress on a terminal and off it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli.output import PullProgressPrinter, StatusLine, human_age, human_bytes, table
from bot.core.types import PullProgress
from tests.bot.cli.conftest import FakeTerminal

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1_429, "1.4 KB"),
        (274_302_450, "274 MB"),
        (1_000_000_000, "1 GB"),
        (2_019_393_189, "2.0 GB"),
        (5_225_387_923, "5.2 GB"),
        (40_000_000_000, "40 GB"),
    ],
)
def test_human_bytes_like_ollama_list(size: int, shown: str) -> None:
    assert human_bytes(size) == shown


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(seconds=5), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=15), "2 weeks ago"),
        (timedelta(days=400), "1 year ago"),
        (timedelta(seconds=-30), "just now"),  # a server clock slightly ahead
    ],
)
def test_human_age(ago: timedelta, shown: str) -> None:
    assert human_age(NOW - ago, NOW) == shown
    assert human_age(None, NOW) == "-"


def test_table_aligns_columns() -> None:
    assert table(["A", "LONGER"], [["wide-cell", "x"], ["y", ""]]).splitlines() == [
        "A           LONGER",
        "wide-cell   x",
        "y",
    ]


def pull_updates() -> list[PullProgress]:
    return [
        PullProgress("pulling manifest"),
        PullProgress("pulling abc", completed=None, total=2_000),
        PullProgress("pulling abc", completed=1_000, total=2_000),
        PullProgress("pulling abc", completed=2_000, total=2_000),
        PullProgress("success"),
    ]


def test_pull_progress_redraws_in_place_on_a_terminal() -> None:
    terminal = FakeTerminal()
    printer = PullProgressPrinter(terminal, interactive=True)
    for update in pull_updates():
        printer.update(update)
    printer.finish(True)
    # Each status on its own line, redrawn with \r; every line ends complete.
    lines = terminal.getvalue().split("\n")
    assert lines[-1] == ""
    abc = lines[1]
    assert abc.startswith("pulling abc [") and "  0% 0 B / 2 KB" in abc
    assert abc.rsplit("\r", 1)[-1].startswith("pulling abc [" + "#" * 24 + "] 100% 2 KB / 2 KB")
    assert lines[-2].rsplit("\r", 1)[-1].startswith("success")


def test_pull_progress_off_a_terminal_is_one_line_per_step() -> None:
    log = io.StringIO()
    printer = PullProgressPrinter(log, interactive=False)
    for update in pull_updates():
        printer.update(update)
    printer.finish(True)
    assert log.getvalue() == "pulling manifest\npulling abc: 100% (2 KB / 2 KB)\nsuccess\n"


def test_pull_progress_leaves_a_failed_step_to_the_error() -> None:
    log = io.StringIO()
    printer = PullProgressPrinter(log, interactive=False)
    printer.update(PullProgress("pulling manifest"))
    printer.finish(False)
    assert log.getvalue() == ""


def test_status_line_only_on_a_terminal() -> None:
    terminal, log = FakeTerminal(), io.StringIO()
    for stream in (terminal, log):
        status = StatusLine(stream)
        status.show("Retrying in 1.0 s.")
        status.clear()
    assert log.getvalue() == ""
    assert terminal.getvalue() == "\rollacord: Retrying in 1.0 s.\x1b[K\r\x1b[K"
