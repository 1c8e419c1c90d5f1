"""Threads in the Discord emulator: starting one from a message or without one, posting in it
(a thread is a channel: its id is the channel id messages go to), archiving, and the gateway
events discord.py builds its thread cache from.

What Discord does and this module copies (checked against discord.py 2.7's http.py,
threads.py and state.py, and Discord's channel documentation):

- ``POST /channels/{channel_id}/messages/{message_id}/threads`` (``Message.create_thread``)
  answers a channel object of type 11 (10 under an announcement channel) whose id is the
  message's; ``thread_metadata`` holds ``archived``, ``auto_archive_duration``,
  ``archive_timestamp``, ``locked`` and ``create_timestamp``; the creator is ``owner_id``
  and its first member. THREAD_CREATE follows with ``newly_created`` (discord.py dispatches
  ``thread_create`` only then, ``thread_join`` otherwise). A message has one thread at most
  (160004). The message gets the HAS_THREAD flag.
- ``POST /channels/{channel_id}/threads`` (``TextChannel.create_thread``) makes a thread
  without a message, and posts a THREAD_CREATED system message (type 18) in the parent.
- Names are 1 to 100 characters, ``auto_archive_duration`` one of 60, 1440, 4320, 10080
  minutes; CREATE_PUBLIC_THREADS (CREATE_PRIVATE_THREADS for type 12) is needed, and
  threads start only in text and announcement channels (50024).
- ``PATCH /channels/{thread_id}`` with ``archived``/``locked``/``name``/
  ``auto_archive_duration`` changes it (the thread's owner, or MANAGE_THREADS) and sends
  THREAD_UPDATE. discord.py drops archived threads from its cache, and adds an unarchived one
  back on the THREAD_UPDATE that unarchives it.
- A message posted in an archived thread that is not locked unarchives it first (THREAD_UPDATE
  before the MESSAGE_CREATE); in a locked one it is refused (50083) unless MANAGE_THREADS.
- Permissions in a thread are its parent's; sending needs SEND_MESSAGES_IN_THREADS there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .discord_messages import ALL_PARSE, ApiError, Body, create_message, form_error
from .discord_rest import Ctx, Reply, RestApi
from .discord_state import Channel, Message, Permission, has_permission, iso_now

if TYPE_CHECKING:
    from .discord_gateway import Gateway
    from .discord_posting import Files
    from .discord_world import World

PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
ANNOUNCEMENT_THREAD = 10
THREAD_TYPES = frozenset({ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD})
TEXT_CHANNEL = 0
ANNOUNCEMENT_CHANNEL = 5
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)  # minutes
DEFAULT_ARCHIVE_DURATION = 1440
MAX_THREAD_NAME = 100
MESSAGE_TYPE_THREAD_CREATED = 18
MESSAGE_FLAG_HAS_THREAD = 1 << 5
INTENT_GUILDS = 1 << 0


@dataclass
class ThreadMeta:
    """What makes a channel a thread."""

    parent_id: int
    owner_id: int
    auto_archive_duration: int = DEFAULT_ARCHIVE_DURATION
    archived: bool = False
    locked: bool = False
    invitable: bool = True
    archive_timestamp: str = field(default_factory=iso_now)
    create_timestamp: str = field(default_factory=iso_now)
    member_ids: list[int] = field(default_factory=list)
    # Every change of ``archived``, oldest first: (archived, who: None for Discord itself).
    archive_history: list[tuple[bool, int | None]] = field(default_factory=list)


def thread_payload(world: World, channel: Channel) -> dict[str, Any]:
    """A thread as Discord sends it (REST and gateway alike)."""
    meta = channel.thread
    assert meta is not None
    messages = [world.messages[m] for m in channel.message_ids]
    live = [m for m in messages if not m.deleted and not m.ephemeral]
    return {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id),
        "parent_id": str(meta.parent_id),
        "owner_id": str(meta.owner_id),
        "name": channel.name,
        "last_message_id": str(live[-1].id) if live else None,
        "rate_limit_per_user": 0,
        "message_count": len(live),
        "total_message_sent": len([m for m in messages if not m.ephemeral]),
        "member_count": len(meta.member_ids),
        "flags": 0,
        "thread_metadata": {
            "archived": meta.archived,
            "auto_archive_duration": meta.auto_archive_duration,
            "archive_timestamp": meta.archive_timestamp,
            "locked": meta.locked,
            "invitable": meta.invitable,
            "create_timestamp": meta.create_timestamp,
        },
    }


def _member_payload(channel: Channel, user_id: int) -> dict[str, Any]:
    return {
        "id": str(channel.id),
        "user_id": str(user_id),
        "join_timestamp": iso_now(),
        "flags": 0,
    }


def _bad_length(name: str, low: int, high: int) -> ApiError:
    message = f"Must be between {low} and {high} in length."
    return form_error({name: {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": message}]}})


class Threads:
    """The world's threads and the events about them; shared by the REST routes and the
    test-side actions."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world = world
        self.gateway = gateway

    def open(
        self,
        parent: Channel,
        owner_id: int,
        body: dict[str, Any],
        *,
        thread_id: int | None = None,
        thread_type: int = PUBLIC_THREAD,
    ) -> Channel:
        """A new thread under ``parent`` (checked as Discord checks the body), announced."""
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_THREAD_NAME:
            raise _bad_length("name", 1, MAX_THREAD_NAME)
        duration = body.get("auto_archive_duration") or DEFAULT_ARCHIVE_DURATION
        if duration not in ARCHIVE_DURATIONS:
            raise form_error(
                {
                    "auto_archive_duration": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_CHOICES",
                                "message": f"Value must be one of {ARCHIVE_DURATIONS}.",
                            }
                        ]
                    }
                }
            )
        if parent.type not in (TEXT_CHANNEL, ANNOUNCEMENT_CHANNEL) or parent.thread is not None:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if parent.type == ANNOUNCEMENT_CHANNEL and thread_type == PUBLIC_THREAD:
            thread_type = ANNOUNCEMENT_THREAD
        channel = Channel(
            id=thread_id if thread_id is not None else self.world.ids.next(),
            guild_id=parent.guild_id,
            name=name,
            type=thread_type,
        )
        channel.thread = ThreadMeta(
            parent_id=parent.id,
            owner_id=owner_id,
            auto_archive_duration=duration,
            invitable=bool(body.get("invitable", True)),
            member_ids=[owner_id],
        )
        self.world.channels[channel.id] = channel
        data = thread_payload(self.world, channel)
        if owner_id == self.world.bot_user.id:
            data["member"] = _member_payload(channel, owner_id)
        self.gateway.dispatch(
            "THREAD_CREATE", {**data, "newly_created": True}, intent=INTENT_GUILDS
        )
        self.world.notifier.notify()
        return channel

    def set_archived(
        self, thread: Channel, archived: bool, *, by: int | None, locked: bool | None = None
    ) -> None:
        meta = thread.thread
        assert meta is not None
        changed = meta.archived != archived or (locked is not None and locked != meta.locked)
        if meta.archived != archived:
            meta.archived = archived
            meta.archive_timestamp = iso_now()
            meta.archive_history.append((archived, by))
        if locked is not None:
            meta.locked = locked
        if changed:
            self.updated(thread)

    def updated(self, thread: Channel) -> None:
        self.gateway.dispatch(
            "THREAD_UPDATE", thread_payload(self.world, thread), intent=INTENT_GUILDS
        )
        self.world.notifier.notify()

    def before_post(self, channel: Channel, author_id: int) -> None:
        """What Discord does before a message lands in a thread: a locked archived thread
        refuses it, an archived one is unarchived (and says so first)."""
        meta = channel.thread
        if meta is None or not meta.archived:
            return
        if meta.locked and not self._manages_threads(channel, author_id):
            raise ApiError(400, 50083, "Thread is archived")
        self.set_archived(channel, False, by=author_id)

    def _manages_threads(self, channel: Channel, user_id: int) -> bool:
        assert channel.guild_id is not None and channel.thread is not None
        if user_id == self.world.bot_user.id:
            perms = self.world.bot_permissions(self.world.channels[channel.thread.parent_id])
        else:
            perms = self.world.member_permissions(channel.guild_id, user_id)
        return has_permission(perms, Permission.MANAGE_THREADS)


