"""Every default lives once, in the settings: a manager built directly is the bot's manager."""

from __future__ import annotations

from bot import OllamaRequestManager
from bot.core.config import Settings
from bot.core.history import ConversationHistory

ATTRIBUTES = (
    "host",
    "default_model",
    "default_system_prompt",
    "max_history_length",
    "max_history_tokens",
    "database_url",
    "fallback_models",
    "request_timeout",
    "first_token_timeout",
    "stream_idle_timeout",
    "max_retries",
    "retry_backoff",
    "keep_alive",
    "default_num_ctx",
    "shutdown_grace",
)


def test_a_manager_built_directly_has_the_settings_defaults() -> None:
    direct = OllamaRequestManager()
    from_settings = OllamaRequestManager.from_settings(Settings())
    for name in ATTRIBUTES:
        assert getattr(direct, name) == getattr(from_settings, name), name
    assert direct.queue.capacity == from_settings.queue.capacity


def test_the_history_window_defaults_to_the_settings() -> None:
    history = ConversationHistory("s")
    assert history.max_length == Settings().max_history_messages
    assert history.max_tokens == Settings().max_history_tokens
