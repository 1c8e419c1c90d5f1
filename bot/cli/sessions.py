"""`ollacord sessions list|show|set|export|delete`: the conversations the bot (and `chat`)
stored, and the settings each keeps."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from bot.cli.context import SessionNotFoundError, UsageError, open_manager
from bot.cli.database import redact_url, require_database
from bot.cli.options import chosen_options
from bot.cli.output import Console, local_time, table
from bot.core.config import Settings
from bot.core.types import GenerationConfig
from bot.presentation.export import document_text, markdown_transcript, session_document
from bot.storage import SessionRecord, SessionSettings

log = logging.getLogger(__name__)


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
        document = session_document(
            record,
            messages,
            max_length=settings.max_history_messages,
            max_tokens=settings.max_history_tokens,
        )
        console.out(document_text(document))
    else:
        console.write(markdown_transcript(record, messages, time_text=local_time))
    return 0


async def delete_session(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        record = await manager.store.get(args.session_id)
        if record is None or not await manager.delete_session(args.session_id):
            raise SessionNotFoundError(args.session_id)
    console.out(f"deleted session {record.id} ({record.message_count} messages)")
    return 0


async def show_session(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    require_database(settings)
    async with open_manager(settings, persistent=True) as manager:
        record = await manager.store.get(args.session_id)
    if record is None:
        raise SessionNotFoundError(args.session_id)
    console.out(settings_text(record.settings, settings, record))
    return 0


async def set_session(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    changes = setting_changes(args)
    async with open_manager(settings, persistent=True) as manager:
        record = await manager.store.get(args.session_id)
        if "options" in changes:
            kept = {} if args.clear_options or record is None else dict(record.settings.options)
            for name in changes.pop("unset_options"):
                kept.pop(name, None)
            changes["options"] = {**kept, **chosen_options(args)}
        new = await manager.update_session_settings(args.session_id, **changes)
    console.out(f"{'updated' if record else 'created'} session {args.session_id}")
    console.out(settings_text(new, settings))
    return 0


def setting_changes(args: argparse.Namespace) -> dict[str, Any]:
    """What `sessions set` changes, as update_session_settings() keywords (None: the default).

    "options" stands for "recompute the options"; "unset_options" lists those to drop.
    """
    known = {"model", "system", *GenerationConfig.field_names()}
    unset = {name.replace("-", "_") for name in args.unset}
    if unknown := sorted(unset - known):
        raise UsageError(
            f"argument --unset: unknown setting {', '.join(unknown)} "
            f"(one of: {', '.join(sorted(known))})"
        )
    changes: dict[str, Any] = {}
    if args.model is not None or "model" in unset:
        changes["model"] = args.model
    if args.system is not None or "system" in unset:
        changes["system_prompt"] = args.system
    unset_options = sorted(unset - {"model", "system"})
    if args.clear_options or unset_options or chosen_options(args):
        changes["options"] = None
        changes["unset_options"] = unset_options
    if not changes:
        raise UsageError("nothing to change: give --model, --system, an option, or --unset")
    return changes


def settings_text(
    chosen: SessionSettings, settings: Settings, record: SessionRecord | None = None
) -> str:
    """A session's settings, one per line; what is unset says which default applies."""
    order = GenerationConfig.field_names()
    options = sorted(
        chosen.options.items(), key=lambda o: order.index(o[0]) if o[0] in order else 99
    )
    fields: list[tuple[str, str]] = []
    if record is not None:
        fields += [
            ("session", record.id),
            ("created", local_time(record.created_at)),
            ("updated", local_time(record.updated_at)),
            ("messages", str(record.message_count)),
        ]
    fields += [
        ("model", chosen.model or f"- (DEFAULT_MODEL: {settings.default_model})"),
        ("system prompt", _system_text(chosen.system_prompt, settings.system_prompt)),
        ("options", ", ".join(f"{k}={json.dumps(v)}" for k, v in options) or "- (the model's own)"),
    ]
    width = max(len(label) for label, _ in fields) + 1
    return "\n".join(f"{label + ':':<{width}} {value}" for label, value in fields)


def _system_text(prompt: str | None, default: str | None) -> str:
    if prompt:
        return prompt
    return "- (SYSTEM_PROMPT)" if default else "- (none)"
