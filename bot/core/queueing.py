"""Fair admission for queries: one at a time per session, a global cap, FIFO everywhere.

Because a session admits one query at a time before it joins the global queue, the global
FIFO serves sessions round-robin: a busy channel cannot starve a quiet one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

PositionCallback = Callable[[int], Awaitable[None]]


class _Waiter:
    __slots__ = ("granted", "wake")

    def __init__(self) -> None:
        self.granted = False
        self.wake = asyncio.Event()


class FairGate:
    """A FIFO semaphore that tells each waiter its position whenever the queue moves."""

    def __init__(self, permits: int) -> None:
        if permits < 1:
            raise ValueError("permits must be at least 1")
        self.permits = permits
        self.active = 0
        self._queue: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return self.active == 0 and not self._queue

    async def acquire(self, on_position: PositionCallback | None = None) -> None:
        if self.active < self.permits and not self._queue:
            self.active += 1
            return
        waiter = _Waiter()
        self._queue.append(waiter)
        try:
            reported = 0
            while not waiter.granted:
                position = self._queue.index(waiter) + 1
                if on_position is not None and position != reported:
                    reported = position
                    await on_position(position)
                if waiter.granted:
                    break
                await waiter.wake.wait()
                waiter.wake.clear()
        except BaseException:
            if waiter.granted:
                self.release()
            else:
                self._queue.remove(waiter)
                self._wake_all()
            raise

    def release(self) -> None:
        self.active -= 1
        if self._queue and self.active < self.permits:
            waiter = self._queue.popleft()
            waiter.granted = True
            self.active += 1
            waiter.wake.set()
        self._wake_all()

    def _wake_all(self) -> None:
        for waiter in self._queue:
            waiter.wake.set()


class RequestQueue:
    """Serialises queries per session and caps how many run at once."""

    def __init__(self, max_concurrent: int) -> None:
        self._capacity = FairGate(max_concurrent)
        self._lanes: dict[str, FairGate] = {}

    @property
    def capacity(self) -> int:
        return self._capacity.permits

    @property
    def running(self) -> int:
        return self._capacity.active

    @property
    def depth(self) -> int:
        """Queries admitted but not yet running (waiting on their session or on capacity)."""
        return self._capacity.waiting + sum(lane.waiting for lane in self._lanes.values())

    @contextlib.asynccontextmanager
    async def slot(
        self,
        session_key: str | None,
        on_queued: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        def report(reason: str) -> PositionCallback | None:
            if on_queued is None:
                return None

            async def callback(position: int) -> None:
                await on_queued(position, reason)

            return callback

        lane = None
        if session_key is not None:
            lane = self._lanes.setdefault(session_key, FairGate(1))
        try:
            if lane is not None:
                await lane.acquire(report("session"))
            try:
                await self._capacity.acquire(report("capacity"))
                try:
                    yield
                finally:
                    self._capacity.release()
            finally:
                if lane is not None:
                    lane.release()
        finally:
            if lane is not None and lane.idle and self._lanes.get(session_key) is lane:
                del self._lanes[session_key]
