"""A near-free per-chunk timeout for streams.

``asyncio.timeout`` schedules and cancels a timer handle on every use (about 6 µs each), and
even reading the clock per chunk shows up in a stream of thousands of tokens. The watchdog
instead counts chunks: the stream bumps ``ticks``, and one timer, firing a few times per
limit, cancels the task once no chunk has come for ``limit`` seconds (so a timeout fires
between ``limit`` and ``limit * (1 + 1/CHECKS_PER_LIMIT)`` after the last chunk).
"""

from __future__ import annotations

import asyncio

CHECKS_PER_LIMIT = 8
MIN_CHECK_INTERVAL = 0.01


class Watchdog:
    """Cancels the current task when it has waited too long for the next chunk.

    Set ``waiting`` to True right before awaiting a chunk and False right after, and bump
    ``ticks`` for every chunk; while not waiting (busy with a chunk) the clock is ignored.
    """

    __slots__ = (
        "_handle",
        "_loop",
        "_quiet_since",
        "_seen",
        "_task",
        "expired",
        "limit",
        "not_after",
        "ticks",
        "waiting",
    )

    def __init__(self, limit: float, not_after: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "Watchdog needs a running task"
        self._task = task
        self.limit = limit
        self.not_after = not_after
        self.ticks = 0
        self.waiting = True
        self.expired = False
        self._seen = 0
        self._quiet_since = self._loop.time()
        self._handle: asyncio.TimerHandle | None = None
        self._arm()

    def set_limit(self, limit: float) -> None:
        """Change the allowed silence (e.g. from first-token to between-token) from now on."""
        self.limit = limit
        self._seen, self._quiet_since = self.ticks, self._loop.time()
        self._arm()

    @property
    def overall_expired(self) -> bool:
        return self._loop.time() >= self.not_after

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def check_cancelled(self) -> bool:
        """After a CancelledError: True (and the cancel undone) if it was our timeout."""
        if self.expired and self._task.uncancel() == 0:
            self.expired = False
            return True
        return False

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        now = self._loop.time()
        interval = max(MIN_CHECK_INTERVAL, self.limit / CHECKS_PER_LIMIT)
        when = max(min(now + interval, self.not_after), now + MIN_CHECK_INTERVAL)
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        now = self._loop.time()
        if self.ticks != self._seen or not self.waiting:
            # A chunk came since the last check, or the stream's reader is busy with one.
            self._seen, self._quiet_since = self.ticks, now
        elif now - self._quiet_since >= self.limit:
            self._expire()
            return
        if self.waiting and now >= self.not_after:
            self._expire()
            return
        self._arm()

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()
