"""The global write budget: within Discord's 50 requests/s, edits never crowd out firsts;
and what the tracker logs of a 429."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.discord_app.rate_limits import (
    EDIT_SHARE,
    WINDOW_SECONDS,
    GlobalWriteBudget,
    RateLimitTracker,
)
from bot.presentation.pacing import FLOOR_INTERVAL


def most_in_any_window(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max(
        sum(1 for t in stamps[i:] if t - start < WINDOW_SECONDS) for i, start in enumerate(stamps)
    )


async def test_no_window_holds_more_than_the_budget() -> None:
    budget = GlobalWriteBudget(per_second=8)
    stamps: list[float] = []

    async def write(reply: int) -> None:
        await budget.acquire(reply, urgent=True)
        stamps.append(time.monotonic())

    await asyncio.gather(*(write(i) for i in range(20)))
    assert len(stamps) == 20
    assert most_in_any_window(stamps) <= 8


async def test_edits_leave_room_for_first_messages_and_finals() -> None:
    budget = GlobalWriteBudget(per_second=10)
    edits_limit = int(10 * EDIT_SHARE)
    for reply in range(edits_limit):
        await budget.acquire(reply, urgent=False)
    # The edits' share is spent: another edit waits, a first message does not.
    edit = asyncio.create_task(budget.acquire(99, urgent=False))
    first = asyncio.create_task(budget.acquire(100, urgent=True))
    await asyncio.sleep(0.05)
    assert first.done() and not edit.done()
    edit.cancel()


async def test_requests_it_did_not_grant_count_too() -> None:
    budget = GlobalWriteBudget(per_second=5)
    for _ in range(5):
        budget.note_request()  # start-up calls, error replies...
    waiting = asyncio.create_task(budget.acquire(1, urgent=True))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()


def test_edits_are_spaced_by_the_number_of_active_replies() -> None:
    now = [100.0]
    budget = GlobalWriteBudget(per_second=48, clock=lambda: now[0])
    assert budget.edit_interval(FLOOR_INTERVAL) == FLOOR_INTERVAL
    for reply in range(50):
        budget._last_write[reply] = now[0]
    spaced = budget.edit_interval(FLOOR_INTERVAL)
    assert spaced == 50 / int(48 * EDIT_SHARE)
    now[0] += 10  # they all finished: nobody is active any more
    assert budget.edit_interval(FLOOR_INTERVAL) == FLOOR_INTERVAL


def test_a_429_is_logged_without_the_interaction_token(caplog: pytest.LogCaptureFixture) -> None:
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQ"
    tracker = RateLimitTracker()
    with caplog.at_level(logging.WARNING, logger="bot.discord_app.rate_limits"):
        tracker.observe(f"/api/v10/webhooks/123/{token}/messages/@original?wait=1", 429, {})
        tracker.observe(f"/api/v10/interactions/456/{token}/callback", 429, {})
    assert tracker.seen_429 == 2
    assert token not in caplog.text
    assert "/webhooks/123/…/messages/@original" in caplog.text
    assert "/interactions/456/…/callback" in caplog.text
