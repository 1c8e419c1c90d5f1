"""Search results as numbered sources: one per document (per page of a PDF), in the order
of each one's best passage, its passages in reading order; footer labels name them."""

from __future__ import annotations

from bot.core.knowledge.prompt import with_sources
from bot.core.knowledge.records import Passage, Sources
from bot.core.knowledge.sources import sources_for


def passage(document: str, page: int | None, text: str, position: int, score: float) -> Passage:
    return Passage(document, page, None, text, score, position)


def test_passages_of_one_document_and_page_make_one_source() -> None:
    found = [
        passage("handbook.pdf", 3, "later on page three", 7, 0.9),
        passage("faq.md", None, "the answer in the FAQ", 1, 0.8),
        passage("handbook.pdf", 3, "earlier on page three", 6, 0.7),
        passage("handbook.pdf", 5, "page five", 9, 0.6),
    ]
    sources = sources_for(found)
    assert sources.labels == ("handbook.pdf p. 3", "faq.md", "handbook.pdf p. 5")
    first = sources.texts[0]
    assert first.startswith("From handbook.pdf p. 3:\n")
    assert first.index("earlier on page three") < first.index("later on page three")
    assert sources.footer() == "[1] handbook.pdf p. 3 · [2] faq.md · [3] handbook.pdf p. 5"


def test_headings_go_with_their_passages_into_the_prompt() -> None:
    found = [Passage("guide.md", None, "Install > Linux", "Run make.", 0.9, 2)]
    sources = sources_for(found)
    prompt = with_sources("How do I install it?", sources.texts)
    assert "[1] From guide.md:\n(Install > Linux)\nRun make." in prompt
    assert prompt.endswith("Question: How do I install it?")


def test_no_passages_no_sources() -> None:
    assert sources_for([]) == Sources((), ())
    assert Sources((), ()).footer() == ""
