"""A KnowledgeBase as the bot builds it: a real SQLite store and the request manager's
Embedder, against the Ollama emulator (bag-of-words embeddings: shared words, high cosine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot import OllamaRequestManager
from bot.core.documents import Document
from bot.core.knowledge.base import KnowledgeBase
from bot.storage import create_sessionmaker
from bot.storage.knowledge import KnowledgeStore
from tests.conftest import ManagerFactory
from tests.emulators import ollama_models as catalogue
from tests.emulators.ollama_server import OllamaEmulator

SCOPE = "guild:1"


@pytest.fixture
async def ollama_emu() -> AsyncIterator[OllamaEmulator]:
    # Overrides tests/conftest.py's: a second embedding model, for a change of model.
    async with OllamaEmulator(catalogue.extended_models()) as emu:
        yield emu


KnowledgeFactory = Callable[..., Awaitable[KnowledgeBase]]


@pytest.fixture
def make_knowledge(make_manager: ManagerFactory) -> KnowledgeFactory:
    """``await make_knowledge(embedding_model=..., **kb_options)``: a started manager's
    KnowledgeBase on the test's database (each call: a bot started anew)."""

    async def factory(embedding_model: str = "nomic-embed-text", **options: int) -> KnowledgeBase:
        manager: OllamaRequestManager = make_manager(embedding_model=embedding_model)
        await manager.start()
        engine = manager.services.engine
        assert engine is not None
        store = KnowledgeStore(create_sessionmaker(engine))
        return KnowledgeBase(store, manager.embedder, **options)

    return factory


@pytest.fixture
async def kb(make_knowledge: KnowledgeFactory) -> KnowledgeBase:
    return await make_knowledge()


def text_document(name: str, text: str) -> Document:
    kind = "markdown" if name.endswith(".md") else "text"
    return Document(name, kind, "md" if kind == "markdown" else "", text)


def embed_inputs(emu: OllamaEmulator) -> list[str]:
    """Every text sent to /api/embed so far, in order."""
    return [
        text for r in emu.requests if r.path == "/api/embed" for text in (r.json or {})["input"]
    ]
