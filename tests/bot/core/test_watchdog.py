"""Watchdog: cancels only a wait that outlives its limit, and says so."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.core.watchdog import Watchdog


async def test_steady_chunks_never_time_out() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(0.1, not_after=loop.time() + 60)
    for _ in range(30):  # 30 chunks 20 ms apart: three times the limit in total
        watchdog.waiting = True
        await asyncio.sleep(0.02)
        watchdog.waiting = False
        watchdog.ticks += 1
    assert not watchdog.expired
    watchdog.close()


async def test_silence_past_the_limit_cancels_the_wait() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(0.1, not_after=loop.time() + 60)
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert watchdog.check_cancelled()
    assert time.monotonic() - started >= 0.1
    watchdog.close()


async def test_busy_reader_is_not_timed_out() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(0.05, not_after=loop.time() + 60)
    watchdog.waiting = False  # the reader is busy with a chunk, not waiting for Ollama
    await asyncio.sleep(0.2)
    assert not watchdog.expired
    watchdog.close()


async def test_overall_deadline_applies_despite_activity() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(10, not_after=loop.time() + 0.1)
    with pytest.raises(asyncio.CancelledError):
        while True:
            await asyncio.sleep(0.01)
            watchdog.ticks += 1
    assert watchdog.check_cancelled() and watchdog.overall_expired
    watchdog.close()


async def test_foreign_cancellation_is_not_mistaken_for_a_timeout() -> None:
    async def waits() -> bool:
        watchdog = Watchdog(10, not_after=asyncio.get_running_loop().time() + 60)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return watchdog.check_cancelled()
        finally:
            watchdog.close()
        return True

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task is False
