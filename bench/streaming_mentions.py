"""The mention path of ``bench.streaming``, on the emulators' side (the child process).

Each question is a user's message mentioning the bot, dispatched as MESSAGE_CREATE on the
gateway. The answer is what the bot writes in that channel: its reply to the question,
then any follow-up pages, each with its content after creation and after every edit. Its
writes and 429s are the bot's REST calls on that channel's message routes (POST and PATCH
``/channels/{id}/messages...``); nothing else writes there during a round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.streaming_child import AnswerTimeline, Collected, shows_final

if TYPE_CHECKING:
    from tests.emulators.discord_server import DiscordEmulator, Message


@dataclass(frozen=True)
class Asked:
    channel_id: int
    message_id: int
    dispatched_at: float


class MentionDriver:
    """The child's commands (see ``bench.streaming_child``) for questions asked by mention."""

    def __init__(
        self,
        emu: DiscordEmulator,
        collected: Callable[[list[AnswerTimeline], float, float], Collected],
    ) -> None:
        self._emu = emu
        self._collected = collected
        self._asked: list[Asked] = []
        self._started = (0.0, 0.0)

    async def handle(self, command: str, *args: Any) -> Any:
        if command == "ask":  # one question, awaited (the warm-up)
            channel_id, user_id, prompt, timeout = args
            one = await self.post(channel_id, user_id, prompt)
            try:
                await self._emu.wait_for(lambda: self.ended(one), timeout)
            except TimeoutError:
                shown = [m.content for m in self.bot_messages(channel_id)]
                raise TimeoutError(f"no final answer in {timeout} s: {shown!r}") from None
            return self.bot_messages(channel_id)[-1].content
        if command == "invoke":
            (questions,) = args
            self._started = (time.process_time(), time.monotonic())
            self._asked = [await self.post(*question) for question in questions]
            return None
        if command == "wait_done":
            (timeout,) = args
            try:
                await self._emu.wait_for(lambda: all(map(self.ended, self._asked)), timeout)
            except TimeoutError:
                return False
            return True
        if command == "collect":
            cpu = time.process_time() - self._started[0]
            wall = time.monotonic() - self._started[1]
            return self._collected(self.timelines(self._asked), cpu, wall)
        raise ValueError(f"unknown command {command!r}")

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

    def ended(self, asked: Asked) -> bool:
        return shows_final(self.bot_messages(asked.channel_id))

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
                messages=[list(m.edits) for m in self.bot_messages(a.channel_id)],
                writes=writes.get(a.channel_id, 0),
                rate_limited=limited.get(a.channel_id, 0),
                errors=errors.get(a.channel_id, []),
            )
            for a in asked
        ]
