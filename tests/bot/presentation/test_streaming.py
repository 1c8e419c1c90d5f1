"""StreamingReply against a fake sink that behaves like a rate-limited Discord bucket."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.presentation.pacing import FLOOR_INTERVAL, RateLimitInfo
from bot.presentation.splitting import split_message
from bot.presentation.streaming import (
    EMPTY_ANSWER,
    REPLACED_PAGE,
    ReplyGone,
    StreamingReply,
    WriteFailedError,
)


class BucketSink:
    """Fixed-window bucket like Discord's; records every write and refused (429) one."""

    def __init__(self, limit: int = 5, window: float = 0.2, fail_first: int = 0) -> None:
        self.limit, self.window = limit, window
        self.remaining, self.reset_at = limit, 0.0
        self.messages: dict[int, str] = {}
        self.writes: list[tuple[int, str, bool]] = []
        self.refused = 0
        self.fail_first = fail_first
        self.seen = False
        self.was_settled = False

    def settled(self) -> None:
        self.was_settled = True

    def edit_interval(self) -> float:
        return FLOOR_INTERVAL

    def rate_limit(self) -> RateLimitInfo | None:
        if not self.seen:
            return None
        return RateLimitInfo(self.limit, self.remaining, self.reset_at)

    async def write(self, index: int, content: str, *, final: bool) -> None:
        await asyncio.sleep(0.001)
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("flaky")
        now = time.monotonic()
        if now >= self.reset_at:
            self.remaining, self.reset_at = self.limit, now + self.window
        self.seen = True
        if self.remaining == 0:
            self.refused += 1
            raise RuntimeError("429")
        assert len(content) <= 2000
        assert index <= len(self.messages), "messages are created in order"
        self.remaining -= 1
        self.messages[index] = content
        self.writes.append((index, content, final))


