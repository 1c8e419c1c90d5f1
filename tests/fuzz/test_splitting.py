"""Fuzz: bot/presentation/splitting.py and pacing.py.

Answers are generated as Markdown a model writes (prose, fences of several lengths and
languages, CRLF, awkward Unicode) and fed in random chunks. Properties: every page at most
the limit, none empty or blank, every page's fences balanced, a page that starts inside a
code block reopens it with its language, the bodies joined give the answer back exactly;
streaming shows nothing a later chunk takes back. Pacing never sends into an empty bucket.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import example, given
from hypothesis import strategies as st

from bot.presentation.pacing import RateLimitInfo, edit_delay
from bot.presentation.splitting import (
    DISCORD_MESSAGE_LIMIT,
    MIN_LIMIT,
    ZWSP,
    MessageSplitter,
    Page,
    split_pages,
)
from tests.fuzz.support import awkward_text, fuzz

# Pages per answer at most: more says nothing new and costs time.
PAGES = 12
LANGUAGES = ["", "python", "js", "c++", "diff", "a" * 40]


def fence_at(text: str) -> tuple[str, int, str] | None:
    """(char, length, info) of the code block open at the end of ``text`` (CommonMark's
    rules, written without the module's regexes so a shared bug cannot hide)."""
    fence: tuple[str, int, str] | None = None
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3 or stripped[:1] not in ("`", "~"):
            continue
        char = stripped[0]
        rest = stripped.lstrip(char)
        run = len(stripped) - len(rest)
        if run < 3:
            continue
        if fence is None:
            if not (char == "`" and "`" in rest):
                fence = (char, run, rest.strip())
        elif char == fence[0] and run >= fence[1] and rest.strip(" \t") == "":
            fence = None
    return fence


@st.composite
def answers(draw: st.DrawFn) -> str:
    """A model's answer: paragraphs and code blocks, some never closed."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["prose", "code", "code", "unclosed", "long line"]))
        if kind == "prose":
            parts.append(draw(awkward_text(600)))
        elif kind == "long line":
            parts.append(draw(st.sampled_from("x `~ ")) * draw(st.integers(1, 2600)))
        else:
            char = draw(st.sampled_from("`~"))
            fence = char * draw(st.integers(3, 6))
            info = draw(st.sampled_from(LANGUAGES))
            lines = draw(st.lists(awkward_text(120), max_size=60))
            body = "\n".join(lines)
            closer = "" if kind == "unclosed" else f"\n{fence}"
            parts.append(f"{fence}{info}\n{body}{closer}")
    newline = draw(st.sampled_from(["\n", "\n\n", "\r\n"]))
    return newline.join(parts)


def check(text: str, pages: list[Page], limit: int) -> None:
    assert "".join(p.body for p in pages) == text, "text lost or changed"
    assert bool(pages) == bool(text)
    # A line longer than a page must be cut, a fence line too: only then may a page's own
    # parse disagree with the answer's (the module keeps out of fence lines otherwise).
    lines_fit = all(len(line) < limit // 4 for line in text.split("\n"))
    start = 0
    for i, page in enumerate(pages):
        assert len(page.content) <= limit
        assert page.body, f"page {i} carries no text"
        assert page.content.strip(), f"page {i} is blank (Discord refuses it)"
        assert fence_at(page.content) is None, f"page {i} leaves a code block open"
        if page.suffix == ZWSP:
            assert page.body.isspace()
        if page.prefix and lines_fit:
            # It reopens the block the answer is in here, with its language.
            open_here = fence_at(text[:start])
            assert open_here is not None, f"page {i} reopens a block that is not open"
            char, _, info = open_here
            assert page.prefix.startswith(char * 3) and page.prefix.endswith("\n")
            rest = page.prefix.removesuffix("\n").lstrip(char)
            reopened = rest[1:] if rest.startswith(" " + char) else rest
            # A tiny page keeps only the start of a long language (room for the text).
            assert info.startswith(reopened)
            assert reopened == info or limit < DISCORD_MESSAGE_LIMIT
        start += len(page.body)


@fuzz(60)
@given(text=answers(), limit=st.sampled_from([DISCORD_MESSAGE_LIMIT, 500, 97, MIN_LIMIT]))
@example(text="```python\n" + "x = 1\n" * 600 + "```\nafter", limit=DISCORD_MESSAGE_LIMIT)
@example(text="\n" * 4001, limit=DISCORD_MESSAGE_LIMIT)
@example(text="~~~ ~~x\n" + "y" * 5000, limit=MIN_LIMIT)
def test_pages_of_a_whole_answer(text: str, limit: int) -> None:
    text = text[: limit * PAGES]
    check(text, split_pages(text, limit), limit)


@fuzz(40)
@given(text=answers(), cuts=st.lists(st.integers(0, 20_000), max_size=40), data=st.data())
def test_streamed_pages_agree_and_never_take_back(
    text: str, cuts: list[int], data: st.DataObject
) -> None:
    limit = data.draw(st.sampled_from([DISCORD_MESSAGE_LIMIT, 300]))
    text = text[: limit * PAGES]
    splitter = MessageSplitter(limit)
    sealed: list[Page] = []
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    for a, b in pairwise(bounds):
        sealed += splitter.feed(text[a:b])
        shown = splitter.current
        assert len(shown.content) <= limit
        # What is shown of the open page is text already received, from where it starts.
        start = sum(len(p.body) for p in sealed)
        assert text[start:b].startswith(shown.body)
    pages = splitter.finish()
    assert pages[: len(sealed)] == sealed, "a sent page changed"
    check(text, pages, limit)


@fuzz(200)
@given(
    limit=st.integers(1, 50),
    window=st.floats(0.05, 10),
    arrivals=st.lists(st.floats(0, 0.5), min_size=1, max_size=300),
    finals=st.sets(st.integers(0, 299)),
    stretch=st.floats(1.0, 3.0),
    floor=st.floats(0.0, 1.0),
)
def test_pacing_never_sends_into_an_empty_bucket(
    limit: int,
    window: float,
    arrivals: list[float],
    finals: set[int],
    stretch: float,
    floor: float,
) -> None:
    """Edits arrive at random gaps, some final; each waits as edit_delay says. A fixed-window
    bucket (as Discord's) never goes below zero and no delay is negative or endless."""
    now, reset_at, remaining = 0.0, window, limit
    last: float | None = None
    for i, gap in enumerate(arrivals):
        now += gap
        final = i in finals
        for _ in range(3):  # a wait ends, the bucket may have changed: ask again
            if now >= reset_at:
                remaining, reset_at = limit, now + window
            info = RateLimitInfo(limit, remaining, reset_at)
            delay = edit_delay(info, now, last, final=final, stretch=stretch, floor=floor)
            assert 0.0 <= delay <= stretch * max(window, floor) + 1e-9
            if delay == 0:
                break
            now += delay
        else:
            continue
        if now >= reset_at:
            remaining, reset_at = limit, now + window
        assert remaining > 0, "sent into an empty bucket"
        if not final and limit > 1:
            assert remaining > 1, "spent the request kept for the final edit"
        remaining -= 1
        last = now
