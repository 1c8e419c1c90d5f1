"""Rate-limit state read from Discord's response headers, via aiohttp's public tracing hooks.

discord.py honours the headers itself but keeps them private; the streaming pacer needs
them to spread edits over a bucket's window instead of bursting and then freezing.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import aiohttp

from bot.presentation.pacing import RateLimitInfo

log = logging.getLogger(__name__)

# Interaction replies and follow-ups share one bucket per interaction token.
_WEBHOOK = re.compile(r"/webhooks/\d+/([^/?]+)")
_CHANNEL_MESSAGES = re.compile(r"/channels/(\d+)/messages")
MAX_TRACKED_BUCKETS = 4096


def bucket_key(path: str) -> str | None:
    if match := _WEBHOOK.search(path):
        return f"webhook:{match.group(1)}"
    if match := _CHANNEL_MESSAGES.search(path):
        return f"channel:{match.group(1)}"
    return None


class RateLimitTracker:
    """Remembers the latest X-RateLimit-* headers per bucket key, and counts 429s."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, RateLimitInfo] = OrderedDict()
        self.seen_429 = 0
        self.trace_config = aiohttp.TraceConfig()
        self.trace_config.on_request_end.append(self._on_request_end)

    def get(self, key: str) -> RateLimitInfo | None:
        return self._buckets.get(key)

    def observe(self, path: str, status: int, headers: Any) -> None:
        if status == 429:
            self.seen_429 += 1
            log.warning("Discord answered 429 for %s", path.split("?")[0])
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

    async def _on_request_end(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any
    ) -> None:
        self.observe(params.url.path, params.response.status, params.response.headers)