async def feed(reply: StreamingReply, text: str, pieces: int, pause: float = 0.0) -> None:
    size = max(1, len(text) // pieces)
    for i in range(0, len(text), size):
        reply.push(text[i : i + size])
        await asyncio.sleep(pause)


async def test_short_answer_with_footer() -> None:
    sink = BucketSink()
    reply = StreamingReply(sink)
    reply.start()
    await feed(reply, "Hello there, how are you?", 5)
    await reply.finish("llama3.2 · 5 tokens")
    assert sink.messages == {0: "Hello there, how are you?\n-# llama3.2 · 5 tokens"}
    assert sink.writes[-1][2] is True
    assert sink.refused == 0


async def test_first_text_is_shown_before_the_answer_ends() -> None:
    sink = BucketSink()
    reply = StreamingReply(sink)
    reply.start()
    reply.push("First")
    await asyncio.sleep(0.05)
    assert sink.writes and sink.writes[0][1].startswith("First")
    await reply.finish()


async def test_status_shows_until_text_arrives() -> None:
    sink = BucketSink()
    reply = StreamingReply(sink)
    reply.set_status("⏳ Queued: position 2…")
    reply.start()
    await asyncio.sleep(0.05)
    assert sink.messages[0] == "⏳ Queued: position 2…"
    reply.push("Answer")
    await reply.finish()
    assert sink.messages[0] == "Answer"


async def test_long_answer_is_split_losslessly_without_429() -> None:
    answer = "\n".join(f"line {i}: " + "word " * 12 for i in range(120))
    sink = BucketSink(limit=5, window=0.2)
    reply = StreamingReply(sink)
    reply.start()
    await feed(reply, answer, 100, pause=0.002)
    await reply.finish()
    pages = [sink.messages[i] for i in sorted(sink.messages)]
    assert pages == split_message(answer)
    assert sink.refused == 0
    assert len(sink.writes) < 100  # coalesced, not one write per chunk


async def test_code_fences_survive_the_split() -> None:
    answer = "Here:\n```python\n" + "".join(f"print({i})\n" for i in range(400)) + "```\nDone."
    sink = BucketSink(limit=50, window=0.1)
    reply = StreamingReply(sink)
    reply.start()
    await feed(reply, answer, 40)
    await reply.finish()
    pages = [sink.messages[i] for i in sorted(sink.messages)]
    assert len(pages) >= 3
    for page in pages[1:]:
        assert page.startswith("```python\n")
    for page in pages:
        assert page.count("```") % 2 == 0


async def test_empty_answer_says_so() -> None:
    sink = BucketSink()
    reply = StreamingReply(sink)
    await reply.finish("m · 0 tokens")
    assert sink.messages[0].startswith(EMPTY_ANSWER)


async def test_notice_is_appended_to_partial_text() -> None:
    sink = BucketSink()
    reply = StreamingReply(sink)
    reply.start()
    reply.push("Partial answ")
    await reply.finish(notice="⚠️ The model stopped.")
    assert sink.messages[0] == "Partial answ\n\n⚠️ The model stopped."


async def test_a_notice_amends_an_answer_already_shown() -> None:
    """Storing the turn failed after the answer was shown whole: the notice goes under it."""
    sink = BucketSink()
    reply = StreamingReply(sink)
    reply.start()
    reply.push("Answer")
    await reply.finish("m · 1 tokens")
    reply.amend("⚠️ Not saved.")
    await reply.finish()
    assert sink.messages == {0: "Answer\n-# m · 1 tokens\n\n⚠️ Not saved."}
    assert sink.writes[-1][2] is True


async def test_a_notice_that_does_not_fit_gets_a_page_of_its_own() -> None:
    sink = BucketSink()
    reply = StreamingReply(sink, limit=20)
    reply.push("x" * 20)
    reply.close()
    reply.amend("⚠️ Not saved.")
    await reply.finish()
    assert sink.messages == {0: "x" * 20, 1: "⚠️ Not saved."}


async def test_failed_writes_are_retried_without_losing_text() -> None:
    sink = BucketSink(fail_first=2)
    reply = StreamingReply(sink, retry_delay=0.001)
    reply.start()
    reply.push("still delivered")
    await reply.finish()
    assert sink.messages[0] == "still delivered"


async def test_persistent_failure_is_reported() -> None:
    sink = BucketSink(fail_first=1000)
    reply = StreamingReply(sink, retry_delay=0.001)
    reply.start()
    reply.push("x")
    with pytest.raises(WriteFailedError):
        await asyncio.wait_for(reply.finish(), 120)


class GoneSink(BucketSink):
    """Its message was deleted (or its token expired): every write is refused for good."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def write(self, index: int, content: str, *, final: bool) -> None:
        self.attempts += 1
        raise ReplyGone("Discord refused the write (404)")


async def test_a_write_no_retry_can_fix_is_given_up_at_once() -> None:
    sink = GoneSink()
    reply = StreamingReply(sink, retry_delay=0.001)
    reply.start()
    reply.push("x")
    with pytest.raises(WriteFailedError):
        await asyncio.wait_for(reply.finish(), 120)
    assert sink.attempts == 1


async def test_withdrawn_text_is_replaced_by_what_comes_after() -> None:
    """An answer that starts again on another server: the first attempt's text goes."""
    sink = BucketSink()
    reply = StreamingReply(sink, show_cursor=False)
    reply.start()
    reply.push("Kept intro. ")
    reply.push("first attempt, cut")
    await asyncio.sleep(0.05)
    assert "first attempt" in sink.messages[0]
    reply.withdraw(len("first attempt, cut"))
    assert reply.text_length == len("Kept intro. ")
    reply.push("second attempt, whole.")
    await reply.finish("m")
    assert sink.messages == {0: "Kept intro. second attempt, whole.\n-# m"}


async def test_pages_left_without_text_after_a_withdrawal_say_they_were_replaced() -> None:
    sink = BucketSink(limit=50)
    reply = StreamingReply(sink, show_cursor=False)
    reply.start()
    long_first = "word " * 700  # two pages of 2000
    await feed(reply, long_first, 10, pause=0.01)
    for _ in range(500):  # until both pages are on screen (bounded: 5 s)
        if len(sink.messages) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(sink.messages) == 2
    reply.withdraw(len(long_first))
    reply.push("A short second answer.")
    await reply.finish("m")
    assert sink.messages[0] == "A short second answer.\n-# m"
    assert sink.messages[1] == REPLACED_PAGE
    assert {index: final for index, _, final in sink.writes} == {0: True, 1: True}
