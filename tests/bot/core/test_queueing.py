"""FairGate and RequestQueue: FIFO admission, positions, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.queueing import FairGate, RequestQueue


async def test_gate_admits_in_fifo_order() -> None:
    gate = FairGate(1)
    await gate.acquire()
    order: list[int] = []

    async def worker(i: int) -> None:
        await gate.acquire()
        order.append(i)
        await asyncio.sleep(0)
        gate.release()

    tasks = [asyncio.create_task(worker(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert gate.waiting == 5
    gate.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert gate.idle


async def test_positions_move_up_as_the_queue_drains() -> None:
    gate = FairGate(1)
    await gate.acquire()
    seen: dict[int, list[int]] = {0: [], 1: []}

    async def waiter(i: int) -> None:
        async def report(position: int) -> None:
            seen[i].append(position)

        await gate.acquire(report)
        await asyncio.sleep(0.01)  # hold the permit so the next waiter sees itself move up
        gate.release()

    tasks = [asyncio.create_task(waiter(i)) for i in range(2)]
    await asyncio.sleep(0.01)
    gate.release()
    await asyncio.gather(*tasks)
    assert seen == {0: [1], 1: [2, 1]}


async def test_cancelled_waiter_leaves_the_queue() -> None:
    gate = FairGate(1)
    await gate.acquire()
    stuck = asyncio.create_task(gate.acquire())
    behind: list[int] = []

    async def report(position: int) -> None:
        behind.append(position)

    after = asyncio.create_task(gate.acquire(report))
    await asyncio.sleep(0.01)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    await asyncio.sleep(0.01)
    assert behind == [2, 1]
    gate.release()
    await asyncio.wait_for(after, 1)
    assert gate.active == 1 and gate.waiting == 0


async def test_queue_is_fair_across_sessions() -> None:
    """A session with many queued queries does not starve another session."""
    queue = RequestQueue(max_concurrent=1)
    order: list[str] = []

    async def job(session: str, i: int) -> None:
        async with queue.slot(session):
            order.append(f"{session}{i}")
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(job("a", i)) for i in range(4)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(job("b", 0)))
    await asyncio.gather(*tasks)
    assert order.index("b0") <= 2
    assert queue.depth == 0 and queue.running == 0
    assert not queue._lanes  # lanes of finished sessions are dropped


def test_gate_needs_a_permit() -> None:
    with pytest.raises(ValueError):
        FairGate(0)
