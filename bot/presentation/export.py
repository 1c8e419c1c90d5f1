"""A stored conversation as a file: a readable Markdown transcript or a JSON document.

Both front ends render through here: `ollacord sessions export` prints the whole thing,
`/session export` attaches it, with images left out and cut to Discord's file limit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.core.history import ChatMessage

ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


class ExportedSettings(Protocol):
    """What an export reads of a session's settings (storage's SessionSettings has it)."""

    @property
    def model(self) -> str | None: ...
    @property
    def system_prompt(self) -> str | None: ...
    @property
    def options(self) -> Mapping[str, Any]: ...
    @property
    def scope(self) -> str | None: ...


class ExportedSession(Protocol):
    """What an export reads of a stored session (storage's SessionRecord has it)."""

    @property
    def id(self) -> str: ...
    @property
    def settings(self) -> ExportedSettings: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True)
class Omitted:
    """What a file export left out: the oldest messages (to fit a size) and every image."""

    messages: int = 0
    images: int = 0


def session_document(
    record: ExportedSession,
    messages: Sequence[ChatMessage],
    *,
    max_length: int | None,
    max_tokens: int | None,
    model: str | None = None,
    omitted: Omitted | None = None,
) -> dict[str, Any]:
    """ConversationHistory.to_dict()'s shape (so from_dict() reads it), plus the settings.

    ``model`` replaces the session's own (None when it follows the defaults); with
    ``omitted``, images are counted instead of embedded and the document says what is missing.
    """
    document: dict[str, Any] = {
        "session_id": record.id,
        "max_length": max_length,
        "max_tokens": max_tokens,
        "system_prompt": record.settings.system_prompt,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "model": model or record.settings.model,
        "options": record.settings.options,
        "scope": record.settings.scope,
        "messages": [_exported(m, embed_images=omitted is None) for m in messages],
    }
    if omitted is not None:
        document["omitted_messages"] = omitted.messages
        document["omitted_images"] = omitted.images
    return document


def document_text(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


def _exported(message: ChatMessage, *, embed_images: bool) -> dict[str, Any]:
    """A message as JSON takes it: images as base64, as Ollama's API writes them (or only
    their number, where the file must stay small)."""
    exported: dict[str, Any] = dict(message)
    if "images" in exported:
        images = exported.pop("images")
        if embed_images:
            exported["images"] = [
                i if isinstance(i, str) else base64.b64encode(i).decode("ascii") for i in images
            ]
        else:
            exported["image_count"] = len(images)
    return exported


def markdown_transcript(
    record: ExportedSession,
    messages: Sequence[ChatMessage],
    *,
    time_text: Callable[[datetime], str],
    model: str | None = None,
    omitted: Omitted | None = None,
) -> str:
    """``time_text`` writes a time as the reader expects it (the CLI: the machine's local
    time; Discord: UTC, since members live anywhere)."""
    lines = [
        f"# Session {record.id}",
        "",
        f"- created: {time_text(record.created_at)}",
        f"- updated: {time_text(record.updated_at)}",
        f"- messages: {len(messages)}",
    ]
    if model := model or record.settings.model:
        lines.append(f"- model: {model}")
    if omitted is not None and omitted.messages:
        lines.append(f"- left out: the {omitted.messages} oldest messages (the file size limit)")
    if omitted is not None and omitted.images:
        lines.append(f"- images left out: {omitted.images}")
    if record.settings.system_prompt:
        lines += ["", "## System", "", record.settings.system_prompt]
    for message in messages:
        role = message.get("role", "user")
        lines += ["", f"## {ROLE_HEADINGS.get(role, role.title())}", ""]
        if message.get("content"):
            lines.append(message["content"])
        if message.get("tool_calls"):
            lines += ["```json", json.dumps(message["tool_calls"], ensure_ascii=False), "```"]
        if omitted is not None and message.get("images"):
            lines.append(f"*({_images(len(message['images']))} left out)*")
    return "\n".join(lines) + "\n"


def _images(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def image_count(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.get("images") or ()) for m in messages)


def fitted(
    messages: Sequence[ChatMessage],
    render: Callable[[Sequence[ChatMessage], int], bytes],
    limit: int,
) -> tuple[bytes, int] | None:
    """The rendering of the newest messages that fits in ``limit`` bytes, and how many of the
    oldest were left out; it starts at a member's question where one is kept. None when not
    even the newest message fits.

    ``render(kept, left_out)`` renders the kept messages (saying how many were left out).
    """
    whole = render(messages, 0)
    if len(whole) <= limit:
        return whole, 0
    # Binary search for the fewest messages to leave out: a rendering only shrinks as the
    # oldest go, and each try renders the whole file once.
    low, high = 1, len(messages)
    best: tuple[bytes, int] | None = None
    while low <= high:
        middle = (low + high) // 2
        cut = _turn_start(messages, middle)
        text = render(messages[cut:], cut) if cut < len(messages) else b""
        if text and len(text) <= limit:
            best, high = (text, cut), middle - 1
        else:
            low = middle + 1
    return best


def _turn_start(messages: Sequence[ChatMessage], index: int) -> int:
    """``index``, moved on to the next member's question (the whole turn goes), if any."""
    for position in range(index, len(messages)):
        if messages[position].get("role") == "user":
            return position
    return index
