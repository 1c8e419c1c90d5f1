"""The mention path of ``bench.streaming``, on the emulators' side (the child process).

Each question is a user's message mentioning the bot, dispatched as MESSAGE_CREATE on the
gateway. The answer is what the bot writes in that channel: its reply to the question,
then any follow-up pages, each with its content after creation and after every edit. Its
writes and 429s are the bot's REST calls on that channel's message routes (POST and PATCH
``/channels/{id}/messages...``); nothing else writes there during a round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.streaming_child import AnswerTimeline, shows_final
from bench.streaming_drivers import Driver

if TYPE_CHECKING:
    from tests.emulators.discord_server import Message


@dataclass(frozen=True)
class Asked:
    channel_id: int
    message_id: int
    dispatched_at: float


class MentionDriver(Driver):
    """Asks by mention (the bot needs MENTION_CHAT on)."""

    def bot_messages(self, channel_id: int) -> list[Message]:
        bot = self._emu.bot_user_id
        return [m for m in self._emu.channel_messages(channel_id) if m.author_id == bot]

    async def post(self, channel_id: int, user_id: int, prompt: str) -> Asked:
        msg = await self._emu.send_user_message(
            channel_id, user_id, prompt, mentions=[self._emu.bot_user_id]
        )
        # Stamped when the message is created, just before it is dispatched on the gateway
        # (as an interaction's dispatched_at is).
        return Asked(channel_id, msg.id, msg.created_at)

    def shown(self, asked: Asked) -> list[Message]:
        return self.bot_messages(asked.channel_id)

    def ended(self, asked: Asked) -> bool:
        return shows_final(self.shown(asked))

    def timelines(self, asked: list[Asked]) -> list[AnswerTimeline]:
        writes: dict[int, int] = {}
        limited: dict[int, int] = {}
        errors: dict[int, list[dict[str, Any]]] = {}
        for call in self._emu.calls:
            parts = call.path.split("/")
            if len(parts) < 4 or parts[1] != "channels" or parts[3] != "messages":
                continue
            if call.method not in ("PATCH", "POST"):
                continue
            channel = int(parts[2])
            if call.status == 429:
                limited[channel] = limited.get(channel, 0) + 1
            elif call.status < 300:
                writes[channel] = writes.get(channel, 0) + 1
            elif isinstance(call.response, dict):
                errors.setdefault(channel, []).append(call.response)
        return [
            AnswerTimeline(
                channel_id=a.channel_id,
                dispatched_at=a.dispatched_at,
                acked_at=None,  # nothing to acknowledge
                messages=[list(m.edits) for m in self.shown(a)],
                writes=writes.get(a.channel_id, 0),
                rate_limited=limited.get(a.channel_id, 0),
                errors=errors.get(a.channel_id, []),
            )
            for a in asked
        ]
