"""Stopping gracefully: answers in flight finish, or end with a notice; nothing is cut mid-edit.

Discord-agnostic: the bot (``bot.discord_app.app``) turns SIGTERM and SIGINT into ``drain()``
and then disconnects; ``AnswerRun`` registers itself in ``InFlight`` while it writes an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

log = logging.getLogger(__name__)

# What an answer still running when the grace is over ends with (its text so far is kept).
INTERRUPTED = "⏹️ Interrupted: the bot is restarting; ask again in a moment."
# What a question asked while the bot is stopping gets instead of an answer.
RESTARTING = "The bot is restarting; ask again in a moment."
# After the grace, interrupted answers get this long to show their notice and store what
# they said; whatever is still unfinished then is left to the next start
# (bot.discord_app.live_replies).
INTERRUPT_WAIT = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interruptible(Protocol):
    def interrupt(self, notice: str) -> None:
        """Stop now, like the Stop button, and end with ``notice``."""


class InFlight:
    """The answers being written now, so that a stop can wait for them or interrupt them."""

    def __init__(self) -> None:
        self._runs: set[Interruptible] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False  # set once a stop began: new questions are turned away

    def __len__(self) -> int:
        return len(self._runs)

    @contextlib.contextmanager
    def tracking(self, run: Interruptible) -> Iterator[None]:
        self._runs.add(run)
        self._idle.clear()
        try:
            yield
        finally:
            self._runs.discard(run)
            if not self._runs:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def interrupt(self, notice: str) -> int:
        runs = list(self._runs)
        for run in runs:
            run.interrupt(notice)
        return len(runs)


class Waitable(Protocol):
    async def wait_idle(self, grace: float | None = None) -> bool: ...


async def drain(in_flight: InFlight, manager: Waitable, grace: float, hurry: asyncio.Event) -> None:
    """Turn new questions away, give the answers in flight up to ``grace`` seconds (less if
    ``hurry`` is set meanwhile), then interrupt the rest and let them show their notice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    in_flight.draining = True
    if in_flight:
        log.info("waiting up to %g s for %d answers in flight", grace, len(in_flight))
    if not await _first(in_flight.wait_idle(), hurry, grace):
        count = in_flight.interrupt(INTERRUPTED)
        log.warning("interrupted %d answers still running (their text so far is kept)", count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(in_flight.wait_idle(), INTERRUPT_WAIT)
    # Queries that are not answers being shown (a summary's parts) get what is left.
    await manager.wait_idle(0 if hurry.is_set() else max(0.0, deadline - loop.time()))


async def _first(idle: Awaitable[None], hurry: asyncio.Event, within: float) -> bool:
    """True if ``idle`` (a coroutine) finished before ``hurry`` was set or ``within`` s."""
    idle_task = asyncio.ensure_future(idle)
    hurry_task = asyncio.ensure_future(hurry.wait())
    try:
        await asyncio.wait(
            {idle_task, hurry_task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        return idle_task.done()
    finally:
        for task in (idle_task, hurry_task):
            task.cancel()
        await asyncio.gather(idle_task, hurry_task, return_exceptions=True)


def install_stop_signals(on_stop: Callable[[str], None]) -> Callable[[], None]:
    """Call ``on_stop(signal name)`` on SIGTERM and SIGINT instead of dying at once.

    asyncio.run() would turn SIGINT into KeyboardInterrupt, cancelling the main task in the
    middle of whatever it awaits, and SIGTERM kills outright: both would cut answers.
    Returns a function that restores the previous handling.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_stop, sig.name)
        except (NotImplementedError, RuntimeError):  # not on this platform or thread
            continue
        installed.append(sig)

    def restore() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return restore
