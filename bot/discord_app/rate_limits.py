"""Rate-limit state read from Discord's response headers, via aiohttp's public tracing hooks.

discord.py honours the headers itself but keeps them private; the streaming pacer needs
them to spread edits over a bucket's window instead of bursting and then freezing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp

from bot.presentation.pacing import RateLimitInfo

log = logging.getLogger(__name__)

# Interaction replies and follow-ups share one bucket per interaction token.
_WEBHOOK = re.compile(r"/webhooks/\d+/([^/?]+)")
_CHANNEL_MESSAGES = re.compile(r"/channels/(\d+)/messages")
# The interaction token in a webhook or interaction route: a credential for 15 minutes.
_TOKEN_IN_ROUTE = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/?]+")
MAX_TRACKED_BUCKETS = 4096


def bucket_key(path: str) -> str | None:
    if match := _WEBHOOK.search(path):
        return f"webhook:{match.group(1)}"
    if match := _CHANNEL_MESSAGES.search(path):
        return f"channel:{match.group(1)}"
    return None


class RateLimitTracker:
    """Remembers the latest X-RateLimit-* headers per bucket key, and counts 429s."""

    def __init__(
        self, clock: Any = time.monotonic, *, budget: GlobalWriteBudget | None = None
    ) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, RateLimitInfo] = OrderedDict()
        self._budget = budget
        self.seen_429 = 0
        self.trace_config = aiohttp.TraceConfig()
        self.trace_config.on_request_start.append(self._on_request_start)
        self.trace_config.on_request_end.append(self._on_request_end)

    def get(self, key: str) -> RateLimitInfo | None:
        return self._buckets.get(key)

    def observe(self, path: str, status: int, headers: Any) -> None:
        if status == 429:
            self.seen_429 += 1
            route = _TOKEN_IN_ROUTE.sub(r"\1…", path.split("?")[0])
            log.warning("Discord answered 429 for %s", route)
        key = bucket_key(path)
        if key is None:
            return
        try:
            limit = int(headers["X-RateLimit-Limit"])
            remaining = int(headers["X-RateLimit-Remaining"])
            reset_after = float(headers["X-RateLimit-Reset-After"])
        except (KeyError, ValueError):
            return
        self._buckets[key] = RateLimitInfo(limit, remaining, self._clock() + reset_after)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_TRACKED_BUCKETS:
            self._buckets.popitem(last=False)

    async def _on_request_start(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any
    ) -> None:
        # Every request of the bot but webhooks counts against the global limit: the budget
        # hears of the ones it did not grant itself (start-up, error replies, fetches).
        if self._budget is not None and not _BUDGETED.get():
            path = params.url.path
            if "/webhooks/" not in path and "/interactions/" not in path:
                self._budget.note_request()

    async def _on_request_end(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any
    ) -> None:
        self.observe(params.url.path, params.response.status, params.response.headers)


# Discord's global limit: 50 requests per second per bot, over every route but interaction
# webhooks (so /ask replies are exempt, mention replies are not). A global 429 holds every
# request of the bot, and 10,000 429s in ten minutes get its address banned for a while.
GLOBAL_REQUESTS_PER_SECOND = 50
# Left for the bot's other requests (replies to errors, fetching a replied-to message...).
GLOBAL_RESERVE = 2
# The share of the budget that edits of answers in progress may fill between them; the rest
# is for first messages (what a user waits to see) and final edits, which never queue
# behind them.
EDIT_SHARE = 0.6
# A reply counts as active while it wrote within this long.
ACTIVE_SECONDS = 3.0
# The window counted, a little over Discord's second: requests reach Discord a few
# milliseconds after we count them, later or sooner each, which can slide one write of
# the previous second into Discord's next one.
WINDOW_SECONDS = 1.1


# Set while a write the budget granted is under way, so that it is not counted twice.
_BUDGETED: contextvars.ContextVar[bool] = contextvars.ContextVar("budgeted", default=False)


class GlobalWriteBudget:
    """The channel writes of all replies, kept within Discord's global limit.

    A sliding one-second window: no second, however Discord aligns its own, holds more
    than ``per_second`` writes. Edits may fill only ``EDIT_SHARE`` of it, and
    ``edit_interval`` spaces each active reply's edits so that together they stay there.
    """

    def __init__(
        self,
        per_second: int = GLOBAL_REQUESTS_PER_SECOND - GLOBAL_RESERVE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self._edit_limit = max(1, int(per_second * EDIT_SHARE))
        self._clock = clock
        self._sent: deque[float] = deque()
        self._last_write: dict[int, float] = {}  # reply -> when it last wrote

    def _in_last_second(self, now: float) -> int:
        sent = self._sent
        while sent and now - sent[0] >= WINDOW_SECONDS:
            sent.popleft()
        return len(sent)

    async def acquire(self, reply: int, *, urgent: bool) -> None:
        """Wait until one more write fits in the last second, and count it for ``reply``.
        ``urgent``: a first message or a final edit, which may use the whole budget."""
        limit = self.per_second if urgent else self._edit_limit
        while True:
            now = self._clock()
            if self._in_last_second(now) < limit:
                break
            await asyncio.sleep(max(0.001, WINDOW_SECONDS - (now - self._sent[0])))
        self._sent.append(now)
        self._last_write[reply] = now

    @contextlib.contextmanager
    def granted(self) -> Iterator[None]:
        """Around the request that ``acquire`` made room for (already counted)."""
        token = _BUDGETED.set(True)
        try:
            yield
        finally:
            _BUDGETED.reset(token)

    def note_request(self) -> None:
        """A request the budget did not grant, which Discord counts all the same."""
        self._sent.append(self._clock())

    def edit_interval(self, floor: float) -> float:
        """The spacing of one reply's edits that keeps the active replies within budget."""
        now = self._clock()
        stale = [r for r, at in self._last_write.items() if now - at > ACTIVE_SECONDS]
        for reply in stale:
            del self._last_write[reply]
        return max(floor, len(self._last_write) / self._edit_limit)
