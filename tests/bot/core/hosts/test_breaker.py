"""The circuit breaker: a host that stops answering leaves the rotation, is probed with
/api/version (backing off) and comes back once it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.core.hosts.breaker import CircuitBreaker
from bot.core.hosts.pool import HostPool
from bot.core.hosts.spec import HostSpec
from tests.emulators.ollama_server import OllamaEmulator
from tests.emulators.ollama_testing import wait_until

QUICK = 0.02  # seconds: the pool's refreshes and the breakers' first cooldown, in these tests


def test_it_opens_after_the_threshold_of_failures_in_a_row() -> None:
    breaker = CircuitBreaker(threshold=3)
    assert [breaker.record_failure() for _ in range(2)] == [False, False]
    assert not breaker.is_open
    breaker.record_success()  # the count is of failures in a row
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.is_open and breaker.state == "open"
    assert breaker.record_failure() is False  # already open: opened once
    assert breaker.opened == 1


def test_probes_back_off_up_to_a_ceiling_and_a_success_closes_it() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=2.0, max_cooldown=10.0)
    breaker.record_failure()
    waits = [breaker.cooldown]
    for _ in range(4):
        breaker.probe_failed()
        waits.append(breaker.cooldown)
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert breaker.record_success() is True
    assert not breaker.is_open and breaker.cooldown == 2.0 and breaker.failures == 0
    assert breaker.record_success() is False


def test_a_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)


@pytest.fixture
async def two() -> AsyncIterator[tuple[OllamaEmulator, OllamaEmulator]]:
    async with OllamaEmulator() as a, OllamaEmulator() as b:
        yield a, b


async def quick_pool(*emulators: OllamaEmulator) -> HostPool:
    pool = HostPool.open(
        [HostSpec(e.url) for e in emulators],
        default_capacity=2,
        timeout=5.0,
        breaker=lambda: CircuitBreaker(threshold=3, cooldown=QUICK, max_cooldown=0.2),
        refresh_interval=QUICK,
        call_timeout=2.0,
    )
    await pool.start()
    return pool


async def test_a_host_that_stops_listening_leaves_the_rotation_and_comes_back(
    two: tuple[OllamaEmulator, OllamaEmulator],
) -> None:
    a, b = two
    pool = await quick_pool(a, b)
    host_a, host_b = pool.hosts
    try:
        assert host_a.up and host_a.has("llama3.2")
        a.refuse_connections()
        await wait_until(lambda: not host_a.up)  # the refreshes of /api/ps failed
        assert [r.up for r in pool.reports()] == [False, True]
        # Out of rotation: questions go to b, though a was first in line and as free.
        leases = [await pool.lease(["llama3.2"]) for _ in range(2)]
        assert [lease.host for lease in leases] == [host_b, host_b]
        for lease in leases:
            lease.release()

        await wait_until(lambda: host_a.breaker.cooldown > QUICK)  # a probe found it down
        probed_from = len(a.requests)
        await a.accept_connections()  # the same port, as after a restart
        await wait_until(lambda: host_a.up)
        assert "/api/version" in [r.path for r in a.requests[probed_from:]]
        lease = await pool.lease(["llama3.2"])
        assert lease.host is host_a  # in rotation again, first in line
        lease.release()
    finally:
        await pool.close()


async def test_when_every_host_is_out_they_are_asked_anyway(
    two: tuple[OllamaEmulator, OllamaEmulator],
) -> None:
    """Nobody to route to: the question goes out and fails as with one server down, rather
    than waiting for a host forever."""
    a, b = two
    pool = await quick_pool(a, b)
    try:
        a.refuse_connections()
        b.refuse_connections()
        await wait_until(lambda: not any(h.up for h in pool.hosts))
        lease = await pool.lease(["llama3.2"])
        assert lease.host in pool.hosts
        lease.release()
    finally:
        await pool.close()
