"""Message bodies as Discord checks them: parsing (JSON or multipart), limits,
mention resolution, and applying a create or an edit to a stored message."""

from __future__ import annotations

import json
import mimetypes
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .discord_attachments import Attachment, Upload, store_upload
from .discord_state import (
    MESSAGE_FLAG_COMPONENTS_V2,
    MESSAGE_FLAG_LOADING,
    Channel,
    MentionSet,
    Message,
    Permission,
    Snapshot,
    component_texts,
    has_permission,
    iso_now,
    iter_components,
)
from .discord_world import World

ALL_PARSE = ("users", "roles", "everyone")
# Interactions (responses, follow-ups, their edits) only parse user mentions by default.
INTERACTION_PARSE = ("users",)

_USER_RE = re.compile(r"<@!?(\d+)>")
_ROLE_RE = re.compile(r"<@&(\d+)>")
_EVERYONE_RE = re.compile(r"@(?:everyone|here)\b")


class ApiError(Exception):
    """An error response with Discord's body shape."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors is not None:
            self.body["errors"] = errors


def form_error(errors: dict[str, Any]) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors)


@dataclass
class UploadedFile:
    field: str
    filename: str
    data: bytes
    content_type: str


@dataclass
class Body:
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)


async def read_body(request: web.Request) -> Body:
    ctype = request.headers.get("Content-Type", "")
    if ctype.startswith("multipart/form-data"):
        body = Body()
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            if part.name == "payload_json":
                body.json = _loads(await part.text())
            else:
                data = await part.read(decode=False)
                body.files.append(
                    UploadedFile(
                        field=part.name or "",
                        filename=part.filename or "file",
                        data=bytes(data),
                        content_type=part.headers.get("Content-Type", "application/octet-stream"),
                    )
                )
        return body
    raw = await request.read()
    if not raw:
        return Body()
    return Body(json=_loads(raw.decode()))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from exc


# ----- limits --------------------------------------------------------------


def _max_len(n: int) -> dict[str, Any]:
    return {
        "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {n} or fewer in length."}]
    }


def _required() -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}


def _embed_errors(embed: dict[str, Any]) -> tuple[dict[str, Any], int]:
    errors: dict[str, Any] = {}
    size = 0
    for key, limit in (("title", 256), ("description", 4096)):
        value = embed.get(key)
        if isinstance(value, str):
            size += len(value)
            if len(value) > limit:
                errors[key] = _max_len(limit)
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors["fields"] = _max_len(25)
    for i, fld in enumerate(fields):
        ferr: dict[str, Any] = {}
        for key, limit in (("name", 256), ("value", 1024)):
            value = fld.get(key)
            if not value:
                ferr[key] = _required()
            elif len(value) > limit:
                ferr[key] = _max_len(limit)
            size += len(value or "")
        if ferr:
            errors.setdefault("fields", {})[str(i)] = ferr
    for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
        obj = embed.get(key)
        if isinstance(obj, dict) and isinstance(obj.get(sub), str):
            size += len(obj[sub])
            if len(obj[sub]) > limit:
                errors[key] = {sub: _max_len(limit)}
    return errors, size


def validate_message_body(body: dict[str, Any]) -> None:
    errors: dict[str, Any] = {}
    content = body.get("content")
    if content is not None:
        if not isinstance(content, str):
            errors["content"] = {
                "_errors": [{"code": "BASE_TYPE_STRING", "message": "Must be a string."}]
            }
        elif len(content) > 2000:
            errors["content"] = _max_len(2000)
    embeds = body.get("embeds")
    if embeds is not None:
        if len(embeds) > 10:
            errors["embeds"] = _max_len(10)
        total = 0
        for i, embed in enumerate(embeds):
            eerr, size = _embed_errors(embed)
            total += size
            if eerr:
                errors.setdefault("embeds", {})[str(i)] = eerr
        if total > 6000:
            errors.setdefault("embeds", {}).setdefault("_errors", []).append(
                {
                    "code": "MAX_EMBED_SIZE_EXCEEDED",
                    "message": "Embed size exceeds maximum size of 6000",
                }
            )
    flags = body.get("flags") or 0
    components = body.get("components")
    if components is not None:
        cerr = _component_errors(components, v2=bool(flags & MESSAGE_FLAG_COMPONENTS_V2))
        if cerr:
            errors["components"] = cerr
    if flags & MESSAGE_FLAG_COMPONENTS_V2:
        for key in ("content", "embeds"):
            if body.get(key):
                errors[key] = {
                    "_errors": [
                        {
                            "code": "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                            "message": "The 'content' and 'embeds' fields cannot be used "
                            "when using "
                            "MessageFlags.IS_COMPONENTS_V2",
                        }
                    ]
                }
    allowed = body.get("allowed_mentions")
    if isinstance(allowed, dict):
        aerr = _allowed_mentions_errors(allowed)
        if aerr:
            errors["allowed_mentions"] = aerr
    if errors:
        raise form_error(errors)


def _component_errors(components: list[dict[str, Any]], *, v2: bool) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if not v2 and len(components) > 5:
        errors["_errors"] = _max_len(5)["_errors"]
    seen: set[str] = set()
    for i, row in enumerate(components):
        rerr: dict[str, Any] = {}
        if row.get("type") == 1 and len(row.get("components") or []) > 5:
            rerr["components"] = _max_len(5)
        for comp in iter_components([row]):
            cid = comp.get("custom_id")
            if isinstance(cid, str):
                if len(cid) > 100:
                    rerr["custom_id"] = _max_len(100)
                if cid in seen:
                    rerr["custom_id"] = {
                        "_errors": [
                            {
                                "code": "COMPONENT_CUSTOM_ID_DUPLICATED",
                                "message": "Component custom id cannot be duplicated",
                            }
                        ]
                    }
                seen.add(cid)
            label = comp.get("label")
            if comp.get("type") == 2 and isinstance(label, str) and len(label) > 80:
                rerr["label"] = _max_len(80)
        if rerr:
            errors[str(i)] = rerr
    return errors


def _allowed_mentions_errors(allowed: dict[str, Any]) -> dict[str, Any]:
    parse = allowed.get("parse") or []
    errors: dict[str, Any] = {}
    for key in ("users", "roles"):
        ids = allowed.get(key) or []
        if key in parse and ids:
            errors.setdefault("_errors", []).append(
                {
                    "code": "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    "message": f'parse:["{key}"] and {key}: [ids...] are mutually exclusive.',
                }
            )
        if len(ids) > 100:
            errors[key] = _max_len(100)
    bad = [p for p in parse if p not in ALL_PARSE]
    if bad:
        errors["parse"] = {
            "_errors": [
                {"code": "BASE_TYPE_CHOICES", "message": f"Value must be one of {ALL_PARSE}."}
            ]
        }
    return errors


# ----- mentions --------------------------------------------------------------


def resolve_mentions(
    world: World,
    *,
    text: str,
    allowed: dict[str, Any] | None,
    default_parse: tuple[str, ...],
    channel: Channel,
    can_mention_everyone: bool,
    replied_author: int | None,
) -> MentionSet:
    if allowed is None:
        parse: set[str] = set(default_parse)
        allowed_users: set[int] = set()
        allowed_roles: set[int] = set()
        replied_user = True  # replies ping their target unless allowed_mentions says otherwise
    else:
        parse = set(allowed.get("parse") or [])
        allowed_users = {int(u) for u in allowed.get("users") or []}
        allowed_roles = {int(r) for r in allowed.get("roles") or []}
        replied_user = bool(allowed.get("replied_user", False))
    users: set[int] = set()
    for match in _USER_RE.finditer(text):
        uid = int(match.group(1))
        if uid in world.users and ("users" in parse or uid in allowed_users):
            users.add(uid)
    roles: set[int] = set()
    guild = world.guilds.get(channel.guild_id) if channel.guild_id else None
    if guild is not None:
        for match in _ROLE_RE.finditer(text):
            rid = int(match.group(1))
            role = world.roles.get(rid)
            if role is None or role.guild_id != guild.id:
                continue
            if ("roles" in parse or rid in allowed_roles) and (
                role.mentionable or can_mention_everyone
            ):
                roles.add(rid)
    everyone = bool(
        guild is not None
        and "everyone" in parse
        and can_mention_everyone
        and _EVERYONE_RE.search(text)
    )
    if replied_author is not None and replied_user:
        users.add(replied_author)
    return MentionSet(users=frozenset(users), roles=frozenset(roles), everyone=everyone)


def author_can_mention_everyone(world: World, channel: Channel, author_id: int) -> bool:
    if channel.guild_id is None:
        return False
    if author_id == world.bot_user.id:
        perms = world.bot_permissions(channel)
    else:
        guild = world.guilds[channel.guild_id]
        perms = world.member_permissions(guild.id, author_id) if author_id in guild.members else 0
    return has_permission(perms, Permission.MENTION_EVERYONE)


# ----- create / edit ---------------------------------------------------------


def _files_to_attachments(
    world: World, channel_id: int, files: list[UploadedFile], entries: list[dict[str, Any]]
) -> dict[int, Attachment]:
    """New attachments keyed by their upload index (files[n])."""
    out: dict[int, Attachment] = {}
    for upload in files:
        match = re.fullmatch(r"files\[(\d+)\]", upload.field) or re.fullmatch(
            r"file(\d*)", upload.field
        )
        index = int(match.group(1) or 0) if match else len(out)
        entry = next((e for e in entries if str(e.get("id")) == str(index)), {})
        filename = entry.get("filename") or upload.filename
        ctype = mimetypes.guess_type(filename)[0] or upload.content_type
        spec = Upload(
            filename, upload.data, content_type=ctype, description=entry.get("description")
        )
        out[index] = store_upload(world, spec, folder=f"attachments/{channel_id}", ephemeral=False)
    return out


def _is_empty(msg: Message) -> bool:
    return not (msg.content or msg.embeds or msg.components or msg.attachments)


def _record_version(
    world: World, msg: Message, *, default_parse: tuple[str, ...], notify: bool
) -> None:
    channel = world.channels[msg.channel_id]
    replied = None
    if msg.reference is not None:
        ref = world.messages.get(int(msg.reference.get("message_id") or 0))
        replied = ref.author_id if ref is not None else None
    mentions = resolve_mentions(
        world,
        text=msg.content + "\n" + "\n".join(component_texts(msg.components)),
        allowed=msg.allowed_mentions,
        default_parse=default_parse,
        channel=channel,
        can_mention_everyone=author_can_mention_everyone(world, channel, msg.author_id),
        replied_author=replied,
    )
    msg.mentions = mentions
    msg.mention_history.append(mentions)
    if notify:
        msg.notified = mentions
    now = time.monotonic()
    msg.edits.append((now, msg.content))
    msg.snapshots.append(
        Snapshot(
            at=now,
            content=msg.content,
            embeds=list(msg.embeds),
            components=list(msg.components),
            flags=msg.flags,
        )
    )
    world.notifier.notify()


def create_message(
    world: World,
    channel: Channel,
    author_id: int,
    body: Body,
    *,
    default_parse: tuple[str, ...],
    msg_type: int = 0,
    webhook_id: int | None = None,
    interaction_id: int | None = None,
    extra_flags: int = 0,
    allow_empty: bool = False,
) -> Message:
    payload = body.json if isinstance(body.json, dict) else {}
    validate_message_body(payload)
    reference = payload.get("message_reference")
    if reference is not None:
        ref_id = int(reference.get("message_id") or 0)
        ref = world.messages.get(ref_id)
        if (ref is None or ref.deleted or ref.channel_id != channel.id) and reference.get(
            "fail_if_not_exists", True
        ):
            raise form_error(
                {
                    "message_reference": {
                        "_errors": [
                            {
                                "code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                "message": "Unknown message",
                            }
                        ]
                    }
                }
            )
        reference = {
            "type": 0,
            "message_id": str(ref_id),
            "channel_id": str(channel.id),
            **({"guild_id": str(channel.guild_id)} if channel.guild_id else {}),
        }
        msg_type = 19 if msg_type == 0 else msg_type
    msg = Message(
        id=world.ids.next(),
        channel_id=channel.id,
        guild_id=channel.guild_id,
        author_id=author_id,
        content=payload.get("content") or "",
        embeds=list(payload.get("embeds") or []),
        components=list(payload.get("components") or []),
        flags=(int(payload.get("flags") or 0) | extra_flags),
        allowed_mentions=payload.get("allowed_mentions"),
        type=msg_type,
        webhook_id=webhook_id,
        application_id=world.application_id if webhook_id is not None else None,
        interaction_id=interaction_id,
        reference=reference,
        tts=bool(payload.get("tts", False)),
        nonce=payload.get("nonce"),
    )
    entries = payload.get("attachments") or []
    msg.attachments = list(_files_to_attachments(world, channel.id, body.files, entries).values())
    if (
        not allow_empty
        and _is_empty(msg)
        and not payload.get("sticker_ids")
        and not payload.get("poll")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")
    world.store_message(msg)
    _record_version(world, msg, default_parse=default_parse, notify=not msg.loading)
    return msg


def edit_message(
    world: World, msg: Message, body: Body, *, default_parse: tuple[str, ...]
) -> Message:
    payload = body.json if isinstance(body.json, dict) else {}
    validate_message_body(payload)
    content = msg.content
    if "content" in payload:
        content = payload["content"] or ""
    embeds = list(payload["embeds"] or []) if "embeds" in payload else msg.embeds
    components = list(payload["components"] or []) if "components" in payload else msg.components
    attachments = list(msg.attachments)
    new = _files_to_attachments(world, msg.channel_id, body.files, payload.get("attachments") or [])
    if "attachments" in payload:
        kept: list[Attachment] = []
        for entry in payload["attachments"] or []:
            key = str(entry.get("id"))
            existing = next((a for a in msg.attachments if str(a.id) == key), None)
            if existing is not None:
                kept.append(existing)
            elif key.isdigit() and int(key) in new:
                kept.append(new.pop(int(key)))
        attachments = kept + list(new.values())
    else:
        attachments += list(new.values())
    candidate = Message(
        id=msg.id,
        channel_id=msg.channel_id,
        guild_id=msg.guild_id,
        author_id=msg.author_id,
        content=content,
        embeds=embeds,
        components=components,
        attachments=attachments,
    )
    if _is_empty(candidate):
        raise ApiError(400, 50006, "Cannot send an empty message")
    was_loading = msg.loading
    msg.content, msg.embeds, msg.components, msg.attachments = (
        content,
        embeds,
        components,
        attachments,
    )
    if "flags" in payload and payload["flags"] is not None:
        # Only presentation flags may change; ephemerality is fixed at creation.
        keep = msg.flags & (1 << 6 | MESSAGE_FLAG_COMPONENTS_V2)
        msg.flags = keep | (int(payload["flags"]) & ~(1 << 6))
    msg.flags &= ~MESSAGE_FLAG_LOADING
    # Discord does not persist allowed_mentions: an edit without it parses afresh.
    msg.allowed_mentions = payload.get("allowed_mentions")
    msg.edited_timestamp = None if was_loading else iso_now()
    _record_version(world, msg, default_parse=default_parse, notify=was_loading)
    return msg
