"""ollacord: a Discord bot for chatting with local LLMs served by Ollama.

The request manager is the public core API; the Discord bot is built by ``bot.discord_app.app``.
Names are imported on first use, so ``python -m bot`` and the CLI start without paying
for SQLAlchemy and the Ollama client until they need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.history import ConversationHistory
    from bot.core.manager import OllamaRequestManager
    from bot.core.types import GenerationConfig, OllamaQueryResult

__all__ = ["ConversationHistory", "GenerationConfig", "OllamaQueryResult", "OllamaRequestManager"]

_HOMES = {
    "ConversationHistory": "bot.core.history",
    "GenerationConfig": "bot.core.types",
    "OllamaQueryResult": "bot.core.types",
    "OllamaRequestManager": "bot.core.manager",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bot' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
