"""StreamingReply: shows a growing answer as Discord messages, without Discord types.

The model's text is pushed in as it arrives; a pump task turns it into writes to a sink
(the discord.py adapter in ``bot.discord_app.replies``): message 0 is the deferred reply, later
messages are follow-ups. Only one write is in flight at a time; text arriving meanwhile is
coalesced into the next write, whose timing ``bot.presentation.pacing`` derives from the rate-limit
headers the sink observed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from bot.presentation.pacing import RateLimitInfo, edit_delay
from bot.presentation.splitting import DISCORD_MESSAGE_LIMIT, MessageSplitter

log = logging.getLogger(__name__)

EMPTY_ANSWER = "*(The model returned an empty answer.)*"
# A message of an answer that was withdrawn and is now shorter (its server went away and
# another answers again): it no longer holds text of the answer.
REPLACED_PAGE = "-# ↩️ (replaced by the answer above)"
CURSOR = " ▌"
FOOTER_PREFIX = "\n-# "
# After a failed write, wait before trying again; doubles up to the cap.
RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_WRITE_FAILURES = 8
# Each reply paces its edits up to this much slower than the bucket allows, at random, so
# that answers which started together stop editing in lockstep.
PACE_JITTER = 0.2


class ReplyGone(Exception):
    """A sink's write that no retry can make succeed: the message was deleted, the
    interaction's token expired, the bot lost access. The reply gives up at once."""


class ReplySink(Protocol):
    async def write(self, index: int, content: str, *, final: bool) -> None:
        """Create (first write) or edit message ``index``; ``final``: it won't change again."""

    def rate_limit(self) -> RateLimitInfo | None:
        """The latest rate-limit state of the bucket these writes go to, if known."""

    def edit_interval(self) -> float:
        """The shortest spacing of this reply's non-final edits now (FLOOR_INTERVAL, or more
        while many replies share a budget)."""

    def settled(self) -> None:
        """Every message is final and shown: nothing of this reply will change again."""


class WriteFailedError(Exception):
    """The sink could not deliver a write even after retries."""


