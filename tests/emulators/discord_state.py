"""World state of the Discord emulator: ids, permissions and the records tests inspect."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .discord_attachments import Attachment

if TYPE_CHECKING:
    from .discord_threads import ThreadMeta

DISCORD_EPOCH_MS = 1_420_070_400_000
TIMESTAMP_SHIFT = 22  # a snowflake's bits below its creation time


class Permission(enum.IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38


ALL_PERMISSIONS = 0
for _p in Permission:
    ALL_PERMISSIONS |= _p.value

# What a fresh server grants @everyone (minus voice extras we never model).
DEFAULT_PERMISSIONS = int(
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.CREATE_PRIVATE_THREADS
    | Permission.SEND_MESSAGES_IN_THREADS
)
# The bot gets MENTION_EVERYONE so that a leaked "@everyone" really would ping:
# tests of mention safety must fail in the worst case, not pass by luck.
BOT_PERMISSIONS = DEFAULT_PERMISSIONS | int(Permission.MENTION_EVERYONE)

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
MESSAGE_FLAG_COMPONENTS_V2 = 1 << 15

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT


def has_permission(granted: int, needed: int) -> bool:
    if granted & Permission.ADMINISTRATOR:
        return True
    return granted & needed == needed


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's formula: the shard whose session gets a guild's events (DMs: shard 0)."""
    return (guild_id >> TIMESTAMP_SHIFT) % shard_count


class SnowflakeGenerator:
    """Ids that encode the creation time, so discord.py's ``created_at`` and its
    delete sub-limits (which look at message age) behave as with real ids."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << TIMESTAMP_SHIFT) | (1 << 17) | (1 << 12)
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate

    def next_on_shard(self, shard_id: int, shard_count: int) -> int:
        """An id that lands on shard ``shard_id`` of ``shard_count`` (for guilds): the shard
        formula reads the timestamp, so the timestamp moves up to the next fitting
        millisecond, as a guild created a moment later would have."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"no shard {shard_id} among {shard_count}")
        candidate = self.next()
        ahead = (shard_id - shard_of(candidate, shard_count)) % shard_count
        if ahead:
            ms = (candidate >> TIMESTAMP_SHIFT) + ahead
            candidate = (ms << TIMESTAMP_SHIFT) | (1 << 17) | (1 << 12)
            self._last = candidate
        return candidate


class Notifier:
    """Wakes every waiter whenever the world changes, so tests wait on conditions
    instead of sleeping."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.last_change = time.monotonic()

    def notify(self) -> None:
        self.last_change = time.monotonic()
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            event = self._event
            # Short waits too: predicates may also look at the bot's own state,
            # which changes without notifying us.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))


@dataclass
class User:
    id: int
    name: str
    bot: bool = False
    global_name: str | None = None


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None


@dataclass
class Member:
    guild_id: int
    user_id: int
    permissions: int
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)
    nick: str | None = None


@dataclass
class Channel:
    id: int
    guild_id: int | None
    name: str
    type: int = 0
    position: int = 0
    topic: str | None = None
    recipient_id: int | None = None
    # Effective permissions of the bot here when a test narrowed them.
    bot_permissions: int | None = None
    message_ids: list[int] = field(default_factory=list)
    thread: ThreadMeta | None = None  # set on threads (see discord_threads)


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    role_ids: list[int] = field(default_factory=list)
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)


@dataclass(frozen=True)
class MentionSet:
    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.roles or self.everyone)


@dataclass
class Snapshot:
    at: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    flags: int


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: dict[str, Any] | None = None
    attachments: list[Attachment] = field(default_factory=list)
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    reference: dict[str, Any] | None = None
    tts: bool = False
    nonce: str | None = None
    created_at: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    deleted: bool = False
    reactions: list[str] = field(default_factory=list)
    # (time.monotonic(), content) for the creation and after every edit.
    edits: list[tuple[float, str]] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    # Who the current version mentions (Discord's `mentions` field) and every
    # version's resolution, since an edit re-parses mentions and highlights them.
    mentions: MentionSet = field(default_factory=MentionSet)
    mention_history: list[MentionSet] = field(default_factory=list)
    # Who got a notification: only the creation (or the first real content of a
    # deferred reply) notifies; later edits only highlight.
    notified: MentionSet = field(default_factory=MentionSet)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    @property
    def pinged(self) -> bool:
        """True if any version of this message mentioned a user, role or everyone."""
        return any(self.mention_history)

    @property
    def text(self) -> str:
        """Content plus the text of components-v2 text displays."""
        parts = [self.content, *component_texts(self.components)]
        return "\n".join(p for p in parts if p)


def component_texts(components: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for comp in components:
        if comp.get("type") == 10 and isinstance(comp.get("content"), str):
            out.append(comp["content"])
        for key in ("components",):
            out.extend(component_texts(comp.get(key) or []))
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, dict):
                out.extend(component_texts([child]))
    return out


def iter_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every component in a tree (action rows, sections, containers, labels)."""
    out: list[dict[str, Any]] = []
    for comp in components:
        out.append(comp)
        out.extend(iter_components(comp.get("components") or []))
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, dict):
                out.extend(iter_components([child]))
    return out


@dataclass
class RecordedCall:
    at: float
    method: str
    path: str
    route: str
    query: dict[str, str]
    json: Any
    files: list[tuple[str, str, int]]
    status: int
    headers: dict[str, str]
    response: Any
    bucket: str | None = None

    @property
    def time(self) -> float:
        """Alias of ``at`` (time.monotonic() when the request arrived)."""
        return self.at


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    guild_id: int | None
    payload: dict[str, Any]
    dispatched_at: float
    notifier: Notifier = field(repr=False)
    name: str | None = None
    custom_id: str | None = None
    message_id: int | None = None  # the message a component sits on
    acked_at: float | None = None
    ack_type: int | None = None
    ephemeral: bool = False
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    autocomplete_choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    # Error bodies Discord returned to the bot for this interaction.
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    def _default_done(self) -> bool:
        if self.ack_type is None:
            return False
        if self.ack_type in (5, 6):
            # A deferral is only "done" once something visible followed it.
            orig_edited = self.original is not None and len(self.original.edits) > 1
            return orig_edited or bool(self.followups)
        return True

    async def wait_done(
        self,
        predicate: Callable[[InteractionRecord], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> InteractionRecord:
        """Wait until ``predicate(record)`` holds (default: acknowledged, and a
        deferral has been followed by an edit or a follow-up)."""
        check = (lambda: predicate(self)) if predicate else self._default_done
        await self.notifier.wait_for(check, timeout)
        return self

    async def wait_quiet(self, quiet: float = 0.3, timeout: float = 10.0) -> InteractionRecord:  # noqa: ASYNC109
        """Wait until acknowledged and nothing changed anywhere for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self.acked and now - self.notifier.last_change >= quiet:
                return self
            if now >= deadline:
                raise TimeoutError(f"interaction {self.id} did not settle within {timeout} s")
            await asyncio.sleep(min(quiet / 4, 0.05))
