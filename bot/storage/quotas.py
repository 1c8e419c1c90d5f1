"""QuotaStore: servers' fair-use quotas and the tokens each member used, per UTC hour.

Usage is one row per (scope, member, hour): recording adds to it in one statement (an
upsert that adds, on SQLite and PostgreSQL alike), so answers ending together in several
processes never lose each other's tokens. A day's use is the sum of its hours' rows.

It works through the SessionStore's plumbing (its single writer: SQLite admits one), one
database session per operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, delete, desc, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession as DbSession

from bot.storage.models import QuotaPolicy, TokenUsage
from bot.storage.store import SessionStore


@dataclass(frozen=True, slots=True)
class RoleQuota:
    """A role's override. ``hour``/``day``: None keeps the server's limit, 0 is no limit;
    ``exempt``: members with the role have no quota at all."""

    hour: int | None = None
    day: int | None = None
    exempt: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"hour": self.hour, "day": self.day, "exempt": self.exempt}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RoleQuota:
        return cls(value.get("hour"), value.get("day"), bool(value.get("exempt", False)))


@dataclass(frozen=True, slots=True)
class QuotaRecord:
    """A server's quotas: tokens per hour and per day (None: no limit), and role overrides
    by role id."""

    scope: str
    per_hour: int | None = None
    per_day: int | None = None
    roles: Mapping[int, RoleQuota] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MemberUse:
    user_id: int
    tokens: int
    questions: int


class QuotaStore:
    def __init__(self, sessions: SessionStore) -> None:
        self._reading = sessions._reading
        self._writing = sessions._writing

    # policies ------------------------------------------------------------------------------
    async def policy(self, scope: str) -> QuotaRecord | None:
        """The server's quotas; None when it has none (quotas are off)."""
        async with self._reading() as db:
            row = await db.get(QuotaPolicy, scope)
            return None if row is None else _record(row)

    async def set_limits(
        self, scope: str, *, per_hour: int | None, per_day: int | None
    ) -> QuotaRecord:
        """The server's own limits (role overrides are kept)."""
        async with self._writing() as db:
            row = await db.get(QuotaPolicy, scope)
            if row is None:
                row = QuotaPolicy(scope=scope, role_overrides={})
                db.add(row)
            row.tokens_per_hour, row.tokens_per_day = per_hour, per_day
            await db.flush()
            return _record(row)

    async def set_role(self, scope: str, role_id: int, quota: RoleQuota | None) -> QuotaRecord:
        """A role's override (None removes it). A server without quotas gets a policy with
        no limits of its own, so that the override applies."""
        async with self._writing() as db:
            row = await db.get(QuotaPolicy, scope)
            if row is None:
                row = QuotaPolicy(scope=scope, role_overrides={})
                db.add(row)
            # A new dict: SQLAlchemy sees a JSON column change only when it is reassigned.
            overrides = dict(row.role_overrides or {})
            if quota is None:
                overrides.pop(str(role_id), None)
            else:
                overrides[str(role_id)] = quota.to_json()
            row.role_overrides = overrides
            await db.flush()
            return _record(row)

    async def delete_policy(self, scope: str) -> bool:
        """Quotas off for the server (usage is kept: /usage and /stats still show it)."""
        async with self._writing() as db:
            result = await db.execute(delete(QuotaPolicy).where(QuotaPolicy.scope == scope))
            return bool(result.rowcount)

    # usage ---------------------------------------------------------------------------------
    async def add_usage(
        self, scope: str, user_id: int, hour: datetime, tokens: int, questions: int = 1
    ) -> None:
        """Add to the member's use in that hour (its start), atomically."""
        async with self._writing() as db:
            await db.execute(_upsert_usage(db, scope, user_id, hour, tokens, questions))

    async def used(self, scope: str, user_id: int, since: datetime) -> dict[datetime, int]:
        """The member's tokens per hour from ``since`` (an hour's start) on."""
        query = select(TokenUsage.hour, TokenUsage.tokens).where(
            TokenUsage.scope == scope, TokenUsage.user_id == user_id, TokenUsage.hour >= since
        )
        async with self._reading() as db:
            return {row.hour: int(row.tokens) for row in (await db.execute(query)).all()}

    async def top_users(self, scope: str, since: datetime, limit: int) -> list[MemberUse]:
        """The members who used the most tokens from ``since`` on, most first."""
        tokens = func.sum(TokenUsage.tokens).label("tokens")
        query = (
            select(TokenUsage.user_id, tokens, func.sum(TokenUsage.questions).label("questions"))
            .where(TokenUsage.scope == scope, TokenUsage.hour >= since)
            .group_by(TokenUsage.user_id)
            .order_by(desc(tokens), TokenUsage.user_id)
            .limit(limit)
        )
        async with self._reading() as db:
            rows = (await db.execute(query)).all()
        return [MemberUse(int(r.user_id), int(r.tokens), int(r.questions)) for r in rows]

    async def prune(self, before: datetime) -> int:
        """Forget the hours that started before ``before``; how many rows went."""
        async with self._writing() as db:
            result = await db.execute(delete(TokenUsage).where(TokenUsage.hour < before))
            return int(result.rowcount or 0)


def _record(row: QuotaPolicy) -> QuotaRecord:
    roles = {int(k): RoleQuota.from_json(v) for k, v in (row.role_overrides or {}).items()}
    return QuotaRecord(row.scope, row.tokens_per_hour, row.tokens_per_day, roles)


def _upsert_usage(
    db: DbSession, scope: str, user_id: int, hour: datetime, tokens: int, questions: int
) -> Insert:
    dialect = db.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(TokenUsage).values(
        scope=scope, user_id=user_id, hour=hour, tokens=tokens, questions=questions
    )
    return statement.on_conflict_do_update(
        index_elements=["scope", "user_id", "hour"],
        set_={
            "tokens": TokenUsage.tokens + statement.excluded.tokens,
            "questions": TokenUsage.questions + statement.excluded.questions,
        },
    )
