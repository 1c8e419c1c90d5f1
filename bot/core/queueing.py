"""Fair admission for queries: one at a time per session, then a slot on an Ollama host, FIFO
everywhere.

Because a session admits one query at a time before it asks for a slot, the slots' FIFO
serves sessions round-robin: a busy channel cannot starve a quiet one. The slots are the
hosts' (``SlotQueue``): one FIFO over all of them, in which a question takes the best free
slot among the hosts that may answer it, and one waiting for a full host does not hold back
one behind it that another host can answer.

Several processes on one database (shards, the CLI, the HTTP API) serialise a session
between them too: inside its lane, a query holds ``conversation_lock`` (the database's,
given by the services) to the end of its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from bot.core.errors import MemberQueueFullError

PositionCallback = Callable[[int], Awaitable[None]]
# (session id, awaited once if another process holds it now) -> held for the block.
ConversationLock = Callable[
    [str, Callable[[], Awaitable[None]]], contextlib.AbstractAsyncContextManager[None]
]
# The QueuedEvent reason while another process answers in the same conversation.
ELSEWHERE = "elsewhere"


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


class Gate(Protocol):
    """What the slots' FIFO needs of a host: how many answers it takes at once, and runs."""

    capacity: int
    active: int


G = TypeVar("G", bound=Gate)


class Claim(Generic[G]):
    """A place in the slots' FIFO: reserved when the question's turn comes (``ready`` once it
    knows which gates may serve it), granted a ``gate``, or withdrawn."""

    __slots__ = ("choose", "eligible", "gate", "gates", "position", "ready", "wake")

    def __init__(self) -> None:
        self.eligible: Callable[[], Sequence[G]] = _none
        self.choose: Callable[[Sequence[G]], G] | None = None
        self.ready = False
        self.gate: G | None = None
        self.gates: frozenset[G] = frozenset()  # eligible at the last dispatch
        self.position = 0
        self.wake = asyncio.Event()


def _none() -> Sequence[Any]:
    return ()


class SlotQueue(Generic[G]):
    """One FIFO of questions over the slots of several gates (one per Ollama host).

    A question reserves its place when its turn comes (``reserve``), before it is planned:
    arrivals are served in order even when a later one is planned sooner. Once planned it
    says which gates may serve it (``eligible``, asked again whenever the queue moves: a
    host may go down or come back meanwhile) and which free one it prefers (``choose``).
    The queue goes through the claims in order and grants each the best free gate it may
    use: a claim whose gates are all full does not hold back one behind it that can use
    another. A claim still being planned keeps one free slot for itself (it may need any
    gate): the claims behind it take only the others.
    """

    def __init__(self) -> None:
        self.gates: list[G] = []
        self._claims: deque[Claim[G]] = deque()

    @property
    def capacity(self) -> int:
        return sum(g.capacity for g in self.gates)

    @property
    def active(self) -> int:
        return sum(g.active for g in self.gates)

    @property
    def waiting(self) -> int:
        return len(self._claims)

    def waiting_for(self, gate: G) -> int:
        """Claims waiting that this gate could serve."""
        return sum(1 for claim in self._claims if gate in claim.gates)

    def reserve(self) -> Claim[G]:
        """A place at the end of the FIFO, for a question about to be planned."""
        claim: Claim[G] = Claim()
        self._claims.append(claim)
        return claim

    def withdraw(self, claim: Claim[G]) -> None:
        """Give up a reserved place that was never used (the planning failed)."""
        if claim.gate is None and claim in self._claims:
            self._claims.remove(claim)
            self.dispatch()

    async def acquire(
        self,
        eligible: Callable[[], Sequence[G]],
        choose: Callable[[Sequence[G]], G],
        on_position: PositionCallback | None = None,
        *,
        claim: Claim[G] | None = None,
        first: bool = False,
    ) -> G:
        """A slot of one of the ``eligible`` gates (never empty), once the claims ahead that
        compete for them are served: at the reserved ``claim``'s place, else at the end, or
        with ``first`` ahead of everyone (a question moving to another host has waited its
        turn already)."""
        if claim is None:
            claim = Claim()
            if first:
                self._claims.appendleft(claim)
            else:
                self._claims.append(claim)
        claim.eligible, claim.choose, claim.ready = eligible, choose, True
        self.dispatch()
        try:
            reported = 0
            while claim.gate is None:
                if on_position is not None and claim.position not in (reported, 0):
                    reported = claim.position
                    await on_position(reported)
                    continue
                await claim.wake.wait()
                claim.wake.clear()
        except BaseException:
            if claim.gate is not None:
                self.release(claim.gate)
            else:
                self.withdraw(claim)
            raise
        return claim.gate

    def release(self, gate: G) -> None:
        gate.active -= 1
        self.dispatch()

    def dispatch(self) -> None:
        """Grant free slots to the claims in order, then tell the others their position.
        Called when a slot frees, a claim comes or goes, and when a host changes state."""
        if not self._claims:
            return
        free_slots = sum(max(0, g.capacity - g.active) for g in self.gates)
        waiting: deque[Claim[G]] = deque()
        planning = 0  # claims ahead still being planned: each keeps a free slot for itself
        for claim in self._claims:
            if not claim.ready:
                planning += 1
                waiting.append(claim)
                continue
            gates = claim.eligible()
            free = [g for g in gates if g.active < g.capacity] if free_slots > planning else []
            if free:
                assert claim.choose is not None
                gate = claim.choose(free)
                gate.active += 1
                claim.gate = gate
                claim.wake.set()
                free_slots -= 1
            else:
                claim.gates = frozenset(gates)
                waiting.append(claim)
        self._claims = waiting
        self._tell_positions()

    def _tell_positions(self) -> None:
        """A claim's position: 1 + the claims ahead of it that compete for one of its gates.
        Not told while a claim ahead is still being planned (it would only go up and down)."""
        claims = self._claims
        single = len(self.gates) <= 1
        for index, claim in enumerate(claims):
            if not claim.ready:
                return
            if single:
                position = index + 1
            else:
                gates = claim.gates
                position = 1 + sum(1 for i in range(index) if not gates.isdisjoint(claims[i].gates))
            if position != claim.position:
                claim.position = position
                claim.wake.set()


