"""How ``bench.streaming``'s child asks its questions and reads the answers back.

``Driver`` serves the child's commands (``ask``, ``invoke``, ``wait_done``, ``collect``: see
``bench.streaming_child``) for one way of asking; ``AskDriver`` asks by /ask, and
``bench.streaming_mentions.MentionDriver`` by a message mentioning the bot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.streaming_child import AnswerTimeline, Collected, shows_final

if TYPE_CHECKING:
    from tests.emulators.discord_server import DiscordEmulator, InteractionRecord, Message

CollectFn = Callable[[list[AnswerTimeline], float, float], Collected]


class Driver:
    def __init__(self, emu: DiscordEmulator, collected: CollectFn) -> None:
        self._emu = emu
        self._collected = collected
        self._asked: list[Any] = []
        self._started = (0.0, 0.0)

    async def post(self, channel_id: int, user_id: int, prompt: str) -> Any:
        """Ask one question; what it returns identifies the answer to the other methods."""
        raise NotImplementedError

    def ended(self, asked: Any) -> bool:
        raise NotImplementedError

    def shown(self, asked: Any) -> list[Message]:
        raise NotImplementedError

    def describe(self, asked: Any) -> str:
        return f"messages={[m.content for m in self.shown(asked)]!r}"

    def timelines(self, asked: list[Any]) -> list[AnswerTimeline]:
        raise NotImplementedError

    async def handle(self, command: str, *args: Any) -> Any:
        if command == "ask":  # one question, awaited (the warm-up)
            channel_id, user_id, prompt, timeout = args
            one = await self.post(channel_id, user_id, prompt)
            try:
                await self._emu.wait_for(lambda: self.ended(one), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"no final answer in {timeout} s: {self.describe(one)}"
                ) from None
            return self.shown(one)[-1].content
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


class AskDriver(Driver):
    """/ask: the answer is the original response and its follow-ups; its writes and 429s are
    those on its interaction's webhook token."""

    def __init__(self, emu: DiscordEmulator, guild_id: int, collected: CollectFn) -> None:
        super().__init__(emu, collected)
        self._guild_id = guild_id

    async def post(self, channel_id: int, user_id: int, prompt: str) -> InteractionRecord:
        return await self._emu.invoke_slash(
            "ask",
            user_id=user_id,
            channel_id=channel_id,
            guild_id=self._guild_id,
            options={"prompt": prompt},
        )

    def shown(self, asked: InteractionRecord) -> list[Message]:
        found = [asked.original] if asked.original is not None else []
        return [m for m in found + asked.followups if not m.deleted]

    def ended(self, asked: InteractionRecord) -> bool:
        """The answer will not change any more: its final content is shown, or the bot gave
        up and told the user privately."""
        original = asked.original
        if any(m.ephemeral for m in asked.followups) or (original and original.deleted):
            return True
        return shows_final(self.shown(asked))

    def describe(self, asked: InteractionRecord) -> str:
        return f"acked={asked.acked} {super().describe(asked)} errors={asked.errors!r}"

    def timelines(self, asked: list[InteractionRecord]) -> list[AnswerTimeline]:
        writes: dict[str, int] = {}
        limited: dict[str, int] = {}
        for call in self._emu.calls:
            parts = call.path.split("/")
            if len(parts) < 4 or parts[1] != "webhooks" or call.method not in ("PATCH", "POST"):
                continue
            token = parts[3]
            if call.status == 429:
                limited[token] = limited.get(token, 0) + 1
            elif call.status < 300:
                writes[token] = writes.get(token, 0) + 1
        return [
            AnswerTimeline(
                channel_id=r.channel_id,
                dispatched_at=r.dispatched_at,
                acked_at=r.acked_at,
                messages=[list(m.edits) for m in self.shown(r)],
                writes=writes.get(r.token, 0),
                rate_limited=limited.get(r.token, 0),
                errors=list(r.errors),
            )
            for r in asked
        ]
