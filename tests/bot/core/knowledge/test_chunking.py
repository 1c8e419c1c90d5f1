"""Documents split into passages that follow their structure: headings, code blocks, PDF
pages, CSV rows; bounded length, overlap, and a bounded number of chunks."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.documents import Document
from bot.core.errors import AttachmentError
from bot.core.knowledge.chunking import (
    MAX_CHARS,
    OVERLAP_CHARS,
    chunk_document,
    content_hash,
)
from bot.core.knowledge.splitting import split_text


def markdown(text: str) -> Document:
    return Document("guide.md", "markdown", "md", text)


def plain(text: str) -> Document:
    return Document("notes.txt", "text", "", text)


def sentences(topic: str, count: int) -> str:
    return " ".join(f"The {topic} sentence number {i} says something." for i in range(count))


def test_each_chunk_keeps_its_heading_path() -> None:
    doc = markdown(
        "# Guide\n\nWelcome to the guide.\n\n## Install\n\n"
        + sentences("install", 40)
        + "\n\n### Linux\n\n"
        + sentences("linux", 40)
        + "\n\n## Usage\n\n"
        + sentences("usage", 40)
    )
    chunks = chunk_document(doc)
    by_topic = {
        topic: {c.heading for c in chunks if f"The {topic} sentence" in c.text}
        for topic in ("install", "linux", "usage")
    }
    assert by_topic == {
        "install": {"Guide > Install"},
        "linux": {"Guide > Install > Linux"},
        "usage": {"Guide > Usage"},
    }
    # A section's first chunk starts with its heading line; later ones carry it as heading.
    linux = [c for c in chunks if c.heading == "Guide > Install > Linux"]
    assert linux[0].text.startswith("### Linux") and len(linux) > 1
    assert linux[1].embedding_text.startswith("Guide > Install > Linux\n\n")


def test_a_heading_with_only_subheadings_joins_the_next_section() -> None:
    doc = markdown("# Handbook\n\n## Rules\n\nBe kind to each other.\n")
    [chunk] = chunk_document(doc)
    assert chunk.heading == "Handbook > Rules"
    assert chunk.text.startswith("# Handbook\n\n## Rules")


def test_short_sections_share_a_chunk_under_their_common_heading() -> None:
    doc = markdown("# FAQ\n\n## Dues\n\nTen euros.\n\n## Meetings\n\nOn Fridays.\n")
    [chunk] = chunk_document(doc)
    assert chunk.heading == "FAQ"
    assert "## Dues" in chunk.text and "## Meetings" in chunk.text


def test_setext_headings_count_and_hashes_in_code_do_not() -> None:
    code = "```python\n# not a heading\nx = 1\n```\n"
    doc = markdown(
        "Intro\n=====\n\n"
        + sentences("intro", 30)
        + "\n\nDetails\n-------\n\n"
        + code
        + sentences("detail", 30)
    )
    chunks = chunk_document(doc)
    assert {c.heading for c in chunks} == {"Intro", "Intro > Details"}  # h2 under h1
    assert all("not a heading" not in (c.heading or "") for c in chunks)


def test_a_code_block_that_fits_is_never_cut() -> None:
    # Blank lines inside the block are where a paragraph splitter would cut it.
    functions = (f"def handler_{i}(event):\n    return process(event, {i})\n" for i in range(14))
    code = "```python\n" + "\n".join(functions) + "```"
    assert 600 < len(code) < MAX_CHARS
    for before in (100, 300, 500, 700, 900):
        doc = markdown("Lead " + "words " * (before // 6) + "\n\n" + code + "\n\nAfter it.\n")
        chunks = chunk_document(doc)
        assert any(code in c.text for c in chunks), (before, [len(c.text) for c in chunks])
        holding = [c for c in chunks if "handler_" in c.text]
        assert all(code in c.text for c in holding), before


def test_a_code_block_too_long_for_one_chunk_is_cut_at_lines() -> None:
    code = "```\n" + "".join(f"line {i:04d} of the program\n" for i in range(200)) + "```\n"
    chunks = chunk_document(markdown(code))
    assert len(chunks) > 3
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    # Cut between lines, never inside one.
    assert all(c.text.endswith("of the program") for c in chunks[:-1]), chunks[0].text[-40:]


def test_pdf_chunks_never_span_pages_and_know_theirs() -> None:
    pages = (sentences("first", 60), "A short second page.", "", sentences("fourth", 10))
    doc = Document("book.pdf", "pdf", "", "joined", pages)
    chunks = chunk_document(doc)
    assert {c.page for c in chunks} == {1, 2, 4}  # the empty page makes none
    for chunk in chunks:
        assert chunk.text in pages[chunk.page - 1]
    assert [c.text for c in chunks if c.page == 2] == ["A short second page."]


def test_csv_rows_are_grouped_whole_under_the_header() -> None:
    rows = [f"member{i},{i},role{i % 3}" for i in range(400)]
    doc = Document("members.csv", "csv", "csv", "name,age,role\n" + "\n".join(rows) + "\n")
    chunks = chunk_document(doc)
    assert len(chunks) > 5
    assert all(c.heading == "name,age,role" for c in chunks)
    for chunk in chunks:
        lines = chunk.text.splitlines()
        assert all(re.fullmatch(r"member\d+,\d+,role\d", line) for line in lines), chunk.text
    seen = {line for c in chunks for line in c.text.splitlines()}
    assert seen == set(rows)


def test_consecutive_chunks_overlap_by_a_little() -> None:
    chunks = chunk_document(plain(sentences("overlap", 200)))
    assert len(chunks) > 5
    for first, second in itertools.pairwise(chunks):
        shared = _shared(first.text, second.text)
        assert 0 < shared <= OVERLAP_CHARS, (shared, first.text[-150:], second.text[:150])


def test_chunk_sizes_aim_at_the_target() -> None:
    chunks = chunk_document(plain("\n\n".join(sentences(f"p{i}", 8) for i in range(60))))
    assert all(700 <= len(c.text) <= MAX_CHARS for c in chunks[:-1]), [len(c.text) for c in chunks]


def test_the_number_of_chunks_is_bounded() -> None:
    doc = plain(sentences("many", 400))
    assert len(chunk_document(doc)) > 10
    with pytest.raises(AttachmentError) as caught:
        chunk_document(doc, max_chunks=10)
    assert caught.value.reason == AttachmentError.TOO_LONG
    assert "more than 10 passages" in caught.value.user_message


def test_content_hash_ignores_spacing_but_not_words_or_headings() -> None:
    assert content_hash("a  b\n c") == content_hash("a b c")
    assert content_hash("a b c") != content_hash("a b d")
    assert content_hash("a b c", "Intro") != content_hash("a b c")
    chunks = chunk_document(plain("same words here.\n\nother words there."))
    assert chunks[0].content_hash == content_hash(chunks[0].text)


def _shared(first: str, second: str) -> int:
    """The length of the longest end of ``first`` that starts ``second``."""
    for size in range(min(len(first), len(second)), 0, -1):
        if first.endswith(second[:size]):
            return size
    return 0


# -- properties ---------------------------------------------------------------------------
WORDS = st.text(alphabet="abcdefghij", min_size=1, max_size=15)
SEPARATORS = st.sampled_from([" ", " ", " ", ". ", "\n", "\n\n", ",  "])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=900).map(
    lambda parts: "".join(w + s for w, s in parts)
)


@settings(max_examples=60, deadline=None)
@given(TEXTS, st.integers(100, 1200), st.integers(0, 49))
def test_spans_cover_the_text_and_never_exceed_the_limit(
    text: str, limit: int, overlap_percent: int
) -> None:
    target = max(20, limit * 5 // 6)
    overlap = target * overlap_percent // 100
    spans = split_text(text, target=target, limit=limit, overlap=overlap)
    covered = bytearray(len(text))
    for (start, end), following in zip(spans, [*spans[1:], (len(text), len(text))], strict=True):
        assert 0 < end - start <= limit
        assert start < following[0]  # in order, each adding text
        covered[start:end] = b"\1" * (end - start)
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            TEXTS.map(lambda t: t[:400]),
            st.tuples(st.integers(1, 3), WORDS).map(lambda h: "#" * h[0] + " " + h[1]),
            st.integers(1, 60).map(lambda n: "```\n" + "code line\n" * n + "```"),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_markdown_chunks_cover_every_word_within_the_limit(blocks: list[str]) -> None:
    text = "\n\n".join(blocks)
    chunks = chunk_document(markdown(text))
    assert all(0 < len(c.text) <= MAX_CHARS for c in chunks)
    in_chunks = " ".join(c.text for c in chunks)
    for word in set(re.findall(r"\S+", text)):
        if len(word) < 100:  # a word longer than a span may be cut
            assert word in in_chunks, word
