"""What members post: history, live messages (MESSAGE_CREATE), the files on them, and
the CDN fetches a test inspects to see whether the bot downloaded those files."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .discord_attachments import Attachment, Upload, store_upload
from .discord_cdn import CdnFetch
from .discord_gateway import Gateway
from .discord_messages import ALL_PARSE, Body, create_message
from .discord_rest import RestApi
from .discord_state import Channel, InteractionRecord, Message
from .discord_world import World

Files = Sequence[Upload | Attachment]


class MemberActions:
    """Mixed into DiscordEmulator."""

    world: World
    gateway: Gateway
    rest: RestApi

    def add_message(
        self, channel_id: int, author_id: int, content: str, *, attachments: Files = ()
    ) -> Message:
        """Pre-existing history; nothing is dispatched."""
        return self._post(channel_id, author_id, {"content": content}, attachments)

    async def send_user_message(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        mentions: Sequence[int] = (),
        reference_message_id: int | None = None,
        attachments: Files = (),
    ) -> Message:
        """A user posts in a channel (MESSAGE_CREATE). Each id in ``mentions`` not
        already mentioned in ``content`` is prepended as ``<@id>``, since Discord
        only mentions what the text contains. ``attachments`` are files on the message
        (``content`` may then be empty); the bot sees them in ``message.attachments``,
        unless it lacks the message content intent and is not mentioned."""
        prefix = "".join(
            f"<@{uid}> "
            for uid in mentions
            if f"<@{uid}>" not in content and f"<@!{uid}>" not in content
        )
        body: dict[str, Any] = {"content": prefix + content}
        if reference_message_id is not None:
            body["message_reference"] = {"message_id": str(reference_message_id)}
        msg = self._post(channel_id, author_id, body, attachments)
        self.gateway.dispatch_message("MESSAGE_CREATE", msg)
        await asyncio.sleep(0)
        return msg

    def _post(
        self, channel_id: int, author_id: int, body: dict[str, Any], attachments: Files
    ) -> Message:
        channel = self.world.channels[channel_id]
        self._check_author(channel, author_id)
        # Message files live under their channel and are not ephemeral.
        files = [
            f
            if isinstance(f, Attachment)
            else store_upload(self.world, f, folder=f"attachments/{channel_id}", ephemeral=False)
            for f in attachments
        ]
        msg = create_message(
            self.world,
            channel,
            author_id,
            Body(json=body),
            default_parse=ALL_PARSE,
            allow_empty=bool(files),
        )
        msg.attachments = files
        return msg

    def _check_author(self, channel: Channel, author_id: int) -> None:
        if author_id not in self.world.users:
            raise LookupError(f"unknown user {author_id}: add_user first")
        guild_id = channel.guild_id
        if guild_id is not None and author_id not in self.world.guilds[guild_id].members:
            raise LookupError(f"user {author_id} is not a member of guild {guild_id}")
        if guild_id is None and author_id not in (channel.recipient_id, self.world.bot_user.id):
            raise LookupError(f"user {author_id} is not in DM channel {channel.id}")

    # ----- files and the CDN --------------------------------------------------

    def add_attachment(
        self, filename: str, data: bytes, content_type: str = "text/plain"
    ) -> Attachment:
        """A stored file to pass to ``invoke_slash`` (older style; an ``Upload`` passed
        directly gets Discord's ephemeral slash-upload link instead)."""
        return self.world.add_attachment(filename, data, content_type)

    def attachments_of(self, rec: InteractionRecord) -> list[Attachment]:
        """The files an interaction carried (its ``data.resolved.attachments``)."""
        resolved = rec.payload.get("data", {}).get("resolved", {}).get("attachments", {})
        return [self.world.attachments[int(aid)] for aid in resolved]

    @property
    def cdn_fetches(self) -> list[CdnFetch]:
        """Every GET on the CDN, in arrival order (failed and unknown links included)."""
        return self.rest.cdn.fetches

    def cdn_fetches_of(self, attachment: Attachment | int) -> list[CdnFetch]:
        return self.rest.cdn.fetches_of(attachment)
