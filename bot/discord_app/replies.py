"""The thin discord.py side of StreamingReply: writes pages as interaction replies or messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import discord

from bot.discord_app.live_replies import LiveReplies
from bot.discord_app.rate_limits import GlobalWriteBudget, RateLimitTracker
from bot.presentation.pacing import FLOOR_INTERVAL, RateLimitInfo
from bot.presentation.streaming import ReplyGone
from bot.storage.live_replies import LiveReplyRecord

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

NO_MENTIONS = discord.AllowedMentions.none()
# Set in Interaction.extras once the deferred reply shows something of ours.
WRITTEN = "ollacord_reply_written"


@contextlib.asynccontextmanager
async def acknowledging(
    interaction: discord.Interaction, *, ephemeral: bool = False
) -> AsyncIterator[asyncio.Future[object]]:
    """Defer ``interaction`` while the body already works on the answer.

    The acknowledgement's round trip then overlaps with reading settings and asking the
    model; writes wait for it (give the yielded future to ``InteractionSink``). If it fails,
    the body is cancelled (nothing is generated or stored for nobody) and the failure is
    raised in its place. On the way out it is awaited, so the error handler always answers
    after it, never as a second acknowledgement.
    """
    body = asyncio.current_task()
    ack = asyncio.ensure_future(interaction.response.defer(ephemeral=ephemeral, thinking=True))

    def cancel_body(done: asyncio.Future[object]) -> None:
        if body is not None and not done.cancelled() and done.exception() is not None:
            body.cancel()

    ack.add_done_callback(cancel_body)
    try:
        yield ack
    except asyncio.CancelledError:
        failure = None if not ack.done() or ack.cancelled() else ack.exception()
        if failure is not None:
            raise failure from None
        raise
    finally:
        ack.remove_done_callback(cancel_body)
        if not ack.done():
            await asyncio.wait([ack])


@contextlib.contextmanager
def gone_if_permanent() -> Iterator[None]:
    """Discord's refusals that a retry cannot change become ReplyGone: the message or
    webhook is unknown (404), access is lost (403), the interaction token expired (401)."""
    try:
        yield
    except discord.HTTPException as exc:
        if exc.status in (401, 403, 404):
            raise ReplyGone(f"Discord refused the write ({exc.status})") from exc
        raise


class Recorded:
    """Keeps ``LiveReplies`` told which messages a reply shows while it is written."""

    def __init__(self, live: LiveReplies | None) -> None:
        self._live = live
        self._message_ids: list[int] = []

    def _created(self, message_id: int) -> None:
        self._message_ids.append(message_id)
        if self._live is not None:
            self._live.shown(self._record(tuple(self._message_ids)))

    def _record(self, message_ids: tuple[int, ...]) -> LiveReplyRecord:
        raise NotImplementedError

    def settled(self) -> None:
        if self._live is not None and self._message_ids:
            self._live.settled(self._message_ids[0])


class InteractionSink(Recorded):
    """Message 0 is the deferred original response; later pages are follow-ups.

    ``ephemeral`` has no default: every follow-up page must be as private as the deferral,
    so each caller states it (a private summary once leaked its later pages).
    """

    def __init__(
        self,
        interaction: discord.Interaction,
        tracker: RateLimitTracker,
        *,
        ephemeral: bool,
        view: discord.ui.View | None = None,
        acknowledged: asyncio.Future[object] | None = None,
        live: LiveReplies | None = None,
    ) -> None:
        super().__init__(live)
        self._acknowledged = acknowledged
        self._interaction = interaction
        self._tracker = tracker
        self._ephemeral = ephemeral
        self._view = view
        self._view_on: int | None = None  # the message that shows the view now
        self._followups: dict[int, discord.WebhookMessage] = {}

    def rate_limit(self) -> RateLimitInfo | None:
        return self._tracker.get(f"webhook:{self._interaction.token}")

    def edit_interval(self) -> float:
        return FLOOR_INTERVAL  # interaction webhooks are outside Discord's global limit

    def _record(self, message_ids: tuple[int, ...]) -> LiveReplyRecord:
        # The token is what edits a private reply; it lasts 15 minutes from the interaction.
        return LiveReplyRecord(
            self._interaction.channel_id or 0,
            message_ids,
            self._interaction.token,
            self._ephemeral,
            self._interaction.created_at,
        )

    def _view_change(self, index: int, final: bool) -> dict[str, discord.ui.View | None]:
        """The ``view`` argument for this write, or none: an edit without one keeps the
        message's buttons, and sending the view again on every edit costs CPU for nothing."""
        if self._view is None:
            return {}
        if final:
            if self._view_on != index:
                return {}
            self._view_on = None
            return {"view": None}
        if self._view_on == index:
            return {}
        self._view_on = index
        return {"view": self._view}

    async def write(self, index: int, content: str, *, final: bool) -> None:
        with gone_if_permanent():
            await self._write(index, content, final=final)

    async def _write(self, index: int, content: str, *, final: bool) -> None:
        if self._acknowledged is not None and not self._acknowledged.done():
            await asyncio.shield(self._acknowledged)
        view = self._view_change(index, final)
        if index == 0:
            original = await self._interaction.edit_original_response(
                content=content, allowed_mentions=NO_MENTIONS, **view
            )
            if not self._message_ids:
                self._interaction.extras[WRITTEN] = True
                self._created(original.id)
            return
        message = self._followups.get(index)
        if message is None:
            self._followups[index] = await self._interaction.followup.send(
                content,
                ephemeral=self._ephemeral,
                allowed_mentions=NO_MENTIONS,
                wait=True,
                **{k: v for k, v in view.items() if v is not None},
            )
            self._created(self._followups[index].id)
        else:
            await message.edit(content=content, allowed_mentions=NO_MENTIONS, **view)


