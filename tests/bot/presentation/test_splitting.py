"""bot.presentation.splitting: page limits, fence balance, losslessness, streaming stability.

Perf note (deliberately not a timed test): 100k characters of prose + code fed in 5-character
chunks, reading `current` after every feed, take 70-105 ms (30-60 ms without `current`)
with Python 3.11 in the (shared, noisy) dev container:

    .venv/bin/python -m timeit -n 3 -s 'from bot.presentation.splitting import MessageSplitter;
        b = "Some prose, `code`.\n\n```python\n" + "x = f(1)  # comment\n" * 40 + "```\n\n";
        t = (b * 200)[:100_000]' 's = MessageSplitter()'
        'for i in range(0, len(t), 5): s.feed(t[i : i + 5]); s.current' 's.finish()'
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.presentation.splitting import (
    DISCORD_MESSAGE_LIMIT,
    ZWSP,
    MessageSplitter,
    Page,
    split_message,
    split_pages,
)

# An independent fence tracker (no regexes, unlike the module's), so a shared bug in the
# fence rules cannot make a broken page look balanced.


def open_fence_after(text: str) -> tuple[str, int] | None:
    """(char, length) of the fence still open after `text`, or None."""
    fence: tuple[str, int] | None = None
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
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
                fence = (char, run)
        elif char == fence[0] and run >= fence[1] and rest.strip(" \t") == "":
            fence = None
    return fence


def check_pages(text: str, pages: list[Page], limit: int) -> None:
    assert "".join(p.body for p in pages) == text
    assert bool(pages) == bool(text)
    for i, page in enumerate(pages):
        assert page.content == page.prefix + page.body + page.suffix
        assert len(page.content) <= limit
        assert page.body, "every page carries part of the text"
        assert page.content.strip(), "Discord refuses blank messages"
        assert open_fence_after(page.content) is None, f"page {i} leaves a fence open"
        if page.suffix == ZWSP:
            assert not page.prefix and page.body.isspace()
        if i > 0:
            assert not (pages[i - 1].body.endswith("\r") and page.body.startswith("\n"))
        # A page reopens exactly when the previous one had to close a fence.
        closed = i > 0 and pages[i - 1].suffix not in ("", ZWSP)
        assert bool(page.prefix) == closed
        if closed:
            assert page.prefix[0] == pages[i - 1].suffix.lstrip("\n")[0]


def feed_in_chunks(text: str, cuts: list[int], limit: int) -> tuple[list[Page], MessageSplitter]:
    splitter = MessageSplitter(limit)
    sealed: list[Page] = []
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    for a, b in pairwise(bounds):
        sealed += splitter.feed(text[a:b])
        assert len(splitter.current.content) <= limit
        assert splitter.sealed == sealed
        # `current` holds back characters only to make room for a closer or a ZWSP.
        start = sum(len(p.body) for p in sealed)
        current = splitter.current
        assert text[start:b].startswith(current.body)
        if len(current.body) < b - start:
            unsent = text[start:b]
            assert open_fence_after(current.prefix + unsent) is not None or unsent.isspace()
    return splitter.finish(), splitter


# --- unit tests ---------------------------------------------------------------------------


def prose(n_words: int, word: str = "lorem") -> str:
    return " ".join([word] * n_words)


def test_short_text_is_one_page() -> None:
    assert split_message("Hello **world**\n\n```py\nx = 1\n```") == [
        "Hello **world**\n\n```py\nx = 1\n```"
    ]


def test_empty_text_gives_no_page() -> None:
    assert split_message("") == []
    splitter = MessageSplitter()
    assert splitter.feed("") == []
    assert splitter.current == Page("")
    assert splitter.finish() == []


def test_whitespace_only_text_is_made_sendable() -> None:
    assert split_message(" \n ") == [" \n " + ZWSP]


def test_exactly_the_limit_is_one_page() -> None:
    text = "a" * DISCORD_MESSAGE_LIMIT
    assert split_message(text) == [text]


def test_one_over_the_limit_is_two_pages() -> None:
    text = "a" * (DISCORD_MESSAGE_LIMIT + 1)
    assert split_message(text) == ["a" * DISCORD_MESSAGE_LIMIT, "a"]


def test_limit_below_minimum_is_rejected() -> None:
    with pytest.raises(ValueError):
        MessageSplitter(10)


def test_long_python_block_reopens_on_every_page() -> None:
    code = "\n".join(f"value_{i:03} = compute({i}, 'some argument')  # note" for i in range(90))
    text = f"Here you go:\n\n```python\n{code}\n```\nDone."
    pages = split_pages(text)
    check_pages(text, pages, DISCORD_MESSAGE_LIMIT)
    assert len(pages) == 3
    assert pages[0].content.startswith("Here you go:\n\n```python\n")
    for page in pages[1:]:
        assert page.prefix == "```python\n"
    for page in pages[:-1]:
        assert page.suffix == "```"
        assert page.body.endswith("\n"), "split at a line boundary inside the code"
    assert pages[-1].content.endswith("```\nDone.")


def test_tilde_fence_ignores_backtick_lines_inside() -> None:
    body = "\n".join(["```", "not a closer", "```js", "still code"] * 6)
    text = f"~~~~rust\n{body}\n~~~~\nafter"
    pages = split_pages(text, 60)
    check_pages(text, pages, 60)
    assert len(pages) > 2
    for page in pages[1:]:
        assert page.prefix == "~~~~rust\n"
    for page in pages[:-1]:
        assert page.suffix.lstrip("\n") == "~~~~"


def test_split_lands_before_a_fence_opener_near_the_limit() -> None:
    intro = prose(331) + "\n"  # 1986 characters: the opener line would end at 1996
    text = intro + "```python\nprint('hi')\n```"
    pages = split_pages(text)
    assert [p.body for p in pages] == [intro, "```python\nprint('hi')\n```"]
    assert pages[0].suffix == "" and pages[1].prefix == ""


def test_no_empty_code_block_at_page_end() -> None:
    # The opener line ends 10 characters before the limit: splitting right after it would
    # leave a bare "```python" + closer on page one.
    intro = "word " * 396 + "ab\n"  # 1983 characters
    text = intro + "```python\n" + "x = 1\n" * 20 + "```"
    pages = split_pages(text)
    assert pages[0].body == intro


def test_paragraph_break_preferred() -> None:
    first = prose(250)  # 1499 characters
    second = prose(20) + "\n" + prose(200)  # a later newline must not win
    text = first + "\n\n" + second
    assert [p.body for p in split_pages(text)] == [first + "\n\n", second]


def test_newline_preferred_when_paragraph_break_too_early() -> None:
    early = prose(20)
    line = prose(250)
    text = early + "\n\n" + line + "\n" + prose(100)
    bodies = [p.body for p in split_pages(text)]
    assert bodies[0] == early + "\n\n" + line + "\n"


def test_word_boundary_when_no_newline() -> None:
    text = prose(400)  # 2399 characters, one line
    bodies = [p.body for p in split_pages(text)]
    assert bodies[0] == prose(333) + " "  # 1998 characters: the last complete word that fits
    assert bodies[1] == prose(67)


def test_single_huge_word_is_hard_split() -> None:
    text = "x" * 5000
    assert [len(c) for c in split_message(text)] == [2000, 2000, 1000]


def test_crlf_is_never_split() -> None:
    # Only a hard split through whitespace can reach a CRLF: the line break after it would
    # not leave room for the ZWSP a blank page needs.
    text = " " * 39 + "\r\n" + "x"
    assert [p.body for p in split_pages(text, 41)] == [" " * 39, "\r\nx"]


def test_trailing_blank_lines_stay_with_visible_text() -> None:
    text = "word " * 399 + "word\n\n"  # splitting at the last newline would leave "\n" alone
    assert split_message(text) == ["word " * 399, "word\n\n"]


def test_split_avoids_fence_info_string() -> None:
    text = "~~~python title with spaces\n" + "z" * 2500 + "\n~~~"
    pages = split_pages(text)
    assert pages[0].body.startswith("~~~python title with spaces\nzzz")
    assert pages[0].suffix == "\n~~~"
    assert pages[1].prefix == "~~~python title with spaces\n"


def test_streaming_shows_open_block_closed() -> None:
    splitter = MessageSplitter()
    splitter.feed("Look:\n```py\nx = 1")
    assert splitter.current.content == "Look:\n```py\nx = 1\n```"
    splitter.feed("\n")
    assert splitter.current.content == "Look:\n```py\nx = 1\n```"
    splitter.feed("```")
    assert splitter.current.content == "Look:\n```py\nx = 1\n```"
    assert splitter.current.suffix == ""


def test_current_holds_back_text_to_fit_its_closer() -> None:
    splitter = MessageSplitter(40)
    assert splitter.feed("```\n" + "a" * 34) == []  # 38 characters: the text itself fits
    assert splitter.current.content == "```\n" + "a" * 32 + "\n```"
    assert splitter.finish()[0].content == "```\n" + "a" * 32 + "\n```"


def test_feed_returns_pages_as_they_seal() -> None:
    splitter = MessageSplitter(100)
    assert splitter.feed(prose(16)) == []  # 95 characters fit
    sealed = splitter.feed(" " + prose(10))
    assert [p.body for p in sealed] == [prose(16) + " "]
    assert splitter.current.body == prose(10)
    assert splitter.finish() == [*sealed, Page(prose(10))]
    with pytest.raises(RuntimeError):
        splitter.feed("more")


# --- property tests -----------------------------------------------------------------------

WORDS = st.sampled_from(["a", "the", "Discord", "def", "x=1", "naïve", "日本", "**b**", "_i_"])
FENCES = st.builds(
    lambda indent, char, n, info: "\n" + " " * indent + char * n + info + "\n",
    st.integers(0, 4),
    st.sampled_from("`~"),
    st.integers(3, 5),
    st.sampled_from(["", "python", "js", " rust", "c++ x", "a`b", "~"]),
)
RUNS = st.builds(
    lambda char, n: char * n,
    st.sampled_from(["a", " ", "`", "~", "\n", "\r\n", "-", "\t"]),
    st.integers(3, 250),
)
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\n\n", "\r\n", "\t", "`", "``", "`code`"])
CHAOS = st.lists(st.one_of(WORDS, SEPARATORS, FENCES, RUNS), max_size=120).map("".join)
LONG_WORDS = st.builds(lambda n: "z" * n, st.integers(10, 400))


@st.composite
def markdown(draw: st.DrawFn) -> str:
    """Well-formed-ish Markdown: prose lines never look like fences; fence lines are short."""
    out: list[str] = []
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.booleans()):
            words = draw(st.lists(st.one_of(WORDS, LONG_WORDS, st.just("`x`")), min_size=1))
            out.append(draw(WORDS) + " " + " ".join(words))
        else:
            char = draw(st.sampled_from("`~"))
            lang = draw(st.sampled_from(["", "python", "js", "c x", "sh a=b"]))
            out.append(" " * draw(st.integers(0, 3)) + char * draw(st.integers(3, 5)) + lang)
    seps = draw(st.lists(st.sampled_from(["\n", "\n\n", "\r\n"]), min_size=len(out)))
    return "".join(line + sep for line, sep in zip(out, seps, strict=False))


LIMITS = st.integers(40, 300)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=CHAOS, limit=LIMITS)
# A tilde fence whose info string starts with tildes: reopened on the next page, the info
# ran into the fence and made it longer than the closer.
@example(text="~" * 66 + " " + "~" * 71 + "DiscordDiscord " + "a" * 31, limit=222)
def test_pages_are_bounded_balanced_lossless(text: str, limit: int) -> None:
    check_pages(text, split_pages(text, limit), limit)


@SETTINGS
@given(text=CHAOS, limit=LIMITS, cuts=st.lists(st.integers(0, 10**6), max_size=40))
# Fed one character at a time, the page is sealed before the "b" arrives: a split rule that
# peeked one character further would decide differently in batch.
@example(text="a" * 39 + "  b", limit=40, cuts=list(range(42)))
def test_chunked_feeding_equals_batch(text: str, limit: int, cuts: list[int]) -> None:
    pages, splitter = feed_in_chunks(text, cuts, limit)
    assert [p.content for p in pages] == split_message(text, limit)
    assert splitter.current == (pages[-1] if pages else Page(""))


@SETTINGS
@given(text=markdown(), limit=LIMITS, cuts=st.lists(st.integers(0, 10**6), max_size=40))
def test_markdown_pages_agree_with_whole_text(text: str, limit: int, cuts: list[int]) -> None:
    pages, _ = feed_in_chunks(text, cuts, limit)
    check_pages(text, pages, limit)
    assert all(page.suffix != ZWSP for page in pages)
    offset = 0
    for page in pages[:-1]:
        offset += len(page.body)
        # The page closes a fence exactly when the whole answer is inside one there, and
        # no split cuts through a fence line.
        fence = open_fence_after(text[:offset])
        assert (page.suffix != "") == (fence is not None)
        if fence is not None:
            assert page.suffix.lstrip("\n") == fence[0] * fence[1]
