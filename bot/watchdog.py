"""A cheap per-chunk timeout for streams.

``asyncio.timeout`` schedules and cancels a timer handle on every use (about 6 µs each);
a stream of thousands of chunks pays that per chunk. The watchdog keeps at most one timer
alive and only re-arms it when it fires early, so moving the deadline costs one clock read.
"""

from __future__ import annotations

import asyncio


class Watchdog:
    """Cancels the current task if it waits past a deadline; use only around awaits.

    Call :meth:`expect` right before awaiting the next chunk and :meth:`pause` right after;
    while paused (the caller is busy with a chunk) the deadline does not apply.
    """

    __slots__ = ("_handle", "_loop", "_task", "deadline", "expired", "waiting")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "Watchdog needs a running task"
        self._task = task
        self._handle: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.waiting = False
        self.expired = False

    def expect(self, seconds: float, not_after: float | None = None) -> None:
        """Start a wait that may last ``seconds`` (and never past loop time ``not_after``)."""
        self.deadline = self._loop.time() + seconds
        if not_after is not None and not_after < self.deadline:
            self.deadline = not_after
        self.waiting = True
        if self._handle is None or self._handle.when() > self.deadline:
            self._arm()

    def pause(self) -> None:
        self.waiting = False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def check_cancelled(self) -> bool:
        """After a CancelledError: True (and the cancel undone) if it was our deadline."""
        if self.expired and self._task.uncancel() == 0:
            self.expired = False
            return True
        return False

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(self.deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self.waiting:
            return
        if self._loop.time() >= self.deadline:
            self.expired = True
            self._task.cancel()
        else:
            self._arm()