class ChannelSink(Recorded):
    """Writes an answer into a channel or a thread, every page a message of its own; with
    ``reply_to`` (mention chat), the first page replies to the member's message."""

    def __init__(
        self,
        channel: MessageableChannel,
        tracker: RateLimitTracker,
        *,
        budget: GlobalWriteBudget,
        live: LiveReplies | None = None,
        reply_to: discord.Message | None = None,
    ) -> None:
        super().__init__(live)
        self._channel = channel
        self._reply_to = reply_to
        self._tracker = tracker
        self._budget = budget  # channel writes count against the bot's global limit
        self._messages: dict[int, discord.Message] = {}

    @classmethod
    def replying(
        cls,
        message: discord.Message,
        tracker: RateLimitTracker,
        *,
        budget: GlobalWriteBudget,
        live: LiveReplies | None = None,
    ) -> ChannelSink:
        """For mention chat: the answer replies to ``message`` in its channel."""
        return cls(message.channel, tracker, budget=budget, live=live, reply_to=message)

    def rate_limit(self) -> RateLimitInfo | None:
        return self._tracker.get(f"channel:{self._channel.id}")

    def edit_interval(self) -> float:
        return self._budget.edit_interval(FLOOR_INTERVAL)

    def _record(self, message_ids: tuple[int, ...]) -> LiveReplyRecord:
        return LiveReplyRecord(self._channel.id, message_ids)

    async def _send(self, index: int, content: str) -> discord.Message:
        if index == 0 and self._reply_to is not None:
            return await self._reply_to.reply(
                content, allowed_mentions=NO_MENTIONS, mention_author=False
            )
        return await self._channel.send(content, allowed_mentions=NO_MENTIONS)

    async def write(self, index: int, content: str, *, final: bool) -> None:
        with gone_if_permanent():
            await self._write(index, content, final=final)

    async def _write(self, index: int, content: str, *, final: bool) -> None:
        message = self._messages.get(index)
        await self._budget.acquire(id(self), urgent=final or message is None)
        with self._budget.granted():
            if message is not None:
                await message.edit(content=content, allowed_mentions=NO_MENTIONS)
            else:
                self._messages[index] = await self._send(index, content)
                self._created(self._messages[index].id)
