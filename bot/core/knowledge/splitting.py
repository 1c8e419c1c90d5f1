"""Cutting one stretch of text (a section, a page) into overlapping spans of bounded length.

Pure and offset-based: a span is ``(start, end)`` into the text, so the chunks are the
document's own words and a test can check that they cover it. Where a span ends is chosen
by the best kind of break near the target length: a blank line, then a line break, then the
end of a sentence, then a space; a hard cut only when a window has none of them.
"Protected" ranges (fenced code blocks no longer than a span) are never cut inside: a span
ends before one rather than through it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Kinds of break, best first; each match's end is where the span may end (the separator is
# left out of both spans, except for a sentence's closing punctuation).
_BREAKS = (
    re.compile(r"\n[ \t]*\n"),  # a paragraph ends
    re.compile(r"\n"),  # a line (a CSV row, a PDF line, a list item)
    re.compile(r"[.!?;:][)\"'\]]*(?=\s)"),  # a sentence or clause
    re.compile(r"\s"),  # a word
)
_SENTENCE = 2  # index of the break kind whose match belongs to the span before it
Span = tuple[int, int]


def split_text(
    text: str,
    *,
    target: int,
    limit: int,
    overlap: int,
    protected: Sequence[Span] = (),
) -> list[Span]:
    """Spans covering every non-blank character of ``text``, each at most ``limit`` long,
    each (after the first) starting up to about ``overlap`` characters before the previous
    one ended, at a word. ``protected`` ranges longer than ``limit`` are cut like text."""
    if not 0 < target <= limit or not 0 <= overlap < target // 2:
        raise ValueError("need 0 < target <= limit and 0 <= overlap < target / 2")
    kept = [(a, b) for a, b in protected if b - a <= limit]
    end_of_text = len(text.rstrip())
    start = fresh = _skip_blank(text, 0)
    spans: list[Span] = []
    while fresh < end_of_text:
        if end_of_text - start <= limit:
            spans.append((start, end_of_text))
            break
        end = _break(text, start, fresh, target, limit, kept)
        if end is None:  # the overlap leaves no room for what comes next (a code block)
            start = fresh
            continue
        spans.append((start, end))
        fresh = _skip_blank(text, end)
        start = _overlap_start(text, end, fresh, overlap, kept)
    return spans


def _break(
    text: str, start: int, fresh: int, target: int, limit: int, protected: Sequence[Span]
) -> int | None:
    """Where the span from ``start`` ends: past ``fresh`` (so it adds new text), within
    ``limit``; None when only dropping the overlap makes room (the caller retries)."""
    low, high = max(fresh + 1, start + target // 2), start + limit
    for kind in range(len(_BREAKS)):
        near = _ends(text, kind, low, high, protected)
        if near:  # the one closest to the target, the shorter on a tie
            return min(near, key=lambda e: (abs(e - start - target), e))
    # Nothing in the window: it lies inside a protected block that does not fit after
    # what comes before it. End before the block, so that it starts the next span whole.
    for kind in range(len(_BREAKS)):
        early = _ends(text, kind, fresh + 1, low - 1, protected)
        if early:
            return early[-1]
    if start < fresh:
        return None
    return high  # no break at all (one enormous word): cut


def _ends(text: str, kind: int, low: int, high: int, protected: Sequence[Span]) -> list[int]:
    """Where a span may end with a break of ``kind``, from ``low`` to ``high``."""
    ends = []
    if low > high:
        return ends
    for match in _BREAKS[kind].finditer(text, max(0, low - 2)):
        end = match.end() if kind == _SENTENCE else match.start()
        if end > high:
            break
        if end >= low and not _inside(end, protected):
            ends.append(end)
    return ends


def _inside(position: int, protected: Sequence[Span]) -> bool:
    return any(a < position < b for a, b in protected)


def _overlap_start(text: str, end: int, fresh: int, overlap: int, protected: Sequence[Span]) -> int:
    """The next span's start: about ``overlap`` characters back from ``end``, at a word,
    never inside a protected block (it would start a code block halfway)."""
    if overlap <= 0 or fresh >= len(text):
        return fresh
    back = max(0, end - overlap)
    space = re.compile(r"\s+").search(text, back, end)
    if space is None:
        return fresh
    start = space.end()
    if start >= end or _inside(start, protected) or _inside(end - 1, protected):
        return fresh
    if any(start <= a < end for a, _ in protected):  # the tail of a block is not context
        return fresh
    return start


def _skip_blank(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
