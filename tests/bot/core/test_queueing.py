"""FairGate, RequestQueue and the hosts' SlotQueue: FIFO admission, positions, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from bot.core.errors import MemberQueueFullError
from bot.core.queueing import FairGate, RequestQueue, SlotQueue


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
    host = FakeHost("the one host")
    queue.slots.gates.append(host)
    order: list[str] = []

    async def job(session: str, i: int) -> None:
        async with queue.slot(session):
            await queue.slots.acquire(only_on(host), first_free)
            order.append(f"{session}{i}")
            await asyncio.sleep(0.001)
            queue.slots.release(host)

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


# The hosts' slots: one FIFO over several gates -----------------------------------------------


@dataclass(eq=False)
class FakeHost:
    name: str
    capacity: int = 1
    active: int = 0


def only_on(*gates: FakeHost) -> Callable[[], list[FakeHost]]:
    return lambda: list(gates)


def first_free(free: Sequence[FakeHost]) -> FakeHost:
    return free[0]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_claim_waiting_for_a_full_gate_holds_back_nobody_for_another() -> None:
    a, b = FakeHost("a"), FakeHost("b")
    slots: SlotQueue[FakeHost] = SlotQueue()
    slots.gates.extend([a, b])
    assert await slots.acquire(only_on(a), first_free) is a
    positions: list[int] = []

    async def report(position: int) -> None:
        positions.append(position)

    waiting = asyncio.create_task(slots.acquire(only_on(a), first_free, report))
    await settle()
    assert positions == [1] and not waiting.done()
    assert (slots.waiting_for(a), slots.waiting_for(b)) == (1, 0)
    # Behind the one waiting for a, but b is free: it goes at once.
    assert await asyncio.wait_for(slots.acquire(only_on(a, b), first_free), 1) is b
    slots.release(a)
    assert await asyncio.wait_for(waiting, 1) is a
    assert (a.active, b.active, slots.waiting) == (1, 1, 0)


async def test_positions_count_only_the_claims_competing_for_the_same_gates() -> None:
    a, b = FakeHost("a"), FakeHost("b")
    slots: SlotQueue[FakeHost] = SlotQueue()
    slots.gates.extend([a, b])
    await slots.acquire(only_on(a), first_free)
    await slots.acquire(only_on(b), first_free)
    seen: dict[str, list[int]] = {"on a": [], "on b": [], "either": []}
    tasks = []
    for name, gates in (("on a", (a,)), ("on b", (b,)), ("either", (a, b))):

        async def report(position: int, name: str = name) -> None:
            seen[name].append(position)

        tasks.append(asyncio.create_task(slots.acquire(only_on(*gates), first_free, report)))
        await settle()
    assert seen == {"on a": [1], "on b": [1], "either": [3]}
    slots.release(b)  # "on b" takes it; "either" moves up behind "on a" alone
    await settle()
    assert seen["either"] == [3, 2]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert slots.waiting == 0


async def test_a_reserved_place_keeps_its_turn_while_it_is_planned() -> None:
    a = FakeHost("a")
    slots: SlotQueue[FakeHost] = SlotQueue()
    slots.gates.append(a)
    early = slots.reserve()  # came first, still being planned
    late = asyncio.create_task(slots.acquire(only_on(a), first_free))
    await settle()
    assert not late.done() and a.active == 0  # the free slot waits for the earlier one
    assert await slots.acquire(only_on(a), first_free, claim=early) is a
    slots.release(a)
    assert await asyncio.wait_for(late, 1) is a


async def test_a_place_being_planned_keeps_one_slot_and_leaves_the_others() -> None:
    a = FakeHost("a", capacity=2)
    slots: SlotQueue[FakeHost] = SlotQueue()
    slots.gates.append(a)
    early = slots.reserve()
    assert await asyncio.wait_for(slots.acquire(only_on(a), first_free), 1) is a
    third = asyncio.create_task(slots.acquire(only_on(a), first_free))
    await settle()
    assert not third.done()  # the last free slot is the planned one's
    assert await asyncio.wait_for(slots.acquire(only_on(a), first_free, claim=early), 1) is a
    assert not third.done() and a.active == 2
    slots.release(a)
    assert await asyncio.wait_for(third, 1) is a


async def test_a_withdrawn_place_lets_the_next_one_go() -> None:
    a = FakeHost("a")
    slots: SlotQueue[FakeHost] = SlotQueue()
    slots.gates.append(a)
    failed_to_plan = slots.reserve()
    late = asyncio.create_task(slots.acquire(only_on(a), first_free))
    await settle()
    assert not late.done()
    slots.withdraw(failed_to_plan)
    assert await asyncio.wait_for(late, 1) is a
    slots.withdraw(failed_to_plan)  # twice: nothing happens
    assert slots.waiting == 0 and a.active == 1


async def test_a_moving_question_goes_ahead_of_the_queue() -> None:
    a = FakeHost("a")
    slots: SlotQueue[FakeHost] = SlotQueue()
    slots.gates.append(a)
    await slots.acquire(only_on(a), first_free)
    queued = asyncio.create_task(slots.acquire(only_on(a), first_free))
    await settle()
    moving = asyncio.create_task(slots.acquire(only_on(a), first_free, first=True))
    await settle()
    slots.release(a)
    assert await asyncio.wait_for(moving, 1) is a
    assert not queued.done()
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)


def test_a_member_is_capped_and_others_are_not() -> None:
    queue = RequestQueue(1)
    with queue.member_turn("user:1", 3), queue.member_turn("user:1", 3):
        with queue.member_turn("user:1", 3):
            with pytest.raises(MemberQueueFullError) as refused, queue.member_turn("user:1", 3):
                pass
            assert refused.value.waiting == 3
            assert refused.value.user_message == (
                "You already have 3 questions waiting; ask again when one is answered."
            )
            with queue.member_turn("user:2", 3):  # another member
                assert queue.member_count("user:2") == 1
        assert queue.member_count("user:1") == 2
        with queue.member_turn("user:1", 3):  # one was answered: room again
            pass
    assert queue.member_count("user:1") == 0


def test_a_member_leaves_the_count_once_their_answer_is_shown() -> None:
    queue = RequestQueue(1)
    with queue.member_turn("user:1", 1) as leave:
        leave()  # the answer is shown; its turn is still being stored
        assert queue.member_count("user:1") == 0
        with queue.member_turn("user:1", 1):  # asking again is allowed
            leave()  # once only: the other question still counts
            assert queue.member_count("user:1") == 1
    assert queue.member_count("user:1") == 0


def test_no_cap_with_zero() -> None:
    queue = RequestQueue(1)
    with contextlib.ExitStack() as held:
        for _ in range(50):
            held.enter_context(queue.member_turn("user:1", 0))
        assert queue.member_count("user:1") == 50
