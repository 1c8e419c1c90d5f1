"""Typed values the core returns: no discord, no ollama types leak past this module's users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

NANOSECONDS = 1_000_000_000


@dataclass(slots=True)
class GenerationConfig:
    """Sampling options sent to Ollama as ``options``; None leaves the model's own default.

    Only options someone chose are sent: every model ships its own tuned parameters
    (`/api/show` lists them), which a value sent "by default" would silently override.
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_predict: int | None = None
    stop: list[str] = field(default_factory=list)
    repeat_penalty: float | None = None
    seed: int | None = None
    num_ctx: int | None = None

    def to_options(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}

    def merged(self, overrides: Mapping[str, Any]) -> GenerationConfig:
        """A copy with the known, non-None keys of ``overrides`` applied."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(slots=True)
class OllamaQueryResult:
    content: str
    model: str
    done: bool
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    done_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    fallback_from: str | None = None
    thinking: str = ""
    tools_used: list[str] = field(default_factory=list)  # names, in the order they ran
    tools_unavailable: bool = False  # tools were offered, but this model cannot call them
    tools_without_room: bool = False  # tools were offered, but left no room in the window
    vision_from: str | None = None  # the model asked for, which could not see the images
    parsed: Any = None  # a structured answer (format json or a schema), parsed

    @property
    def tokens_per_second(self) -> float | None:
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / (self.eval_duration / NANOSECONDS)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    size: int
    modified_at: datetime | None
    digest: str
    family: str | None
    parameter_size: str | None
    quantization_level: str | None

    @property
    def size_gb(self) -> float:
        # Decimal gigabytes, as `ollama list` shows them (and as pull progress counts MB).
        return self.size / 1e9


@dataclass(frozen=True, slots=True)
class ModelDetails:
    name: str
    family: str | None
    parameter_size: str | None
    quantization_level: str | None
    context_length: int | None
    capabilities: tuple[str, ...]
    parameters: str | None
    license: str | None


@dataclass(frozen=True, slots=True)
class PullProgress:
    status: str
    completed: int | None = None
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total or self.completed is None:
            return None
        return min(1.0, self.completed / self.total)


@dataclass(frozen=True, slots=True)
class HealthStatus:
    ok: bool
    latency_ms: float | None
    version: str | None = None
    error: str | None = None


class Scope(StrEnum):
    """Whether a channel shares one conversation or keeps one per member."""

    CHANNEL = "channel"
    USER = "user"


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """The conversation a question goes to and the settings it is asked with."""

    session_id: str
    scope: Scope
    model: str | None
    system_prompt: str | None
    options: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None  # the channel's preset; its options give way to ``options``
    keep_alive: str | None = None
    tools: tuple[str, ...] | None = None  # the tools allowed here; None: the default ones
    # The server's knowledge base ("guild:<id>"; None in direct messages), whether questions
    # here search it (channel over server; on unless switched off, and a server without
    # documents costs nothing), how many passages (None: KNOWLEDGE_PASSAGES), and the
    # channel asked in (documents can be limited to channels).
    knowledge_scope: str | None = None
    knowledge: bool = False
    knowledge_passages: int | None = None
    channel_id: int | None = None
    # The member asking and the scope of their notes ("guild:<id>", or "dm"), for the
    # remember tool and the notes sent with their questions; ``member_notes``: whether that
    # scope's server has opted in (members' notes are off by default).
    member_id: int | None = None
    member_scope: str | None = None
    member_notes: bool = False
    persona: str | None = None  # the persona answering (its settings are in the fields above)
