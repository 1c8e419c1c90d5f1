"""`ollacord sessions list|export|delete`: the conversations the bot (and `chat`) stored."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from bot.cli.context import SessionNotFoundError, open_manager
from bot.cli.database import redact_url, require_database
from bot.cli.output import Console, local_time, table
from bot.config import Settings
from bot.history import ChatMessage
from bot.storage import SessionRecord

log = logging.getLogger(__name__)

ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


async def list_sessions(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        records = await manager.store.list(limit=args.limit)
    if not records:
        console.note(f"no sessions in {redact_url(settings.database_url)}")
        return 0
    rows = [[r.id, str(r.message_count), local_time(r.updated_at)] for r in records]
    console.out(table(["ID", "MESSAGES", "UPDATED"], rows))
    return 0


async def export_session(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        record = await manager.store.get(args.session_id)
        if record is None:
            raise SessionNotFoundError(args.session_id)
        # Every message, not the history window get_session() would cut to.
        messages = await manager.store.messages(args.session_id)
    if args.format == "json":
        document = session_document(record, messages, settings)
        console.out(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        console.write(markdown_transcript(record, messages))
    return 0


async def delete_session(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        record = await manager.store.get(args.session_id)
        if record is None or not await manager.delete_session(args.session_id):
            raise SessionNotFoundError(args.session_id)
    console.out(f"deleted session {record.id} ({record.message_count} messages)")
    return 0


def session_document(
    record: SessionRecord, messages: list[ChatMessage], settings: Settings
) -> dict[str, Any]:
    """ConversationHistory.to_dict()'s shape (so from_dict() reads it), plus the settings."""
    return {
        "session_id": record.id,
        "max_length": settings.max_history_messages,
        "max_tokens": settings.max_history_tokens,
        "system_prompt": record.settings.system_prompt,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "model": record.settings.model,
        "options": record.settings.options,
        "scope": record.settings.scope,
        "messages": [dict(m) for m in messages],
    }


def markdown_transcript(record: SessionRecord, messages: list[ChatMessage]) -> str:
    lines = [
        f"# Session {record.id}",
        "",
        f"- created: {local_time(record.created_at)}",
        f"- updated: {local_time(record.updated_at)}",
        f"- messages: {len(messages)}",
    ]
    if record.settings.model:
        lines.append(f"- model: {record.settings.model}")
    if record.settings.system_prompt:
        lines += ["", "## System", "", record.settings.system_prompt]
    for message in messages:
        role = message.get("role", "user")
        lines += ["", f"## {ROLE_HEADINGS.get(role, role.title())}", ""]
        if message.get("content"):
            lines.append(message["content"])
        if message.get("tool_calls"):
            lines += ["```json", json.dumps(message["tool_calls"], ensure_ascii=False), "```"]
    return "\n".join(lines) + "\n"
