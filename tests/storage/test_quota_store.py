"""QuotaStore against a real database (SQLite; PostgreSQL with --db=postgresql): policies and
role overrides, usage added atomically per hour (concurrent adds all count), top users and
pruning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.storage import SessionStore, create_engine, create_sessionmaker, upgrade_database
from bot.storage.quotas import MemberUse, QuotaStore, RoleQuota

GUILD = "guild:1"
OTHER = "guild:2"
TEN = datetime(2026, 12, 1, 10, tzinfo=UTC)
ELEVEN = TEN + timedelta(hours=1)


@pytest.fixture
async def quotas(database_url: str) -> AsyncIterator[QuotaStore]:
    engine = create_engine(database_url)
    await upgrade_database(engine)
    yield QuotaStore(SessionStore(create_sessionmaker(engine)))
    await engine.dispose()


async def test_a_server_without_a_policy_has_none(quotas: QuotaStore) -> None:
    assert await quotas.policy(GUILD) is None
    assert await quotas.delete_policy(GUILD) is False


async def test_limits_and_role_overrides_are_kept_together(quotas: QuotaStore) -> None:
    await quotas.set_role(GUILD, 7, RoleQuota(hour=50_000, day=0))
    policy = await quotas.set_limits(GUILD, per_hour=20_000, per_day=None)
    assert (policy.per_hour, policy.per_day) == (20_000, None)
    await quotas.set_role(GUILD, 8, RoleQuota(exempt=True))
    read = await quotas.policy(GUILD)
    assert read is not None
    assert read.per_hour == 20_000 and read.per_day is None
    assert read.roles == {7: RoleQuota(50_000, 0, False), 8: RoleQuota(None, None, True)}
    await quotas.set_role(GUILD, 7, None)
    read = await quotas.policy(GUILD)
    assert read is not None and set(read.roles) == {8}
    assert await quotas.policy(OTHER) is None
    assert await quotas.delete_policy(GUILD) is True
    assert await quotas.policy(GUILD) is None


async def test_usage_adds_up_per_hour(quotas: QuotaStore) -> None:
    await quotas.add_usage(GUILD, 5, TEN, 100)
    await quotas.add_usage(GUILD, 5, TEN, 250)
    await quotas.add_usage(GUILD, 5, ELEVEN, 7)
    await quotas.add_usage(OTHER, 5, TEN, 1_000)  # another server's
    await quotas.add_usage(GUILD, 6, TEN, 1_000)  # another member's
    assert await quotas.used(GUILD, 5, TEN) == {TEN: 350, ELEVEN: 7}
    assert await quotas.used(GUILD, 5, ELEVEN) == {ELEVEN: 7}


async def test_concurrent_adds_all_count(quotas: QuotaStore) -> None:
    await asyncio.gather(*(quotas.add_usage(GUILD, 5, TEN, 10) for _ in range(20)))
    assert await quotas.used(GUILD, 5, TEN) == {TEN: 200}
    top = await quotas.top_users(GUILD, TEN, 5)
    assert top == [MemberUse(5, 200, 20)]


async def test_top_users_from_a_time_on_most_first(quotas: QuotaStore) -> None:
    yesterday = TEN - timedelta(days=1)
    await quotas.add_usage(GUILD, 1, yesterday, 1_000_000)  # not today
    await quotas.add_usage(GUILD, 2, TEN, 300)
    await quotas.add_usage(GUILD, 2, ELEVEN, 300)
    await quotas.add_usage(GUILD, 3, TEN, 500)
    await quotas.add_usage(GUILD, 4, TEN, 5)
    await quotas.add_usage(OTHER, 9, TEN, 9_999)
    top = await quotas.top_users(GUILD, TEN, 2)
    assert top == [MemberUse(2, 600, 2), MemberUse(3, 500, 1)]


async def test_prune_forgets_old_hours_only(quotas: QuotaStore) -> None:
    old = TEN - timedelta(days=3)
    await quotas.add_usage(GUILD, 1, old, 10)
    await quotas.add_usage(OTHER, 1, old + timedelta(hours=1), 10)
    await quotas.add_usage(GUILD, 1, TEN, 20)
    assert await quotas.prune(TEN - timedelta(days=2)) == 2
    assert await quotas.used(GUILD, 1, old) == {TEN: 20}
    assert await quotas.prune(TEN - timedelta(days=2)) == 0
