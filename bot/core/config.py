"""Settings read from the environment and ``.env``, validated all at once."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.core.errors import ConfigError
from bot.core.hosts.spec import HostSpec, parse_hosts, parse_url, shown_url
from bot.core.sharding import parse_shard_count, parse_shard_ids, shard_problems

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/ollacord.db"
# How long a stop (SIGTERM, SIGINT) waits for answers in flight; the manager's default too.
DEFAULT_SHUTDOWN_GRACE = 60.0
# The context window asked of Ollama when a channel chose none. Twice Ollama's own default
# (4096), so a conversation keeps some history and a summary works on ~18k characters at a
# time, yet small enough for small GPUs: the KV cache of a 3B model at 8192 tokens takes
# about 0.9 GB, of an 8B model about 1 GB (f16), on top of the weights.
DEFAULT_NUM_CTX = 8192
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot, the CLI and the request manager are configured with."""

    discord_token: str | None = field(default=None, repr=False)
    ollama_host: str = DEFAULT_OLLAMA_HOST
    # Several servers; when set, OLLAMA_HOST is not used (see the ``hosts`` property).
    ollama_hosts: tuple[HostSpec, ...] = ()
    default_model: str = "llama3.2"
    fallback_models: tuple[str, ...] = ()
    database_url: str = DEFAULT_DATABASE_URL
    system_prompt: str | None = None
    max_history_messages: int = 50
    max_history_tokens: int | None = None
    default_num_ctx: int = DEFAULT_NUM_CTX
    request_timeout: float = 300.0
    first_token_timeout: float = 120.0
    stream_idle_timeout: float = 60.0
    max_retries: int = 3
    retry_backoff: float = 1.0
    keep_alive: str = "5m"
    max_concurrent_requests: int = 4
    # Questions one member may have waiting or being answered at once; 0: no cap.
    max_queued_per_member: int = 3
    log_level: str = "INFO"
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    dev_guild_id: int | None = None
    mention_chat: bool = False
    message_content_intent: bool = False
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    admin_token: str | None = field(default=None, repr=False)
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE
    vision_model: str | None = None
    max_tool_rounds: int = 4
    tool_timeout: float = 30.0
    mcp_config: str | None = None
    embedding_model: str = "nomic-embed-text"
    knowledge_passages: int = 4
    knowledge_min_score: float = 0.5
    summary_model: str | None = None
    conversation_memory: bool = True
    # Discord's sharding (see ``shards``): None for one unsharded connection.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Values that must never appear in logs."""
        return (self.discord_token, self.admin_token)

    @property
    def hosts(self) -> tuple[HostSpec, ...]:
        """The Ollama servers the bot asks: OLLAMA_HOSTS when set, else OLLAMA_HOST alone."""
        return self.ollama_hosts or (HostSpec(self.ollama_host),)

    @property
    def shards(self) -> tuple[int, ...]:
        """The shards this process connects: SHARD_IDS, else every shard of SHARD_COUNT;
        empty when the bot is not sharded."""
        if self.shard_count is None:
            return ()
        return self.shard_ids if self.shard_ids is not None else tuple(range(self.shard_count))

    @property
    def wants_message_content(self) -> bool:
        """Mention chat reads messages, so it needs the privileged intent too."""
        return self.mention_chat or self.message_content_intent

    def manager_options(self) -> dict[str, Any]:
        """The request manager's keyword arguments (OllamaRequestManager.from_settings)."""
        return {
            "host": self.ollama_host,
            "hosts": self.ollama_hosts,
            "default_model": self.default_model,
            "default_system_prompt": self.system_prompt,
            "max_history_length": self.max_history_messages,
            "max_history_tokens": self.max_history_tokens,
            "database_url": self.database_url,
            "fallback_models": self.fallback_models,
            "max_concurrent_requests": self.max_concurrent_requests,
            "request_timeout": self.request_timeout,
            "first_token_timeout": self.first_token_timeout,
            "stream_idle_timeout": self.stream_idle_timeout,
            "max_retries": self.max_retries,
            "retry_backoff": self.retry_backoff,
            "keep_alive": self.keep_alive,
            "default_num_ctx": self.default_num_ctx,
            "shutdown_grace": self.shutdown_grace_seconds,
            "vision_model": self.vision_model,
            "max_tool_rounds": self.max_tool_rounds,
            "tool_timeout": self.tool_timeout,
            "embedding_model": self.embedding_model,
            "knowledge_passages": self.knowledge_passages,
            "knowledge_min_score": self.knowledge_min_score,
            "summary_model": self.summary_model,
            "conversation_memory": self.conversation_memory,
        }

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        dotenv_path: str | Path | None = ".env",
        require_discord: bool = True,
    ) -> Settings:
        """Read settings: real environment variables win over ``.env`` values.

        Raises ConfigError naming every bad key, so an admin fixes them in one go.
        """
        merged: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from dotenv import dotenv_values  # only with a .env: the CLI starts faster without

            merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        merged.update(os.environ if env is None else env)
        return cls.from_mapping(merged, require_discord=require_discord)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], *, require_discord: bool = True) -> Settings:
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            key = f.name.upper()
            raw = env.get(key)
            if raw is None or raw.strip() == "":
                continue
            parser = _PARSERS.get(f.name, _str)
            try:
                values[f.name] = parser(raw.strip())
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
        problems.extend(shard_problems(values.get("shard_count"), values.get("shard_ids"), env))
        if require_discord and not values.get("discord_token"):
            problems.append("DISCORD_TOKEN: required to connect to Discord")
        if problems:
            raise ConfigError(problems)
        return cls(**values)


