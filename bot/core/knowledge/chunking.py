"""A document split into passages that follow its structure (pure; no model, no database).

- Markdown: sections under their headings; each chunk keeps its heading path ("Install >
  Linux"). A heading with nothing under it but subheadings joins the next section; short
  neighbouring sections share a chunk (under the headings they have in common). Fenced code
  blocks are never cut when they fit in a chunk.
- PDF: each page on its own (a chunk never spans two pages), with its page number.
- CSV and TSV: groups of whole rows; the header row is each chunk's heading, so every chunk
  is embedded with its columns' names.
- Text, code, JSON: paragraphs, then lines, then sentences (``bot.core.knowledge.splitting``).

Chunks aim at TARGET_CHARS (about 250 tokens: room for several in a prompt, and one topic
each), are never longer than MAX_CHARS, and repeat about OVERLAP_CHARS of the previous
chunk so that a sentence cut at a boundary is whole in one of them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from bot.core.documents import Document
from bot.core.errors import AttachmentError
from bot.core.knowledge.records import Chunk
from bot.core.knowledge.splitting import Span, split_text

TARGET_CHARS = 1000
MAX_CHARS = 1200
OVERLAP_CHARS = 120
# A 1,000,000-character document makes about 1,100 chunks; the bound stops a pathological
# file (thousands of one-line sections) from costing thousands of embeddings.
MAX_CHUNKS = 2000
MAX_HEADING_CHARS = 300  # kb_chunks.heading
HEADING_SEPARATOR = " > "

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BLANK = re.compile(r"\s+")


@dataclass(slots=True)
class _Section:
    text: str
    path: tuple[str, ...]  # heading titles, outermost first
    page: int | None = None
    heading: str | None = None  # a fixed heading (a table's header row) instead of a path
    bare: bool = False  # only heading lines: it joins the next section


def chunk_document(
    doc: Document,
    *,
    target: int = TARGET_CHARS,
    limit: int = MAX_CHARS,
    overlap: int = OVERLAP_CHARS,
    max_chunks: int = MAX_CHUNKS,
) -> list[Chunk]:
    """The document's chunks in reading order; AttachmentError past ``max_chunks``."""
    if doc.kind == "pdf":
        sections = [_Section(page, (), n) for n, page in enumerate(doc.pages, 1) if page.strip()]
    elif doc.kind == "markdown":
        sections = _merge_short(_markdown_sections(doc.text), target)
    elif doc.kind == "csv":
        sections = [_table_section(doc.text)]
    else:
        sections = [_Section(doc.text, ())]
    chunks: list[Chunk] = []
    for section in sections:
        heading = section.heading or _heading(section.path)
        protected = _fenced_blocks(section.text) if doc.kind == "markdown" else []
        spans = split_text(
            section.text, target=target, limit=limit, overlap=overlap, protected=protected
        )
        for start, end in spans:
            if len(chunks) >= max_chunks:
                raise AttachmentError(
                    doc.filename,
                    AttachmentError.TOO_LONG,
                    f"`{doc.filename}` makes more than {max_chunks:,} passages; split it "
                    "into smaller documents.",
                )
            text = section.text[start:end]
            chunks.append(Chunk(text, section.page, heading, content_hash(text, heading)))
    return chunks


def normalize(text: str) -> str:
    """Text as compared for "the same content": Unicode NFC, whitespace runs as one space."""
    return _BLANK.sub(" ", unicodedata.normalize("NFC", text)).strip()


def content_hash(text: str, heading: str | None = None) -> str:
    """sha256 of what is embedded (the heading path with the text), normalised: equal
    hashes get equal vectors from one model, so one embedding serves them all."""
    embedded = Chunk(text, None, heading, "").embedding_text
    return hashlib.sha256(normalize(embedded).encode()).hexdigest()


def _heading(path: tuple[str, ...]) -> str | None:
    if not path:
        return None
    heading = HEADING_SEPARATOR.join(path)
    if len(heading) > MAX_HEADING_CHARS:
        heading = heading[: MAX_HEADING_CHARS - 1].rstrip() + "…"
    return heading


