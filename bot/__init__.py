"""ollacord: a Discord bot for chatting with local LLMs served by Ollama.

The request manager is the public core API; the Discord bot is built by ``bot.app``.
"""

from bot.datatypes import GenerationConfig, OllamaQueryResult
from bot.history import ConversationHistory
from bot.manager import OllamaRequestManager

__all__ = ["ConversationHistory", "GenerationConfig", "OllamaQueryResult", "OllamaRequestManager"]