# The defaults as values, for code that takes them as parameters (the request manager, the
# conversation history): a manager built directly behaves like the bot's.
DEFAULTS = Settings()


def _str(raw: str) -> str:
    return raw


def _int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _float(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if value < minimum or (value == minimum and not inclusive) or value != value:
            bound = "at least" if inclusive else "greater than"
            raise ValueError(f"must be {bound} {minimum:g}, got {raw}")
        return value

    return parse


_positive_float = _float(0, inclusive=False)
_non_negative_float = _float(0, inclusive=True)


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw.startswith(tuple(f"{s}://" for s in schemes)):
            # Never the password of a URL in the message, which is logged.
            raise ValueError(f"expected a {'/'.join(schemes)} URL, got {shown_url(raw)!r}")
        return raw.rstrip("/")

    return parse


def _database_url(raw: str) -> str:
    if "+" not in raw.split("://", 1)[0] or "://" not in raw:
        raise ValueError(
            "expected an async SQLAlchemy URL such as sqlite+aiosqlite:///data/ollacord.db"
        )
    return raw


def _models(raw: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in raw.split(",") if m.strip())


def _port(raw: str) -> int:
    value = _int(0)(raw)
    if value > 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {value}")
    return value


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


_PARSERS: dict[str, Callable[[str], Any]] = {
    "ollama_host": parse_url,
    "ollama_hosts": parse_hosts,
    "fallback_models": _models,
    "database_url": _database_url,
    "max_history_messages": _int(1),
    "max_history_tokens": _int(1),
    "default_num_ctx": _int(256),
    "request_timeout": _positive_float,
    "first_token_timeout": _positive_float,
    "stream_idle_timeout": _positive_float,
    "max_retries": _int(0),
    "retry_backoff": _non_negative_float,
    "max_concurrent_requests": _int(1),
    "max_queued_per_member": _int(0),
    "log_level": _log_level,
    "discord_api_base": _url("http", "https"),
    "discord_gateway_url": _url("ws", "wss"),
    "dev_guild_id": _int(1),
    "http_port": _port,
    "mention_chat": _bool,
    "message_content_intent": _bool,
    "shutdown_grace_seconds": _non_negative_float,
    "max_tool_rounds": _int(1),
    "tool_timeout": _positive_float,
    "knowledge_passages": _int(1),
    "knowledge_min_score": _non_negative_float,
    "conversation_memory": _bool,
    "shard_count": parse_shard_count,
    "shard_ids": parse_shard_ids,
}