class StreamingReply:
    def __init__(
        self,
        sink: ReplySink,
        *,
        limit: int = DISCORD_MESSAGE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        show_cursor: bool = True,
        retry_delay: float = RETRY_DELAY,
        pace_stretch: float | None = None,
    ) -> None:
        self._sink = sink
        self._limit = limit
        self._clock = clock
        self._show_cursor = show_cursor
        self._retry_delay = retry_delay
        self._stretch = (
            1.0 + random.random() * PACE_JITTER if pace_stretch is None else pace_stretch
        )
        self._splitter = MessageSplitter(limit)
        self._status: str | None = None
        self._shown: list[str | None] = []  # what each message shows now (None: not created)
        self._final: list[bool] = []
        self._closing: list[str] | None = None  # the complete final pages, once finished
        self._wake = asyncio.Event()  # something to show: text, a status, the end
        self._ended = asyncio.Event()  # the end only: tokens don't wake a pacing pause
        self._last_sent: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.writes = 0
        self.text_length = 0
        self._pushed: list[str] = []  # the text so far, should some of it be withdrawn
        self._withdrew = False

    # feeding -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the pump (once; later calls do nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="streaming-reply")

    def push(self, text: str) -> None:
        if text and self._closing is None:
            self._splitter.feed(text)
            self._pushed.append(text)
            self.text_length += len(text)
            self._status = None  # new text means what the status said is over
            self._wake.set()

    def withdraw(self, chars: int) -> None:
        """Take back the last ``chars`` characters pushed (an answer that starts again
        elsewhere); messages left without text say they were replaced."""
        if chars <= 0 or self._closing is not None:
            return
        text = "".join(self._pushed)
        kept = text[: max(0, len(text) - chars)]
        self._splitter = MessageSplitter(self._limit)
        self._pushed = [kept] if kept else []
        if kept:
            self._splitter.feed(kept)
        self.text_length = len(kept)
        self._withdrew = True
        self._wake.set()

    def set_status(self, status: str | None) -> None:
        """A line shown alone while no text has arrived yet (queue position, thinking...),
        or under the text so far (a tool running) until more text comes."""
        if status != self._status:
            self._status = status
            self._wake.set()

    @property
    def has_text(self) -> bool:
        return self.text_length > 0

    @property
    def closed(self) -> bool:
        return self._closing is not None

    def close(self, footer: str | None = None, *, notice: str | None = None) -> None:
        """The answer is complete: flush it (plus footer or notice) without waiting."""
        if self._closing is None:
            self._closing = self._final_pages(footer, notice)
            self._wake.set()
            self._ended.set()

    def amend(self, notice: str) -> None:
        """Add ``notice`` under an answer already closed: something that went wrong after its
        end was shown (storing its turn failed). Pumps again if it had settled."""
        if self._closing is None:
            self.close(notice=notice)
            return
        pages = self._closing
        if len(pages[-1]) + len("\n\n") + len(notice) <= self._limit:
            pages[-1] += "\n\n" + notice
        else:
            pages.append(notice[: self._limit])
        self._wake.set()
        if self._task is not None and self._task.done() and self._error is None:
            self._task = None  # finish() starts it again for the changed page

    async def finish(self, footer: str | None = None, *, notice: str | None = None) -> None:
        """Deliver the complete answer (plus footer or notice) and wait until it is shown."""
        self.close(footer, notice=notice)
        if self._task is None:
            self.start()
        assert self._task is not None
        await asyncio.shield(self._task)
        if self._error is not None:
            raise WriteFailedError(str(self._error)) from self._error

    async def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _final_pages(self, footer: str | None, notice: str | None) -> list[str]:
        pages = [p.content for p in self._splitter.finish()]
        tail = "\n\n".join(x for x in (notice, None) if x)
        if not pages:
            pages = [tail or EMPTY_ANSWER]
            tail = ""
        extras = [x for x in (tail, FOOTER_PREFIX.lstrip("\n") + footer if footer else "") if x]
        for extra in extras:
            glue = "\n" if extra.startswith("-# ") else "\n\n"
            if len(pages[-1]) + len(glue) + len(extra) <= self._limit:
                pages[-1] = pages[-1] + glue + extra
            else:
                pages.append(extra[: self._limit])
        return pages

    # what should be shown ------------------------------------------------------------------
    def _desired(self) -> list[tuple[str, bool]]:
        """(content, final) for every message as it should look now."""
        pages = self._pages()
        if self._withdrew and len(pages) < len(self._shown):
            closing = self._closing is not None
            pages += [(REPLACED_PAGE, closing)] * (len(self._shown) - len(pages))
        return pages

    def _pages(self) -> list[tuple[str, bool]]:
        if self._closing is not None:
            return [(c, True) for c in self._closing]
        pages = [(p.content, True) for p in self._splitter.sealed]
        current = self._splitter.current.content
        if current.strip():
            cursor = CURSOR if self._show_cursor else ""
            status = f"{FOOTER_PREFIX}{self._status}" if self._status else ""
            if len(current) + len(cursor) + len(status) > self._limit:
                cursor = status = ""
            pages.append((current + cursor + status, False))
        elif not pages and self._status:
            pages.append((self._status, False))
        return pages

    def _next_write(self) -> tuple[int, str, bool] | None:
        for index, (content, final) in enumerate(self._desired()):
            if index >= len(self._shown):
                return index, content, final
            if self._shown[index] != content or (final and not self._final[index]):
                return index, content, final
        return None

    # the pump ------------------------------------------------------------------------------
    async def _pump(self) -> None:
        failures = 0
        try:
            while True:
                write = self._next_write()
                if write is None:
                    if self._closing is not None:
                        self._sink.settled()
                        return
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                final = self._closing is not None
                delay = edit_delay(
                    self._sink.rate_limit(),
                    self._clock(),
                    self._last_sent,
                    final=final,
                    stretch=self._stretch,
                    floor=self._sink.edit_interval(),
                )
                if delay > 0:
                    await self._sleep_unless_finishing(delay, final)
                    continue  # re-evaluate: more text or the end may have arrived meanwhile
                index, content, is_final = write
                try:
                    await self._sink.write(index, content, final=is_final)
                except ReplyGone:
                    raise
                except Exception as exc:
                    failures += 1
                    if failures >= MAX_WRITE_FAILURES:
                        raise
                    pause = min(MAX_RETRY_DELAY, self._retry_delay * 2 ** (failures - 1))
                    log.warning("reply write failed (%s); retrying in %.1fs", exc, pause)
                    await asyncio.sleep(pause)
                    continue
                failures = 0
                self.writes += 1
                self._last_sent = self._clock()
                while len(self._shown) <= index:
                    self._shown.append(None)
                    self._final.append(False)
                self._shown[index] = content
                self._final[index] = is_final
        except asyncio.CancelledError:
            raise
        except ReplyGone as exc:
            # Deleted, expired or out of reach: no fault in the bot, and nothing to retry.
            self._error = exc
            log.warning("giving up on a streamed reply: %s", exc.__cause__ or exc)
        except Exception as exc:
            self._error = exc
            log.exception("giving up on a streamed reply")

    async def _sleep_unless_finishing(self, delay: float, final: bool) -> None:
        """Sleep ``delay``, but wake early when the answer ends (its flush may go sooner)."""
        if final:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), delay)
