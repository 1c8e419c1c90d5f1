"""Plain-text rendering for the terminal: tables, sizes, ages, pull progress.

Everything here is ASCII on purpose: stderr may be a pipe or a log with a C locale, where a
block character would raise UnicodeEncodeError in the middle of a download.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from bot.core.types import PullProgress

log = logging.getLogger(__name__)

PROGRESS_BAR_WIDTH = 24
# A pull reports many times a second; a terminal needs far fewer redraws than that.
REDRAW_INTERVAL = 0.1
_CLEAR_TO_END = "\x1b[K"


@dataclass(slots=True)
class Console:
    """The three standard streams, read when a command starts (so tests can swap them)."""

    stdout: TextIO
    stderr: TextIO
    stdin: TextIO

    @classmethod
    def current(cls) -> Console:
        return cls(sys.stdout, sys.stderr, sys.stdin)

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def write(self, text: str) -> None:
        """Without a newline, flushed at once: a streamed answer must show as it comes."""
        self.stdout.write(text)
        self.stdout.flush()

    def note(self, text: str) -> None:
        """One line on stderr, prefixed like every message the CLI prints there."""
        self.stderr.write(f"ollacord: {one_line(text)}\n")
        self.stderr.flush()


def one_line(text: str) -> str:
    return " ".join(text.split())


def human_bytes(size: int) -> str:
    """Decimal units with the rounding of `ollama list` (its format.HumanBytes)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            value = size / scale
            if value >= 10 or value == int(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{size} B"


def human_age(when: datetime | None, now: datetime | None = None) -> str:
    """ "3 days ago", as `ollama list` shows modification times."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = (now - when).total_seconds()
    for unit, length in (
        ("year", 365 * 86400),
        ("month", 30 * 86400),
        ("week", 7 * 86400),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def local_time(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, as `ollama list` prints them (no borders: easy to grep/cut)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]
    return "\n".join(lines)


def describe_progress(update: PullProgress, *, bar: bool) -> str:
    if not update.total:
        return update.status
    completed = update.completed or 0  # Ollama omits `completed` while it is 0
    fraction = min(1.0, completed / update.total)
    amounts = f"{human_bytes(completed)} / {human_bytes(update.total)}"
    if not bar:
        return f"{update.status}: {fraction:.0%} ({amounts})"
    filled = round(fraction * PROGRESS_BAR_WIDTH)
    drawn = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
    return f"{update.status} [{drawn}] {fraction:4.0%} {amounts}"


@dataclass(slots=True)
class PullProgressPrinter:
    """Pull progress on stderr.

    On a terminal each status gets its own line, redrawn in place with \\r. Elsewhere (a
    pipe, a log) each status gets one line, written once it is over so it carries the final
    byte count: redrawing is impossible there, and a line per update would flood the log.
    A status cut short by an error is not written, leaving the error as the only line.
    """

    stream: TextIO
    interactive: bool
    _current: PullProgress | None = None
    _drawn_at: float = field(default=0.0)

    def update(self, progress: PullProgress) -> None:
        changed = self._current is None or progress.status != self._current.status
        previous, self._current = self._current, progress
        if not self.interactive:
            if changed and previous is not None:
                self._emit(describe_progress(previous, bar=False) + "\n")
            return
        now = time.monotonic()
        if not changed and now - self._drawn_at < REDRAW_INTERVAL:
            return
        self._drawn_at = now
        prefix = "\r"
        if changed and previous is not None:
            # Its last update may have been skipped by the throttle: leave it complete.
            prefix += describe_progress(previous, bar=True) + _CLEAR_TO_END + "\n"
        self._emit(prefix + describe_progress(progress, bar=True) + _CLEAR_TO_END)

    def finish(self, succeeded: bool) -> None:
        """End the output: the last status is written on success, the line ended anyway."""
        if self._current is None:
            return
        if self.interactive:
            # Redraw the final state (a throttled update may have been skipped), then end it.
            self._emit("\r" + describe_progress(self._current, bar=True) + _CLEAR_TO_END + "\n")
        elif succeeded:
            self._emit(describe_progress(self._current, bar=False) + "\n")
        self._current = None

    def _emit(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


@dataclass(slots=True)
class StatusLine:
    """A transient note on a terminal's stderr (\"retrying in 2 s\"), erased once moot.

    Off the terminal it says nothing: a log or a test wants only the outcome, and a failure
    must stay the one line on stderr.
    """

    stream: TextIO
    shown: bool = False

    def show(self, text: str) -> None:
        if not self.stream.isatty():
            return
        self.stream.write(f"\rollacord: {one_line(text)}{_CLEAR_TO_END}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + _CLEAR_TO_END)
            self.stream.flush()
            self.shown = False
