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


@dataclass
class RateLimiter:
    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    forced: list[ForcedLimit] = field(default_factory=list)

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
