"""Search results as the prompt's numbered sources and the footer's labels.

Passages of one document (one page of a PDF) become one source: the model cites "[2]" for
the document, and the footer names each document once ("handbook.pdf p. 3").
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.knowledge.records import Passage, Sources

PASSAGE_SEPARATOR = "\n[…]\n"  # between two passages of one source


def label_of(document: str, page: int | None) -> str:
    return f"{document} p. {page}" if page is not None else document


def sources_for(passages: Sequence[Passage]) -> Sources:
    """One source per document (per page of a PDF), in the order of its best passage; its
    passages in reading order under a line naming it."""
    groups: dict[tuple[str, int | None], list[Passage]] = {}
    for passage in passages:
        groups.setdefault((passage.document, passage.page), []).append(passage)
    texts: list[str] = []
    labels: list[str] = []
    for (document, page), members in groups.items():
        label = label_of(document, page)
        parts = []
        for passage in sorted(members, key=lambda p: p.position):
            under = f"({passage.heading})\n" if passage.heading else ""
            parts.append(under + passage.text.strip())
        labels.append(label)
        texts.append(f"From {label}:\n" + PASSAGE_SEPARATOR.join(parts))
    return Sources(tuple(texts), tuple(labels))
