"""Settings: defaults, parsing, .env loading, and one error naming every bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.config import DEFAULT_DATABASE_URL, Settings
from bot.core.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_mapping({"DISCORD_TOKEN": "t"})
    assert s.ollama_host == "http://localhost:11434"
    assert s.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///data/ollacord.db"
    assert s.max_history_messages == 50 and s.max_retries == 3 and s.retry_backoff == 1.0
    assert s.keep_alive == "5m" and s.fallback_models == ()


def test_parsing() -> None:
    s = Settings.from_mapping(
        {
            "DISCORD_TOKEN": "t",
            "OLLAMA_HOST": "http://gpu-box:11434/",
            "FALLBACK_MODELS": "llama3.2, qwen3 ,,",
            "MAX_HISTORY_TOKENS": "4000",
            "REQUEST_TIMEOUT": "30.5",
            "RETRY_BACKOFF": "0",
            "LOG_LEVEL": "debug",
            "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9000/gateway",
        }
    )
    assert s.ollama_host == "http://gpu-box:11434"
    assert s.fallback_models == ("llama3.2", "qwen3")
    assert s.max_history_tokens == 4000 and s.request_timeout == 30.5
    assert s.retry_backoff == 0.0 and s.log_level == "DEBUG"


def test_every_bad_key_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping(
            {
                "OLLAMA_HOST": "localhost:11434",
                "MAX_RETRIES": "three",
                "REQUEST_TIMEOUT": "-1",
                "DATABASE_URL": "sqlite:///x.db",
                "LOG_LEVEL": "LOUD",
            }
        )
    message = str(info.value)
    for key in (
        "DISCORD_TOKEN",
        "OLLAMA_HOST",
        "MAX_RETRIES",
        "REQUEST_TIMEOUT",
        "DATABASE_URL",
        "LOG_LEVEL",
    ):
        assert key in message
    assert len(info.value.problems) == 6


def test_token_optional_for_the_cli() -> None:
    assert Settings.from_mapping({}, require_discord=False).discord_token is None


def test_token_is_never_in_repr() -> None:
    s = Settings.from_mapping({"DISCORD_TOKEN": "super-secret-token"})
    assert "super-secret-token" not in repr(s)


def test_dotenv_file_and_environment_precedence(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nDEFAULT_MODEL=qwen3\nMAX_RETRIES=5\n")
    s = Settings.load({"MAX_RETRIES": "1"}, dotenv_path=env_file)
    assert s.discord_token == "from-file" and s.default_model == "qwen3"
    assert s.max_retries == 1


def test_env_example_lists_every_setting() -> None:
    example = Path(__file__).parents[3] / ".env.example"
    keys = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert keys == {f.upper() for f in Settings.__dataclass_fields__}


def test_booleans() -> None:
    s = Settings.from_mapping({"DISCORD_TOKEN": "t", "MENTION_CHAT": "yes"})
    assert s.mention_chat and s.wants_message_content
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({"DISCORD_TOKEN": "t", "MENTION_CHAT": "maybe"})
    assert "MENTION_CHAT" in str(info.value)