class RequestQueue:
    """Serialises queries per session (lanes); the hosts' slots are ``slots``."""

    def __init__(self, max_concurrent: int) -> None:
        # A host's slots when OLLAMA_HOSTS gives it no *N (and OLLAMA_HOST's).
        self.max_concurrent = max_concurrent
        self.slots: SlotQueue[Any] = SlotQueue()
        self._lanes: dict[str, FairGate] = {}
        # None: this process is the database's only one (SQLite, or no database).
        self.conversation_lock: ConversationLock | None = None
        self._elsewhere = 0  # queries waiting while another process answers their session
        self._members: dict[str, int] = {}  # a member's questions waiting or being answered

    def member_count(self, member_key: str) -> int:
        """The member's questions admitted by ``member_turn`` and not yet answered."""
        return self._members.get(member_key, 0)

    @contextlib.contextmanager
    def member_turn(self, member_key: str, cap: int) -> Iterator[Callable[[], None]]:
        """Count a member's question from before it queues to its answer's end, refusing
        it (``MemberQueueFullError``) when they already have ``cap`` (0: no cap): one member
        cannot fill a queue that every member shares. Counted in this process only.

        Yields ``leave``, which stops counting it sooner: once the member has seen the
        whole answer, storing its turn may still take a while under load, and the member
        is free to ask again."""
        count = self._members.get(member_key, 0)
        if cap and count >= cap:
            raise MemberQueueFullError(count)
        self._members[member_key] = count + 1
        counted = True

        def leave() -> None:
            nonlocal counted
            if not counted:
                return
            counted = False
            left = self._members[member_key] - 1
            if left:
                self._members[member_key] = left
            else:
                del self._members[member_key]

        try:
            yield leave
        finally:
            leave()

    @property
    def capacity(self) -> int:
        """Answers at once, on all hosts (before they are opened: one host's)."""
        return self.slots.capacity if self.slots.gates else self.max_concurrent

    @property
    def running(self) -> int:
        return self.slots.active

    @property
    def depth(self) -> int:
        """Queries admitted but not yet running (waiting on their session or on a slot)."""
        lanes = sum(lane.waiting for lane in self._lanes.values())
        return self.slots.waiting + lanes + self._elsewhere

    @contextlib.asynccontextmanager
    async def slot(
        self,
        session_key: str | None,
        on_queued: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """The session's turn. The slot on a host is taken inside it, once the plan has
        chosen the model (``bot.core.hosts.pool.HostPool.lease``)."""

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
                async with contextlib.AsyncExitStack() as held:
                    if session_key is not None and self.conversation_lock is not None:
                        await self._hold_elsewhere(held, session_key, report(ELSEWHERE))
                    yield
            finally:
                if lane is not None:
                    lane.release()
        finally:
            if lane is not None and lane.idle and self._lanes.get(session_key) is lane:
                del self._lanes[session_key]

    async def _hold_elsewhere(
        self, held: contextlib.AsyncExitStack, session_key: str, told: PositionCallback | None
    ) -> None:
        """Take the session's lock among the processes (one waiter per process: the lane's)."""
        assert self.conversation_lock is not None

        async def on_wait() -> None:
            if told is not None:
                await told(1)

        self._elsewhere += 1
        try:
            await held.enter_async_context(self.conversation_lock(session_key, on_wait))
        finally:
            self._elsewhere -= 1
