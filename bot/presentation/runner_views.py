"""The runner's figures as members read them (/model compare, /model bench): numbers with
their units, answers cut to a size, and kept benchmarks as a fixed-width table. No Discord
here; the embeds are built in bot/discord_app/runner_embeds.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from bot.core.runner.kept import KeptBench
from bot.core.runner.records import RunRecord, Stats

ELLIPSIS: Final = "…"
MODEL_COLUMN: Final = 24  # a longer model name is cut in the table
CUT_NOTE: Final = "\n\n*(cut: the full answer is in the attached file)*"

# (figure, label, unit, digits): the figures a member compares, in the order shown.
FIGURES: Final = (
    ("tokens_per_second", "Tokens/s", "", 1),
    ("time_to_first_token", "First token", " s", 2),
    ("load_time", "Load", " s", 2),
    ("total", "Total", " s", 2),
)


def number(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}{unit}"


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` within ``limit`` characters, the note saying where the rest is included;
    and whether it was cut. The cut falls at a line or word break when one is near."""
    text = text.strip()
    if len(text) <= limit:
        return text, False
    room = max(limit - len(CUT_NOTE) - len(ELLIPSIS), 0)
    head = text[:room]
    for separator in ("\n", " "):
        at = head.rfind(separator)
        if at >= room * 3 // 4:  # don't lose more than a quarter to find a break
            head = head[:at]
            break
    return head.rstrip() + ELLIPSIS + CUT_NOTE, True


def record_figures(record: RunRecord) -> list[tuple[str, str]]:
    """(label, value) of one answer's figures."""
    return [
        (label, number(getattr(record, name), unit, digits))
        for name, label, unit, digits in FIGURES
    ]


def stats_figures(figures: dict[str, Stats]) -> list[tuple[str, str]]:
    """(label, "mean · median") of a benchmark's figures."""
    out = []
    for name, label, unit, digits in FIGURES:
        stats = figures[name]
        out.append(
            (
                f"{label} (avg · median)",
                f"{number(stats.mean, unit, digits)} · {number(stats.median, unit, digits)}",
            )
        )
    return out


def quote(text: str, limit: int) -> str:
    """A question quoted on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + ELLIPSIS


def _when(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


def _name(model: str) -> str:
    return model if len(model) <= MODEL_COLUMN else model[: MODEL_COLUMN - 1] + ELLIPSIS


def bench_table(runs: Sequence[KeptBench], current: int | None = None) -> str:
    """Kept runs as a fixed-width table (for a code block): model, date (UTC), mean and
    median tokens/s, mean time to first token and load time; ``current`` (a run's id) is
    marked with ▶."""
    header: tuple[str, ...] = ("", "model", "UTC", "tok/s", "median", "1st tok", "load")
    rows: list[tuple[str, ...]] = [header]
    for run in runs:
        rows.append(
            (
                "▶" if run.id == current else "",
                _name(run.model),
                _when(run.created_at),
                number(run.figure("tokens_per_second"), digits=1),
                number(run.figure("tokens_per_second", "median"), digits=1),
                number(run.figure("time_to_first_token"), " s"),
                number(run.figure("load_time"), " s"),
            )
        )
    if current is None:  # no run to mark: no marker column
        rows = [row[1:] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text_columns = 3 if current is not None else 2  # left-aligned; the figures go right
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)