def _markdown_sections(text: str) -> list[_Section]:
    """Sections that each start at a heading line (the first may have none), in order;
    a section of heading lines only is folded into the next one."""
    lines = text.splitlines(keepends=True)
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    body = False  # the current section has lines besides its headings
    fence: str | None = None

    def close() -> None:
        if current and "".join(current).strip():
            titles = tuple(title for _, title in path)
            sections.append(_Section("".join(current), titles, bare=not body))

    for index, line in enumerate(lines):
        if fence is not None:
            current.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        opening = _FENCE.match(line)
        heading = _heading_of(line, lines[index + 1] if index + 1 < len(lines) else "")
        if opening:
            fence = opening.group(1)
        elif heading is not None:
            level, title = heading
            # A heading after body text starts a section; headings after headings (a
            # chapter's title, then its first section's) stay together.
            if body:
                close()
                current, body = [], False
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
            current.append(line)
            continue
        elif _SETEXT.match(line) and current and not body and index and _setext_of(lines, index):
            current.append(line)  # the underline of a heading already taken
            continue
        current.append(line)
        body = body or bool(line.strip())
    close()
    return _fold_bare(sections)


def _heading_of(line: str, following: str) -> tuple[int, str] | None:
    """(level, title) if ``line`` is an ATX heading or the text of a setext one."""
    match = _ATX.match(line)
    if match:
        return len(match.group(1)), (match.group(2) or "").strip()
    underline = _SETEXT.match(following)
    if underline and line.strip() and not _FENCE.match(line) and not line.startswith("    "):
        return (1 if underline.group(1)[0] == "=" else 2), line.strip()
    return None


def _setext_of(lines: list[str], index: int) -> bool:
    previous = lines[index - 1]
    return bool(previous.strip()) and _heading_of(previous, lines[index]) is not None


def _fold_bare(sections: list[_Section]) -> list[_Section]:
    folded: list[_Section] = []
    pending = ""
    for section in sections:
        if section.bare:
            pending += section.text
            continue
        folded.append(_Section(pending + section.text, section.path))
        pending = ""
    if pending:  # headings with nothing after them at all
        folded.append(_Section(pending, sections[-1].path))
    return folded


def _merge_short(sections: list[_Section], target: int) -> list[_Section]:
    """Neighbouring sections that fit in one chunk together share it, under the headings
    they have in common (their own heading lines are in the text)."""
    merged: list[_Section] = []
    for section in sections:
        if merged and len(merged[-1].text) + len(section.text) <= target:
            last = merged[-1]
            common = _common_prefix(last.path, section.path)
            merged[-1] = _Section(last.text + _joiner(last.text) + section.text, common)
        else:
            merged.append(section)
    return merged


def _joiner(text: str) -> str:
    return "" if text.endswith("\n") else "\n"


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    common = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common.append(x)
    return tuple(common)


def _table_section(text: str) -> _Section:
    """The rows under the header row, which becomes every chunk's heading."""
    header, _, rows = text.lstrip("\ufeff").partition("\n")
    if not rows.strip():  # a header alone is the whole table
        return _Section(header, ())
    heading = header.strip()[:MAX_HEADING_CHARS] or None
    return _Section(rows, (), heading=heading)


def _fenced_blocks(text: str) -> list[Span]:
    """(start, end) of every fenced code block (an unclosed one runs to the end)."""
    blocks: list[Span] = []
    offset = 0
    opened: tuple[int, str] | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if opened is None:
            match = _FENCE.match(line)
            if match:
                opened = (offset, match.group(1))
        elif stripped.startswith(opened[1]) and not stripped.strip(opened[1][0]):
            blocks.append((opened[0], offset + len(line.rstrip("\r\n"))))
            opened = None
        offset += len(line)
    if opened is not None:
        blocks.append((opened[0], len(text)))
    return blocks
