"""Plain values the stores return: no ORM object leaves bot.storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Per-session overrides; None means "use the bot's default"."""

    model: str | None = None
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None
    preset: str | None = None
    keep_alive: str | None = None
    tools: tuple[str, ...] | None = None  # None: the default tools
    knowledge: bool | None = None  # None: on where the server has a knowledge base
    knowledge_passages: int | None = None
    member_notes: bool | None = None  # a server's opt-in to members' notes
    summary: str | None = None  # the running summary of turns past the history window
    persona: str | None = None  # the server's persona (by name) a channel answers as
    threads: bool | None = None  # a channel's questions are answered in threads of their own


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    settings: SessionSettings
    created_at: datetime
    updated_at: datetime
    message_count: int
