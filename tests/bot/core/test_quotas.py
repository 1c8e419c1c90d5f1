"""Quotas: which limits apply to a member (roles, admins), the clock windows and their
refill times, what an answer costs, the policy cache and the queue cap of admission. A fixed
clock is injected; the store is a real database (SQLite, or PostgreSQL with --db)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.errors import (
    MemberQueueFullError,
    OllamaConnectionLostError,
    QuotaExceededError,
)
from bot.core.queueing import RequestQueue
from bot.core.quotas import (
    POLICY_TTL,
    PRUNE_INTERVAL,
    Limits,
    Member,
    Quotas,
    answer_tokens,
    limits_for,
)
from bot.core.types import OllamaQueryResult
from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.quotas import QuotaRecord, QuotaStore, RoleQuota

GUILD = "guild:1"
HELPER, VIP, PATRON, MUTED = 10, 11, 12, 13
ALICE = Member(GUILD, 100, (1,))
POLICY = QuotaRecord(
    GUILD,
    per_hour=1_000,
    per_day=5_000,
    roles={
        HELPER: RoleQuota(hour=3_000),  # the server's daily limit
        VIP: RoleQuota(hour=0, day=20_000),  # no hourly limit
        PATRON: RoleQuota(exempt=True),
        MUTED: RoleQuota(hour=10, day=10),
    },
)


def member(*roles: int, admin: bool = False) -> Member:
    return Member(GUILD, 100, (1, *roles), admin)


def result(prompt: int | None, generated: int | None, content: str = "") -> OllamaQueryResult:
    return OllamaQueryResult(
        content=content, model="m", done=True, prompt_eval_count=prompt, eval_count=generated
    )


# which limits apply ---------------------------------------------------------------------


def test_no_policy_no_limits() -> None:
    assert limits_for(None, member()) == Limits()
    assert not limits_for(None, member()).limited


def test_the_servers_limits_without_an_overriding_role() -> None:
    assert limits_for(POLICY, member(99)) == Limits(1_000, 5_000)


def test_an_override_keeps_the_servers_limit_where_empty() -> None:
    assert limits_for(POLICY, member(HELPER)) == Limits(3_000, 5_000)


def test_zero_in_an_override_is_no_limit() -> None:
    assert limits_for(POLICY, member(VIP)) == Limits(None, 20_000)


def test_a_stricter_override_applies_to_its_members() -> None:
    assert limits_for(POLICY, member(MUTED)) == Limits(10, 10)


def test_the_most_generous_role_wins_window_by_window() -> None:
    assert limits_for(POLICY, member(MUTED, HELPER)) == Limits(3_000, 5_000)
    assert limits_for(POLICY, member(HELPER, VIP)) == Limits(None, 20_000)


def test_exempt_roles_and_admins_have_no_quota() -> None:
    assert limits_for(POLICY, member(MUTED, PATRON)) == Limits(exempt="role")
    assert limits_for(POLICY, member(MUTED, admin=True)) == Limits(exempt="admin")
    assert not limits_for(POLICY, member(admin=True)).limited


def test_an_everyone_override_is_the_servers_default() -> None:
    everyone = QuotaRecord(GUILD, None, None, {1: RoleQuota(hour=500)})
    assert limits_for(everyone, member()) == Limits(500, None)


# what counts ----------------------------------------------------------------------------


def test_an_answer_costs_its_prompt_and_generated_tokens() -> None:
    assert answer_tokens(result(1_200, 300, "x" * 10)) == 1_500


def test_a_stopped_round_without_counts_is_estimated_from_its_text() -> None:
    assert answer_tokens(result(None, None, "x" * 40)) == 10
    assert answer_tokens(result(None, None, "x" * 41)) == 11
    lost = OllamaConnectionLostError(partial_content="y" * 8)
    assert answer_tokens(None, lost) == 2
    assert answer_tokens(None, None) == 0


# the service ----------------------------------------------------------------------------


@dataclass
class Clocks:
    now: datetime
    mono: float = 0.0


@dataclass
class Setup:
    quotas: Quotas
    store: QuotaStore
    clocks: Clocks
    queue: RequestQueue


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    sessions = SessionStore(create_sessionmaker(engine))
    clocks = Clocks(datetime(2026, 12, 1, 10, 42, 7, tzinfo=UTC))
    queue = RequestQueue(1)
    quotas = Quotas(
        None,
        queue,
        max_queued_per_member=2,
        clock=lambda: clocks.now,
        monotonic=lambda: clocks.mono,
    )
    quotas.open(sessions)
    yield Setup(quotas, QuotaStore(sessions), clocks, queue)
    await engine.dispose()


async def test_quotas_are_off_by_default(setup: Setup) -> None:
    await setup.quotas.record(ALICE, result(10**9, 0))
    await setup.quotas.check(ALICE)  # nothing raised
    usage = await setup.quotas.usage(ALICE)
    assert usage.hour_tokens == 10**9 and not usage.limits.limited


async def test_over_the_hourly_quota_refills_at_the_next_hour(setup: Setup) -> None:
    await setup.quotas.set_limits(GUILD, per_hour=1_000, per_day=0)
    await setup.quotas.record(ALICE, result(600, 300))
    await setup.quotas.check(ALICE)  # 900 of 1,000: may ask
    await setup.quotas.record(ALICE, result(50, 50))
    with pytest.raises(QuotaExceededError) as refused:
        await setup.quotas.check(ALICE)
    error = refused.value
    assert error.window == "hour" and error.limit == 1_000
    assert error.refills_at == datetime(2026, 12, 1, 11, tzinfo=UTC)
    setup.clocks.now = datetime(2026, 12, 1, 11, 0, 1, tzinfo=UTC)
    await setup.quotas.check(ALICE)  # a new hour
    usage = await setup.quotas.usage(ALICE)
    assert (usage.hour_tokens, usage.day_tokens) == (0, 1_000)


async def test_the_daily_quota_sums_the_days_hours_and_refills_at_midnight(
    setup: Setup,
) -> None:
    await setup.quotas.set_limits(GUILD, per_hour=1_000, per_day=1_500)
    setup.clocks.now = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    await setup.quotas.record(ALICE, result(700, 0))
    setup.clocks.now = datetime(2026, 12, 1, 22, 5, tzinfo=UTC)
    await setup.quotas.record(ALICE, result(800, 0))
    with pytest.raises(QuotaExceededError) as refused:
        await setup.quotas.check(ALICE)  # 800 this hour, but 1,500 today
    assert refused.value.window == "day" and refused.value.limit == 1_500
    assert refused.value.refills_at == datetime(2026, 12, 2, tzinfo=UTC)
    setup.clocks.now = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    await setup.quotas.check(ALICE)


async def test_yesterdays_use_does_not_count_today(setup: Setup) -> None:
    await setup.quotas.set_limits(GUILD, per_hour=None, per_day=100)
    setup.clocks.now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    await setup.quotas.record(ALICE, result(100, 0))
    setup.clocks.now = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    await setup.quotas.check(ALICE)
    assert (await setup.quotas.usage(ALICE)).day_tokens == 0


async def test_members_and_servers_are_counted_apart(setup: Setup) -> None:
    await setup.quotas.set_limits(GUILD, per_hour=100, per_day=None)
    await setup.quotas.record(ALICE, result(100, 0))
    await setup.quotas.check(Member(GUILD, 200, (1,)))  # bob
    await setup.quotas.check(Member("guild:2", ALICE.user_id))  # another server: no policy
    with pytest.raises(QuotaExceededError):
        await setup.quotas.check(ALICE)


async def test_an_exempt_role_and_an_admin_ask_past_the_limit(setup: Setup) -> None:
    await setup.quotas.set_limits(GUILD, per_hour=10, per_day=None)
    await setup.quotas.set_role(GUILD, PATRON, RoleQuota(exempt=True))
    patron, admin = member(PATRON), Member(GUILD, 100, (1,), True)
    await setup.quotas.record(patron, result(100, 0))
    await setup.quotas.check(patron)
    await setup.quotas.check(admin)
    with pytest.raises(QuotaExceededError):
        await setup.quotas.check(member())


async def test_own_changes_show_at_once_others_after_the_ttl(setup: Setup) -> None:
    await setup.quotas.record(ALICE, result(100, 0))
    await setup.quotas.check(ALICE)  # caches "no policy"
    await setup.quotas.set_limits(GUILD, per_hour=50, per_day=None)
    with pytest.raises(QuotaExceededError):
        await setup.quotas.check(ALICE)  # at once, in this process
    await setup.quotas.turn_off(GUILD)
    await setup.quotas.check(ALICE)
    # Another process (the store written directly) is seen once the TTL has passed.
    await setup.store.set_limits(GUILD, per_hour=50, per_day=None)
    await setup.quotas.check(ALICE)
    setup.clocks.mono += POLICY_TTL
    with pytest.raises(QuotaExceededError):
        await setup.quotas.check(ALICE)


async def test_old_usage_is_pruned_now_and_then(setup: Setup) -> None:
    old = datetime(2026, 11, 28, 9, tzinfo=UTC)
    await setup.store.add_usage(GUILD, 100, old, 5)
    await setup.quotas.record(ALICE, result(1, 0))  # the first record prunes
    assert await setup.store.used(GUILD, 100, old) == {datetime(2026, 12, 1, 10, tzinfo=UTC): 1}
    await setup.store.add_usage(GUILD, 100, old, 5)
    setup.clocks.mono += PRUNE_INTERVAL / 2
    await setup.quotas.record(ALICE, result(1, 0))
    assert old in await setup.store.used(GUILD, 100, old)  # not yet
    setup.clocks.mono += PRUNE_INTERVAL / 2
    await setup.quotas.record(ALICE, result(1, 0))
    assert old not in await setup.store.used(GUILD, 100, old)


async def test_admission_caps_a_members_questions_and_counts_their_cost(setup: Setup) -> None:
    async with setup.quotas.admit(ALICE) as first, setup.quotas.admit(ALICE):
        assert setup.queue.member_count(ALICE.queue_key) == 2
        with pytest.raises(MemberQueueFullError) as refused:
            async with setup.quotas.admit(ALICE):
                pass
        assert "You already have 2 questions waiting" in refused.value.user_message
        async with setup.quotas.admit(Member(GUILD, 200)):  # bob is not held back
            pass
        assert await first.spent(result(30, 12)) == 42
    assert setup.queue.member_count(ALICE.queue_key) == 0
    async with setup.quotas.admit(ALICE):
        pass
    assert (await setup.quotas.usage(ALICE)).hour_tokens == 42


async def test_over_quota_admission_takes_no_place_in_the_queue(setup: Setup) -> None:
    await setup.quotas.set_limits(GUILD, per_hour=10, per_day=None)
    await setup.quotas.record(ALICE, result(10, 0))
    with pytest.raises(QuotaExceededError):
        async with setup.quotas.admit(ALICE):
            pass
    assert setup.queue.member_count(ALICE.queue_key) == 0


async def test_top_users_are_todays(setup: Setup) -> None:
    await setup.quotas.record(Member(GUILD, 1), result(5, 0))
    await setup.quotas.record(Member(GUILD, 2), result(50, 0))
    setup.clocks.now += timedelta(days=1)
    assert await setup.quotas.top_users(GUILD) == []
    await setup.quotas.record(Member(GUILD, 1), result(7, 0))
    assert [(u.user_id, u.tokens) for u in await setup.quotas.top_users(GUILD)] == [(1, 7)]


class SlowPolicies:
    """A store whose policy reads end when the test says, in any order (as two database
    reads may): the n-th read ends once ``gates[n]`` is set."""

    def __init__(self) -> None:
        self.gates = [asyncio.Event(), asyncio.Event()]
        self.reads = 0

    async def policy(self, scope: str) -> QuotaRecord | None:
        gate = self.gates[self.reads]
        self.reads += 1
        await gate.wait()
        return None


async def test_checks_end_in_the_order_they_began() -> None:
    store = SlowPolicies()
    quotas = Quotas(store, RequestQueue(1), max_queued_per_member=0)  # type: ignore[arg-type]
    ended: list[str] = []

    async def check(name: str, member: Member) -> None:
        await quotas.check(member)
        ended.append(name)

    first = asyncio.create_task(check("first", ALICE))
    second = asyncio.create_task(check("second", Member("guild:2", 200)))
    store.gates[1].set()  # the second read would end first
    for _ in range(5):  # every task runs as far as it can
        await asyncio.sleep(0)
    assert store.reads == 1  # the second check waits for the first, not for the database
    store.gates[0].set()
    await asyncio.gather(first, second)
    assert ended == ["first", "second"]


async def test_a_question_that_never_ran_is_not_counted(setup: Setup) -> None:
    assert await setup.quotas.record(ALICE, None) == 0
    assert await setup.quotas.top_users(GUILD) == []
    stopped_early = result(None, None, "")  # stopped before a word: a question all the same
    await setup.quotas.record(ALICE, stopped_early)
    assert [(u.tokens, u.questions) for u in await setup.quotas.top_users(GUILD)] == [(0, 1)]