class ThreadApi:
    """The REST side: registers its routes on ``rest`` and wraps posting so that a message
    in an archived thread unarchives it."""

    def __init__(self, rest: RestApi, threads: Threads) -> None:
        self.rest = rest
        self.threads = threads
        self.world = rest.world
        rest.add("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.from_message)
        rest.add("POST", "/channels/{channel_id}/threads", self.without_message)
        rest.add("PATCH", "/channels/{channel_id}", self.modify)
        for route in rest.routes:
            if route.method == "POST" and route.template == "/channels/{channel_id}/messages":
                route.handler = self._unarchiving(route.handler)

    def _unarchiving(self, post: Any) -> Any:
        async def handler(ctx: Ctx) -> Reply:
            channel = self.world.channels.get(ctx.snowflake("channel_id"))
            if channel is not None and channel.thread is not None:
                parent = self.world.channels[channel.thread.parent_id]
                needed = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES_IN_THREADS
                if not has_permission(self.world.bot_permissions(parent), needed):
                    raise ApiError(403, 50013, "Missing Permissions")
                self.threads.before_post(channel, self.world.bot_user.id)
            return await post(ctx)

        return handler

    def _creatable(self, ctx: Ctx, *, private: bool = False) -> Channel:
        needed = Permission.CREATE_PRIVATE_THREADS if private else Permission.CREATE_PUBLIC_THREADS
        return self.rest.channel(ctx, need=int(Permission.VIEW_CHANNEL | needed))

    async def from_message(self, ctx: Ctx) -> Reply:
        parent = self._creatable(ctx)
        if not has_permission(self.world.bot_permissions(parent), Permission.READ_MESSAGE_HISTORY):
            raise ApiError(403, 50013, "Missing Permissions")
        message = self.rest.message_in(parent, ctx)
        if message.flags & MESSAGE_FLAG_HAS_THREAD or message.id in self.world.channels:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        body = ctx.body.json if isinstance(ctx.body.json, dict) else {}
        thread = self.threads.open(parent, self.world.bot_user.id, body, thread_id=message.id)
        message.flags |= MESSAGE_FLAG_HAS_THREAD
        return Reply(body=self._with_member(thread))

    async def without_message(self, ctx: Ctx) -> Reply:
        body = ctx.body.json if isinstance(ctx.body.json, dict) else {}
        thread_type = int(body.get("type") or PRIVATE_THREAD)  # Discord's default: private
        if thread_type not in (PUBLIC_THREAD, PRIVATE_THREAD, ANNOUNCEMENT_THREAD):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        parent = self._creatable(ctx, private=thread_type == PRIVATE_THREAD)
        thread = self.threads.open(parent, self.world.bot_user.id, body, thread_type=thread_type)
        announce(self.world, self.threads.gateway, parent, thread, self.world.bot_user.id)
        return Reply(body=self._with_member(thread))

    def _with_member(self, thread: Channel) -> dict[str, Any]:
        return {
            **thread_payload(self.world, thread),
            "member": _member_payload(thread, self.world.bot_user.id),
        }

    async def modify(self, ctx: Ctx) -> Reply:
        channel = self.rest.channel(ctx)
        meta = channel.thread
        if meta is None:
            # Only threads are modelled; a channel's own settings are not the bot's business.
            raise ApiError(403, 50013, "Missing Permissions")
        body = ctx.body.json if isinstance(ctx.body.json, dict) else {}
        bot_id = self.world.bot_user.id
        manages = self.threads._manages_threads(channel, bot_id)
        if meta.owner_id != bot_id and not manages:
            raise ApiError(403, 50013, "Missing Permissions")
        if body.get("locked") and not manages:
            raise ApiError(403, 50013, "Missing Permissions")
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_THREAD_NAME:
                raise _bad_length("name", 1, MAX_THREAD_NAME)
            channel.name = name
        if body.get("auto_archive_duration") in ARCHIVE_DURATIONS:
            meta.auto_archive_duration = int(body["auto_archive_duration"])
        archived = bool(body.get("archived", meta.archived))
        locked = body.get("locked")
        self.threads.set_archived(
            channel, archived, by=bot_id, locked=None if locked is None else bool(locked)
        )
        if "name" in body or "auto_archive_duration" in body:
            self.threads.updated(channel)
        return Reply(body=thread_payload(self.world, channel))


def announce(world: World, gateway: Gateway, parent: Channel, thread: Channel, by: int) -> None:
    """The THREAD_CREATED system message a thread without a starter message leaves in its
    parent (type 18, the thread's name as content)."""
    message = create_message(
        world,
        parent,
        by,
        Body(json={"content": thread.name, "allowed_mentions": {"parse": []}}),
        default_parse=ALL_PARSE,
        msg_type=MESSAGE_TYPE_THREAD_CREATED,
    )
    message.reference = {
        "type": 0,
        "channel_id": str(thread.id),
        "guild_id": str(parent.guild_id),
    }
    gateway.dispatch_message("MESSAGE_CREATE", message)


class ThreadActions:
    """Mixed into DiscordEmulator: what members and Discord itself do with threads."""

    world: World
    gateway: Gateway
    threads: Threads

    def start_member_thread(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        *,
        message_id: int | None = None,
        private: bool = False,
    ) -> Channel:
        """A member opens a thread on ``message_id`` (or without a message)."""
        parent = self.world.channels[channel_id]
        body = {"name": name, "auto_archive_duration": DEFAULT_ARCHIVE_DURATION}
        if message_id is None:
            kind = PRIVATE_THREAD if private else PUBLIC_THREAD
            thread = self.threads.open(parent, user_id, body, thread_type=kind)
            announce(self.world, self.gateway, parent, thread, user_id)
            return thread
        message = self.world.messages[message_id]
        if message.channel_id != channel_id:
            raise ValueError(f"message {message_id} is not in channel {channel_id}")
        thread = self.threads.open(parent, user_id, body, thread_id=message_id)
        message.flags |= MESSAGE_FLAG_HAS_THREAD
        return thread

    def thread(self, thread_id: int) -> Channel:
        channel = self.world.channels[thread_id]
        if channel.thread is None:
            raise LookupError(f"channel {thread_id} is not a thread")
        return channel

    def threads_of(self, channel_id: int) -> list[Channel]:
        """The threads under a channel, oldest first."""
        return [
            c
            for c in self.world.channels.values()
            if c.thread is not None and c.thread.parent_id == channel_id
        ]

    def archive_thread(self, thread_id: int, *, locked: bool = False) -> None:
        """What Discord does once a thread was quiet for its auto_archive_duration (or a
        moderator does): archive it, and say so with THREAD_UPDATE."""
        self.threads.set_archived(self.thread(thread_id), True, by=None, locked=locked)

    def _post(
        self, channel_id: int, author_id: int, body: dict[str, Any], attachments: Files
    ) -> Message:
        channel = self.world.channels[channel_id]
        self.threads.before_post(channel, author_id)
        return super()._post(channel_id, author_id, body, attachments)  # type: ignore[misc]
