"""Plain values of the knowledge base, shared by the core's service and the store.

Nothing here imports more than the standard library: ``bot.storage`` returns these, and it
may import only the core's plain types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ADDED = "added"
REPLACED = "replaced"  # a changed document under a name already taken
UNCHANGED = "unchanged"  # the same content again: nothing embedded


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document. ``heading`` is its Markdown heading path ("Install > Linux"),
    ``page`` its PDF page (1 first); ``content_hash`` identifies what is embedded, so equal
    passages share one embedding."""

    text: str
    page: int | None
    heading: str | None
    content_hash: str

    @property
    def embedding_text(self) -> str:
        """What the embedding model reads: the heading path gives a passage deep in a long
        section the topic its own words may not name (a table's header row, its columns)."""
        return f"{self.heading}\n\n{self.text}" if self.heading else self.text


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk about to be stored, with its embedding (float32 little-endian bytes)."""

    chunk: Chunk
    model: str
    embedding: bytes


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A stored document. ``stale``: its chunks embedded by another model than the current
    EMBEDDING_MODEL (or not at all), which searches skip until they are re-embedded."""

    name: str
    chunks: int
    characters: int
    pages: int | None
    channel_ids: tuple[int, ...] | None  # None: every channel of the server
    added_by: int | None
    created_at: datetime
    stale: int = 0


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What ingestion needs to know of a document already stored under a name."""

    id: int
    content_hash: str
    channel_ids: tuple[int, ...] | None
    chunks: int


@dataclass(frozen=True, slots=True)
class AddedDocument:
    """The outcome of adding a document: ``status`` is ADDED, REPLACED or UNCHANGED;
    ``embedded`` counts the chunks whose vectors were computed now (the others reused)."""

    name: str
    chunks: int
    characters: int
    pages: int | None
    status: str
    embedded: int


@dataclass(frozen=True, slots=True)
class ScopeVectors:
    """A server's vectors of one model, as the index loads them: ``embeddings`` is every
    vector's float32 little-endian bytes, one after another, in the order of ``chunk_ids``
    (a bytearray, so the index can use the buffer as its matrix without a copy)."""

    chunk_ids: tuple[int, ...]
    document_ids: tuple[int, ...]
    embeddings: bytes | bytearray
    # document id -> the channels it is limited to (None: every channel)
    channels: dict[int, tuple[int, ...] | None]


@dataclass(frozen=True, slots=True)
class PassageText:
    """A chunk's words and where they come from, read back for a search's best rows."""

    chunk_id: int
    document: str
    position: int
    page: int | None
    heading: str | None
    text: str


@dataclass(frozen=True, slots=True)
class StaleChunk:
    """A chunk to re-embed with the current model."""

    id: int
    scope: str
    text: str
    heading: str | None
    content_hash: str


@dataclass(frozen=True, slots=True)
class Passage:
    """A search result: the passage, its document and how close it is to the question
    (cosine similarity, 1 is identical)."""

    document: str
    page: int | None
    heading: str | None
    text: str
    score: float
    position: int = 0


@dataclass(frozen=True, slots=True)
class Sources:
    """Passages as the prompt numbers them: ``texts[i]`` is source i + 1
    (for ``bot.core.knowledge.prompt.with_sources``), ``labels[i]`` names it in a footer
    ("handbook.pdf p. 3")."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]

    def footer(self) -> str:
        """ "[1] handbook.pdf p. 3 · [2] faq.md"; empty without sources."""
        return " · ".join(f"[{i}] {label}" for i, label in enumerate(self.labels, 1))
