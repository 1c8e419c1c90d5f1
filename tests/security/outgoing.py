"""What the bot sent to the Discord emulator, read back from its REST log: every message it
created or edited (in a channel, as an interaction response, as a follow-up or through a
webhook) with the allowed_mentions it carried, and every thread name it chose.

Discord resolves mentions in a message from its content unless ``allowed_mentions`` says
otherwise, and does not keep ``allowed_mentions`` across edits: an edit without it parses
the content again. So each payload must carry a setting that pings nobody, not only the
first one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.emulators.discord_server import DiscordEmulator

# Interaction callbacks that carry a message (4: a reply, 7: an update of the component's).
MESSAGE_CALLBACKS = (4, 7)
THREAD_ROUTES = (
    "/channels/{channel_id}/threads",
    "/channels/{channel_id}/messages/{message_id}/threads",
    "/channels/{channel_id}",  # a rename
)
# What Discord parses as a mention (the emulator's own patterns, discord_messages.py).
MENTION_SYNTAX = re.compile(r"<@[!&]?\d+>|@(?:everyone|here)\b")


@dataclass(frozen=True, slots=True)
class Sent:
    method: str
    route: str
    payload: dict[str, Any]


def _succeeded(status: int) -> bool:
    return 200 <= status < 300


def sent_messages(discord: DiscordEmulator, since: int = 0) -> list[Sent]:
    """Every message payload the bot sent that Discord accepted (from REST call ``since``)."""
    found: list[Sent] = []
    for call in discord.calls[since:]:
        if call.method not in ("POST", "PATCH") or not isinstance(call.json, dict):
            continue
        if not _succeeded(call.status) or call.route in THREAD_ROUTES:
            continue
        payload: Any = call.json
        if call.route.endswith("/callback"):
            if call.json.get("type") not in MESSAGE_CALLBACKS:
                continue
            payload = call.json.get("data") or {}
        elif "/messages" not in call.route and not call.route.startswith("/webhooks/"):
            continue
        found.append(Sent(call.method, call.route, payload))
    return found


def thread_names(discord: DiscordEmulator, since: int = 0) -> list[str]:
    """Every thread name the bot asked for, at creation or in a rename."""
    return [
        str(call.json["name"])
        for call in discord.calls[since:]
        if call.route in THREAD_ROUTES
        and call.method in ("POST", "PATCH")
        and isinstance(call.json, dict)
        and "name" in call.json
    ]


def ping_risks(sent: Sent) -> list[str]:
    """Why this payload could ping someone; empty when it cannot."""
    allowed = sent.payload.get("allowed_mentions")
    if not isinstance(allowed, dict):
        return [f"{sent.method} {sent.route}: no allowed_mentions ({sorted(sent.payload)})"]
    risks = []
    if allowed.get("parse"):
        risks.append(f"{sent.method} {sent.route}: parse {allowed['parse']}")
    if allowed.get("users") or allowed.get("roles"):
        risks.append(f"{sent.method} {sent.route}: explicit ids {allowed}")
    if allowed.get("replied_user"):
        risks.append(f"{sent.method} {sent.route}: pings the replied-to author")
    return risks


def all_ping_risks(discord: DiscordEmulator, since: int = 0) -> list[str]:
    return [risk for sent in sent_messages(discord, since) for risk in ping_risks(sent)]
