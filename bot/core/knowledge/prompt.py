"""How retrieved passages reach the model: numbered sources before the question, with the
rule to cite them as [n] and to say so when they do not answer it."""

from __future__ import annotations

from collections.abc import Sequence

WITH_SOURCES = (
    "Answer the question using the numbered sources below from this server's knowledge base "
    "where they help. Cite each source you use as [n] right after the sentence it supports. "
    "Do not cite a source for what it does not say; if the sources do not answer the "
    "question, say so and answer from what you know, without citations."
)
NO_SOURCES = (
    "This server's knowledge base has no passage relevant to the question below: do not cite "
    "any source, and if the question needs the server's own documents, say that you found "
    "nothing about it in them."
)


def with_sources(question: str, sources: Sequence[str]) -> str:
    """The question as the model sees it: numbered ``sources`` first (none: the model is
    told that nothing relevant was found, so it invents no citation)."""
    if not sources:
        return f"{NO_SOURCES}\n\nQuestion: {question}"
    numbered = "\n\n".join(f"[{i}] {source.strip()}" for i, source in enumerate(sources, 1))
    return f"{WITH_SOURCES}\n\nSources:\n{numbered}\n\nQuestion: {question}"
