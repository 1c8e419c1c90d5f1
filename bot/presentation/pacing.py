"""When the next edit of a streamed reply may go out, from the rate-limit headers Discord sent.

Discord says how many requests a bucket has left and when it refills. Spending them as fast
as tokens arrive burns the bucket in a burst and then freezes the message until it refills;
spreading them evenly over the refill time keeps the message moving. One request is kept in
reserve so the final content never waits for a refill.
"""

from __future__ import annotations

from dataclasses import dataclass

# With no headers seen yet (the first edit), or a bucket that refills at once, go now.
MIN_EDIT_INTERVAL = 0.0
# Edits more often than this add load without a visible difference to a reader.
FLOOR_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    limit: int
    remaining: int
    reset_at: float  # monotonic time when the bucket refills


def edit_delay(
    info: RateLimitInfo | None,
    now: float,
    last_sent: float | None,
    *,
    final: bool,
    stretch: float = 1.0,
    floor: float = FLOOR_INTERVAL,
) -> float:
    """Seconds to wait before the next request on this bucket (0 = send now).

    ``stretch`` (>= 1) lengthens the spacing of non-final edits: replies that started
    together drift apart instead of editing in lockstep, in waves that delay each other.
    ``floor`` is the shortest spacing of non-final edits (longer when many replies share a
    budget, such as Discord's global limit).
    """
    if info is None or now >= info.reset_at:
        wait = 0.0 if final or last_sent is None else floor * stretch - (now - last_sent)
        return max(0.0, wait)
    if info.remaining <= 0:
        return info.reset_at - now
    if final:
        return 0.0
    if info.remaining == 1 and info.limit > 1:
        return info.reset_at - now  # the last request of the window is the final's
    spacing = stretch * max(floor, (info.reset_at - now) / max(1, info.remaining - 1))
    since = now - last_sent if last_sent is not None else spacing
    return max(0.0, spacing - since)
