"""Per-bucket rate limits with Discord's headers (fixed windows, like Discord's)."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field


@dataclass
class BucketSpec:
    name: str  # route group: one X-RateLimit-Bucket hash per group
    limit: int
    window: float
    enforced: bool = True

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.name.encode()).hexdigest()[:32]


@dataclass
class _Window:
    count: int = 0
    reset_at: float = 0.0


@dataclass
class ForcedLimit:
    remaining: int
    retry_after: float
    route_contains: str


# Discord's global limit: 50 requests per second per bot, across every route but interaction
# callbacks and webhooks (interaction replies and follow-ups go through webhooks).
GLOBAL_LIMIT = 50
GLOBAL_WINDOW = 1.0


@dataclass
class RateLimiter:
    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    forced: list[ForcedLimit] = field(default_factory=list)
    global_limit: int | None = GLOBAL_LIMIT  # None: not enforced
    global_window: _Window = field(default_factory=_Window)
    global_429s: int = 0

    def check_global(self) -> float | None:
        """Seconds to wait if the bot's global limit is spent this second, else None (and
        the request counts)."""
        if self.global_limit is None:
            return None
        now = time.monotonic()
        win = self.global_window
        if now >= win.reset_at:
            win.count = 0
            win.reset_at = now + GLOBAL_WINDOW
        if win.count >= self.global_limit:
            self.global_429s += 1
            return max(win.reset_at - now, 0.001)
        win.count += 1
        return None

    def _window(self, spec: BucketSpec, major: str, now: float) -> _Window:
        win = self.windows.setdefault((spec.name, major), _Window())
        if now >= win.reset_at:
            win.count = 0
            win.reset_at = now + spec.window
        return win

    def take_forced(self, path: str, *, is_callback: bool) -> float | None:
        for forced in self.forced:
            if forced.remaining <= 0:
                continue
            # Interaction callbacks are never rate limited by Discord; only an
            # explicit match on their path forces one.
            if is_callback and not (forced.route_contains and forced.route_contains in path):
                continue
            if forced.route_contains in path:
                forced.remaining -= 1
                return forced.retry_after
        return None

    def check(self, spec: BucketSpec, major: str) -> float | None:
        """Seconds to wait if the bucket is exhausted, else None (and the call counts)."""
        now = time.monotonic()
        win = self._window(spec, major, now)
        if spec.enforced and win.count >= spec.limit:
            return max(win.reset_at - now, 0.001)
        win.count += 1
        return None

    def headers(self, spec: BucketSpec, major: str) -> dict[str, str]:
        now = time.monotonic()
        win = self._window(spec, major, now)
        # Rounded up so a client that sleeps exactly Reset-After lands in the next window.
        reset_after = math.ceil(max(win.reset_at - now, 0.0) * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(spec.limit),
            "X-RateLimit-Remaining": str(max(spec.limit - win.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": spec.hash,
        }


def too_many_headers(retry_after: float) -> dict[str, str]:
    return {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": "user",
        # Without Via discord.py takes a 429 for a Cloudflare ban and raises.
        "Via": "1.1 google",
    }


def global_too_many_headers(retry_after: float) -> dict[str, str]:
    """A global 429 names no bucket: discord.py then holds every request of the bot."""
    return {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "global",
        "Via": "1.1 google",
    }
