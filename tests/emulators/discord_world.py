"""The emulated Discord world: registry of entities, permissions, and JSON payloads
shaped as Discord sends them (what discord.py's parsers read)."""

from __future__ import annotations

import hashlib
from typing import Any

from .discord_attachments import Attachment, Upload, attachment_payload, store_upload
from .discord_state import (
    ALL_PERMISSIONS,
    BOT_PERMISSIONS,
    DEFAULT_PERMISSIONS,
    Channel,
    Guild,
    InteractionRecord,
    Member,
    Message,
    Notifier,
    Permission,
    Role,
    SnowflakeGenerator,
    User,
)

DM_PERMISSIONS = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.USE_EXTERNAL_EMOJIS
)


class World:
    def __init__(self, bot_name: str = "Ollacord") -> None:
        self.ids = SnowflakeGenerator()
        self.notifier = Notifier()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.roles: dict[int, Role] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.interactions_by_token: dict[str, InteractionRecord] = {}
        # None is the global scope, ints are guild ids.
        self.registered_commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self.public_base = ""  # "http://127.0.0.1:PORT", known once the server listens
        # Modern applications share their id with their bot user.
        self.bot_user = self.add_user(bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.app_owner = self.add_user(f"{bot_name} owner")

    # ----- registry -------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False) -> User:
        user = User(id=self.ids.next(), name=name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, shard: tuple[int, int] | None = None) -> Guild:
        """``shard=(k, n)``: a guild whose events go to shard k when the bot runs n shards."""
        owner = self.add_user(f"{name} owner")
        gid = self.ids.next() if shard is None else self.ids.next_on_shard(*shard)
        guild = Guild(id=gid, name=name, owner_id=owner.id)
        self.guilds[guild.id] = guild
        everyone = Role(
            id=guild.id, guild_id=guild.id, name="@everyone", permissions=DEFAULT_PERMISSIONS
        )
        self.roles[everyone.id] = everyone
        guild.role_ids.append(everyone.id)
        bot_role = Role(
            id=self.ids.next(),
            guild_id=guild.id,
            name=self.bot_user.name,
            permissions=BOT_PERMISSIONS,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        self.roles[bot_role.id] = bot_role
        guild.role_ids.append(bot_role.id)
        self.add_member(guild.id, owner.id, permissions=ALL_PERMISSIONS)
        guild.members[self.bot_user.id] = Member(
            guild_id=guild.id,
            user_id=self.bot_user.id,
            permissions=BOT_PERMISSIONS,
            role_ids=[bot_role.id],
        )
        return guild

    def add_member(self, guild_id: int, user_id: int, *, permissions: int) -> Member:
        guild = self.guilds[guild_id]
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}: add_user first")
        role_ids: list[int] = []
        extra = permissions & ~self.roles[guild.id].permissions
        if extra:
            # Permissions come from roles on Discord, so give the member a role
            # carrying what @everyone lacks (discord.py's guild cache reads roles).
            role = next(
                (
                    self.roles[r]
                    for r in guild.role_ids
                    if self.roles[r].name == f"perms-{permissions:x}"
                ),
                None,
            )
            if role is None:
                role = Role(
                    id=self.ids.next(),
                    guild_id=guild_id,
                    name=f"perms-{permissions:x}",
                    permissions=permissions,
                    position=2,
                )
                self.roles[role.id] = role
                guild.role_ids.append(role.id)
            role_ids.append(role.id)
        member = Member(
            guild_id=guild_id, user_id=user_id, permissions=permissions, role_ids=role_ids
        )
        guild.members[user_id] = member
        return member

    def add_channel(self, guild_id: int, name: str, *, type: int = 0) -> Channel:
        guild = self.guilds[guild_id]
        channel = Channel(
            id=self.ids.next(),
            guild_id=guild_id,
            name=name,
            type=type,
            position=len(guild.channel_ids),
        )
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel

    def dm_channel(self, user_id: int) -> Channel:
        for channel in self.channels.values():
            if channel.type == 1 and channel.recipient_id == user_id:
                return channel
        channel = Channel(id=self.ids.next(), guild_id=None, name="", type=1, recipient_id=user_id)
        self.channels[channel.id] = channel
        return channel

    def add_attachment(self, filename: str, data: bytes, content_type: str) -> Attachment:
        """A file not yet attached anywhere (its link names channel 0)."""
        upload = Upload(filename, data, content_type=content_type)
        return store_upload(self, upload, folder="attachments/0", ephemeral=False)

    def rebase_attachments(self, base: str) -> None:
        """Links made before the server listened get its address."""
        self.public_base = base
        for att in self.attachments.values():
            att.base = base

    def store_message(self, message: Message) -> Message:
        self.messages[message.id] = message
        channel = self.channels.get(message.channel_id)
        if channel is not None:
            channel.message_ids.append(message.id)
        return message

    def command_id(self, scope: int | None, name: str, type: int) -> int:
        # Discord keeps a command's id across bulk overwrites when its name stays.
        key = (scope, name, type)
        if key not in self._command_ids:
            self._command_ids[key] = self.ids.next()
        return self._command_ids[key]

    def find_command(self, name: str, guild_id: int | None, type: int = 1) -> dict[str, Any] | None:
        scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for cmd in self.registered_commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == type:
                    return cmd
        return None

    # ----- permissions ----------------------------------------------------

    def bot_permissions(self, channel: Channel) -> int:
        if channel.thread is not None:  # a thread has its parent's permissions
            return self.bot_permissions(self.channels[channel.thread.parent_id])
        if channel.guild_id is None:
            return DM_PERMISSIONS
        if channel.bot_permissions is not None:
            return channel.bot_permissions
        return self.guilds[channel.guild_id].members[self.bot_user.id].permissions

    def member_permissions(self, guild_id: int, user_id: int) -> int:
        guild = self.guilds[guild_id]
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        return guild.members[user_id].permissions

    @staticmethod
    def bucket_hash(name: str) -> str:
        return hashlib.sha1(name.encode()).hexdigest()[:32]

    # ----- payloads -------------------------------------------------------

    def user_payload(self, user: User) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(user.id),
            "username": user.name,
            "discriminator": "0",
            "global_name": user.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "collectibles": None,
            "primary_guild": None,
        }
        if user.bot:
            data["bot"] = True
        return data

    def me_payload(self) -> dict[str, Any]:
        data = self.user_payload(self.bot_user)
        data.update(verified=True, mfa_enabled=False, email=None, locale="en-US")
        return data

    def member_payload(
        self, member: Member, *, with_user: bool = True, permissions: int | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": member.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in member.role_ids],
            "joined_at": member.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
            "unusual_dm_activity_until": None,
        }
        if with_user:
            data["user"] = self.user_payload(self.users[member.user_id])
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data

    def role_payload(self, role: Role) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(role.id),
            "name": role.name,
            "description": None,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": role.position,
            "permissions": str(role.permissions),
            "managed": role.managed,
            "mentionable": role.mentionable,
            "flags": 0,
        }
        if role.bot_id is not None:
            data["tags"] = {"bot_id": str(role.bot_id)}
        return data

    def channel_payload(self, channel: Channel) -> dict[str, Any]:
        if channel.thread is not None:
            from .discord_threads import thread_payload  # it builds on this module

            return thread_payload(self, channel)
        last = next(
            (m for m in reversed(channel.message_ids) if not self.messages[m].deleted), None
        )
        if channel.type == 1:
            assert channel.recipient_id is not None
            return {
                "id": str(channel.id),
                "type": 1,
                "last_message_id": str(last) if last else None,
                "flags": 0,
                "recipients": [self.user_payload(self.users[channel.recipient_id])],
            }
        overwrites: list[dict[str, Any]] = []
        if channel.bot_permissions is not None and channel.guild_id is not None:
            base = self.guilds[channel.guild_id].members[self.bot_user.id].permissions
            overwrites.append(
                {
                    "id": str(self.bot_user.id),
                    "type": 1,
                    "allow": str(channel.bot_permissions & ~base),
                    "deny": str(base & ~channel.bot_permissions),
                }
            )
        return {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "position": channel.position,
            "permission_overwrites": overwrites,
            "topic": channel.topic,
            "nsfw": False,
            "last_message_id": str(last) if last else None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }

    def guild_payload(
        self, guild: Guild, *, gateway: bool = False, members: bool = False
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [self.role_payload(self.roles[r]) for r in guild.role_ids],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }
        if gateway:
            bot_member = guild.members[self.bot_user.id]
            # Without GUILD_PRESENCES Discord only sends the bot's own member here.
            listed = list(guild.members.values()) if members else [bot_member]
            data.update(
                joined_at=bot_member.joined_at,
                large=False,
                unavailable=False,
                lazy=True,
                member_count=len(guild.members),
                members=[self.member_payload(m) for m in listed],
                channels=[self.channel_payload(self.channels[c]) for c in guild.channel_ids],
                threads=[
                    self.channel_payload(c)
                    for c in self.channels.values()
                    if c.thread is not None and c.guild_id == guild.id and not c.thread.archived
                ],
                presences=[],
                voice_states=[],
                stage_instances=[],
                guild_scheduled_events=[],
                soundboard_sounds=[],
            )
        return data

    def attachment_payload(self, att: Attachment) -> dict[str, Any]:
        return attachment_payload(att)

    def message_payload(
        self, msg: Message, *, gateway: bool = False, depth: int = 0
    ) -> dict[str, Any]:
        author = self.users[msg.author_id]
        guild = self.guilds.get(msg.guild_id) if msg.guild_id else None
        mentions = []
        for uid in sorted(msg.mentions.users):
            entry = self.user_payload(self.users[uid])
            if guild is not None and uid in guild.members:
                entry["member"] = self.member_payload(guild.members[uid], with_user=False)
            mentions.append(entry)
        data: dict[str, Any] = {
            "id": str(msg.id),
            "type": msg.type,
            "channel_id": str(msg.channel_id),
            "author": self.user_payload(author),
            "content": msg.content,
            "timestamp": msg.timestamp,
            "edited_timestamp": msg.edited_timestamp,
            "tts": msg.tts,
            "mention_everyone": msg.mentions.everyone,
            "mentions": mentions,
            "mention_roles": [str(r) for r in sorted(msg.mentions.roles)],
            "attachments": [self.attachment_payload(a) for a in msg.attachments],
            "embeds": msg.embeds,
            "components": msg.components,
            "pinned": False,
            "flags": msg.flags,
        }
        if msg.reactions:
            counts: dict[str, int] = {}
            for emoji in msg.reactions:
                counts[emoji] = counts.get(emoji, 0) + 1
            data["reactions"] = [
                {
                    "emoji": {"id": None, "name": e},
                    "count": n,
                    "me": True,
                    "burst_colors": [],
                    "count_details": {"burst": 0, "normal": n},
                    "me_burst": False,
                }
                for e, n in counts.items()
            ]
        if msg.nonce is not None:
            data["nonce"] = msg.nonce
        if msg.webhook_id is not None:
            data["webhook_id"] = str(msg.webhook_id)
        if msg.application_id is not None:
            data["application_id"] = str(msg.application_id)
        if msg.interaction_id is not None and msg.interaction_id in self.interactions:
            rec = self.interactions[msg.interaction_id]
            user = self.user_payload(self.users[rec.user_id])
            data["interaction_metadata"] = {
                "id": str(rec.id),
                "type": rec.type,
                "user": user,
                "authorizing_integration_owners": rec.payload.get(
                    "authorizing_integration_owners", {}
                ),
                **({"name": rec.name} if rec.name else {}),
            }
            data["interaction"] = {
                "id": str(rec.id),
                "type": rec.type,
                "name": rec.name or "",
                "user": user,
            }
        if msg.reference is not None:
            data["message_reference"] = msg.reference
            ref_id = int(msg.reference.get("message_id", 0) or 0)
            ref = self.messages.get(ref_id)
            if depth == 0:
                data["referenced_message"] = (
                    self.message_payload(ref, depth=1)
                    if ref is not None and not ref.deleted
                    else None
                )
        if gateway and guild is not None:
            data["guild_id"] = str(guild.id)
            if msg.author_id in guild.members and msg.webhook_id is None:
                data["member"] = self.member_payload(guild.members[msg.author_id], with_user=False)
        return data

    def application_payload(self) -> dict[str, Any]:
        bot = self.user_payload(self.bot_user)
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(str(self.application_id).encode()).hexdigest(),
            "owner": self.user_payload(self.app_owner),
            "team": None,
            "flags": 0,
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "integration_types_config": {"0": {}, "1": {}},
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
            "bot": bot,
        }
