"""Split a (streamed) answer into Discord-sized pages without breaking Markdown code fences.

A page is ``prefix + body + suffix``. Bodies are consecutive slices of the answer (joined they
give it back exactly); ``prefix`` reopens a fence the previous page had to close, ``suffix``
closes a fence still open at the page end. A whitespace-only body gets a ZERO WIDTH SPACE as
suffix, since Discord refuses blank messages (only whitespace runs too long to share a page
with visible text need it). ``""`` gives no page at all: the caller handles empty answers.

Fences are tracked page-locally, i.e. as Discord parses each page, so every page is balanced
by construction; splits stay out of fence lines whenever possible, so this agrees with how
the whole answer parses. A page is sealed only once the text after its start no longer fits
even without a suffix (monotone in the text), and its end is chosen from the next
``budget + 1`` characters alone: later chunks can never change a sealed page.

Cost: a feed is O(len(chunk)) plus one O(page) scan per sealed page. 100k characters of mixed
prose/code fed in 5-character chunks take 70-105 ms with ``current`` read after each feed
(30-60 ms without) on Python 3.11 in the (shared, noisy) dev container; the command is in
the docstring of tests/bot/presentation/test_splitting.py.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

DISCORD_MESSAGE_LIMIT = 2000
MIN_LIMIT = 20
ZWSP = "\u200b"

_OPENER = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_CLOSER = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
_FENCE_HEAD = re.compile(r" {0,3}(?:`{3}|~{3})")
_FENCE_HEAD_PREFIX = re.compile(r" {0,3}(?:`{0,2}|~{0,2})")
# Niceties a split point should have, given up one by one only when no split point has them:
# "fence": not inside a fence line; "soft": no empty code block on either side; "visible":
# both the page and the rest of the known text show something.
_RELAXATIONS = ("fence soft visible", "fence visible", "fence soft", "fence", "")


@dataclass(frozen=True, slots=True)
class Fence:
    char: str
    length: int
    info: str = ""

    @property
    def opener(self) -> str:
        # An info string that starts with the fence's own character ("~~~ ~~x") would merge
        # into the run and make a longer fence than the closer: keep them apart.
        sep = " " if self.info.startswith(self.char) else ""
        return self.char * self.length + sep + self.info + "\n"


@dataclass(frozen=True, slots=True)
class Page:
    body: str
    prefix: str = ""
    suffix: str = ""

    @property
    def content(self) -> str:
        return self.prefix + self.body + self.suffix


def fence_step(state: Fence | None, line: str) -> Fence | None:
    """Fence state after one line (without its "\\n"), following CommonMark fence rules."""
    line = line.removesuffix("\r")
    if state is None:
        m = _OPENER.fullmatch(line)
        if m is None or (m[1][0] == "`" and "`" in m[2]):
            return None
        return Fence(m[1][0], len(m[1]), m[2].strip())
    m = _CLOSER.fullmatch(line)
    if m is not None and m[1][0] == state.char and len(m[1]) >= state.length:
        return None
    return state


def _maybe_fence(head: str, complete: bool) -> bool:
    # A fence line is recognisable from its first 6 characters; an unfinished short line
    # counts if it could still grow into one, so the decision never needs later text.
    partial = not complete and _FENCE_HEAD_PREFIX.fullmatch(head) is not None
    return partial or _FENCE_HEAD.match(head) is not None


def _suffix(prefix: str, last: str, blank: bool, state: Fence | None) -> str:
    if state is not None:
        return ("" if last == "\n" else "\n") + state.char * state.length
    return ZWSP if blank and not prefix else ""


def _clamp(state: Fence, limit: int) -> Fence:
    # Reopen + close must leave at least half a page for text, or pages could not progress.
    room = limit // 2 - 2
    length = min(state.length, room // 2)
    return Fence(state.char, length, state.info[: max(0, room - 2 * length - 1)])


class _Window:
    """The text a split decision may look at, starting at a page start."""

    def __init__(self, seg: str, start: Fence | None, limit: int, eof: bool) -> None:
        self.seg, self.limit, self.eof = seg, limit, eof
        self.prefix = start.opener if start else ""
        self.first = len(seg) - len(seg.lstrip())
        self.last = len(seg.rstrip()) - 1
        lines = seg.split("\n")[:-1]  # complete lines; the last one may still be growing
        self.starts = [0, *accumulate(len(line) + 1 for line in lines)]
        self.states: list[Fence | None] = [start]
        for line in lines:
            self.states.append(fence_step(self.states[-1], line))

    def _fenceish(self, i: int, at: int | None = None) -> bool:
        """Whether line ``i`` (or its rest from ``at``) is or may become a fence line."""
        more = i + 1 < len(self.starts)
        a = self.starts[i] if at is None else at
        head = self.seg[a : min(self.starts[i + 1] - 1 if more else len(self.seg), a + 8)]
        return _maybe_fence(head, more or self.eof)

    def page(self, e: int) -> tuple[Page, Fence | None]:
        """The page ending at ``e`` and the fence open (page-locally) at its end."""
        i = bisect_right(self.starts, e) - 1
        a, state = self.starts[i], self.states[i]
        if e > a and _FENCE_HEAD.match(self.seg, a, e):
            state = fence_step(state, self.seg[a:e])
        suffix = _suffix(self.prefix, self.seg[e - 1], e <= self.first, state)
        return Page(self.seg[:e], self.prefix, suffix), state

    def fits(self, e: int) -> bool:
        return len(self.page(e)[0].content) <= self.limit

    def _ok(self, e: int, need: str) -> bool:
        seg = self.seg
        if seg[e - 1] == "\r" and seg[e] == "\n":
            return False
        if "visible" in need and not self.first < e <= self.last:
            return False
        i = bisect_right(self.starts, e) - 1
        at_line_start = e == self.starts[i]
        # Cutting a fence line, or starting a page with a fence-looking fragment, would make
        # the page-local parse disagree with the answer's. (A page's first line may be the
        # tail of a line: the split that made it checked that whole line already.)
        if "fence" in need and not at_line_start and (self._fenceish(i) or self._fenceish(i, e)):
            return False
        # "soft": no bare opener ending this page, no closer starting the next one.
        if "soft" in need and at_line_start and self.states[i] is not None:
            return self.states[i - 1] is not None and not self._fenceish(i) and self.fits(e)
        return self.fits(e)

    def choose(self) -> int:
        """Where the page ends: best boundary class first, relaxing niceties last."""
        seg, max_e = self.seg, len(self.seg) - 1
        half = max_e // 2
        s = self.starts
        # Line and paragraph breaks only count in the last half: a much shorter page would
        # waste room that a word boundary further on can use.
        late = [i for i in range(len(s) - 1, 0, -1) if half <= s[i] <= max_e]
        lines = [s[i] for i in late]
        paras = [s[i] for i in late if not seg[s[i - 1] : s[i] - 1].strip()]

        def words() -> Iterator[int]:
            # Lazy: a page that can end at a line break never scans its 2000 characters.
            return (e for e in range(max_e, 0, -1) if seg[e - 1].isspace() and not seg[e].isspace())

        for need in _RELAXATIONS:
            for candidates in (paras, lines, words(), range(max_e, 0, -1)):
                for e in candidates:
                    if self._ok(e, need):
                        return e
        raise AssertionError("unreachable: a 1- or 2-character body always fits")


class MessageSplitter:
    """Incremental splitter: feed chunks, show ``current``, send what ``feed`` seals."""

    def __init__(self, limit: int = DISCORD_MESSAGE_LIMIT) -> None:
        if limit < MIN_LIMIT:
            raise ValueError(f"limit must be at least {MIN_LIMIT}, got {limit}")
        self.limit = limit
        self._buf = ""  # the open page's text (from self._pos on)
        self._pos = 0
        self._state: Fence | None = None  # the fence the open page reopens (already clamped)
        self._line_off = 0  # start of _buf's unfinished line, and the fence state there
        self._line_state: Fence | None = None
        self._sealed: list[Page] = []
        self._done = False

    @property
    def sealed(self) -> list[Page]:
        return list(self._sealed)

    @property
    def current(self) -> Page:
        """The open page as it should be displayed now (``Page("")`` before any text)."""
        if self._done:
            return self._sealed[-1] if self._sealed else Page("")
        buf, prefix = self._buf, self._prefix()
        if not buf:
            return Page("")
        state = fence_step(self._line_state, buf[self._line_off :])
        page = Page(buf, prefix, _suffix(prefix, buf[-1], buf.isspace(), state))
        if len(page.content) <= self.limit:
            return page
        # The display-only closer must not count as text (or trigger sealing), so show a bit
        # less instead; tries are bounded so a pathological fence line stays cheap.
        win = _Window(buf, self._state, self.limit, eof=True)
        k0 = len(buf) - (len(page.content) - self.limit)
        for k in (*range(k0, k0 - 8, -1), self._line_off, 2, 1):
            if 0 < k < len(buf) and buf[k - 1 : k + 1] != "\r\n" and win.fits(k):
                return win.page(k)[0]
        raise AssertionError("unreachable: a 1- or 2-character body always fits")

    def feed(self, chunk: str) -> list[Page]:
        """Add text; return the pages this chunk sealed (final, send them as new messages)."""
        if self._done:
            raise RuntimeError("feed() after finish()")
        n, old_len = len(self._sealed), len(self._buf)
        self._buf += chunk
        self._drain(eof=False)
        if len(self._sealed) > n:
            self._line_off, self._line_state, old_len = 0, self._state, 0
        while (nl := self._buf.find("\n", max(old_len, self._line_off))) != -1:
            self._line_state = fence_step(self._line_state, self._buf[self._line_off : nl])
            self._line_off = old_len = nl + 1
        return self._sealed[n:]

    def finish(self) -> list[Page]:
        """Seal the rest and return every page of the answer ([] for an empty answer)."""
        if not self._done:
            self._drain(eof=True)
            self._done = True
        return list(self._sealed)

    def _prefix(self) -> str:
        return self._state.opener if self._state else ""

    def _seal(self, win: _Window, e: int) -> None:
        page, state = win.page(e)
        self._sealed.append(page)
        self._state = _clamp(state, self.limit) if state else None
        self._pos += e

    def _drain(self, eof: bool) -> None:
        # The single split loop: batch splitting is just feed(text) + finish().
        while True:
            rest = len(self._buf) - self._pos
            budget = self.limit - len(self._prefix())
            if fits_raw := rest <= budget:
                self._buf, self._pos = self._buf[self._pos :], 0
                if not eof or rest == 0:
                    return
            seg = self._buf[self._pos : self._pos + budget + 1]
            win = _Window(seg, self._state, self.limit, eof=fits_raw)
            # At the end the rest may still need splitting: its closer can overflow the page.
            self._seal(win, rest if fits_raw and win.fits(rest) else win.choose())


def split_pages(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[Page]:
    """All pages of a complete answer ([] for "")."""
    splitter = MessageSplitter(limit)
    splitter.feed(text)
    return splitter.finish()


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Message contents for a complete answer ([] for "": the caller decides what to send)."""
    return [page.content for page in split_pages(text, limit)]
