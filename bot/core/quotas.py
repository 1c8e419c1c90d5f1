"""Fair use of a shared GPU: per-member token quotas per server, and a cap on one member's
questions in the queue. Discord-free: a front end says who asks (``Member``).

Decisions:

- What counts is the GPU's work for an answer: the prompt tokens Ollama evaluated plus the
  tokens it generated (``prompt_eval_count + eval_count``, summed over tool rounds). A
  stopped or failed answer counts what was reported; where its last round was cut before
  Ollama reported figures, the text written is estimated at ``CHARS_PER_TOKEN``.
- Windows follow the clock, in UTC: the hourly quota counts the current hour (10:00 to
  11:00), the daily one the current day; they refill at the next hour and at midnight.
  A member under quota may ask (one answer can go past the limit); at or over it they are
  refused until the refill.
- A server without a policy has no quotas (off by default). A member who can manage the
  server is exempt, and so is one with an exempt role. Otherwise the most generous of the
  member's roles with an override applies, window by window (an override's empty window
  keeps the server's limit, 0 is no limit); without such a role, the server's limits.
- Policies are cached for ``POLICY_TTL`` seconds; this process's changes show at once,
  another process's (the CLI, another shard) within the TTL.
- Usage is recorded in every scope ("dm" too) for ``/usage`` and ``/stats``; hours older
  than ``USAGE_KEPT`` are pruned every ``PRUNE_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.errors import OllacordError, OllamaError, QuotaExceededError, StorageError
from bot.core.queueing import RequestQueue
from bot.core.types import OllamaQueryResult
from bot.storage.quotas import MemberUse, QuotaRecord, QuotaStore, RoleQuota
from bot.storage.store import SessionStore

log = logging.getLogger(__name__)

POLICY_TTL = 15.0  # seconds a server's policy is trusted without reading it again
USAGE_KEPT = timedelta(days=2)  # /usage and the quotas need today's hours; a margin on top
PRUNE_INTERVAL = 3600.0  # seconds between prunes of old usage
CHARS_PER_TOKEN = 4  # the estimate for text Ollama did not count (a stopped round)
TOP_USERS = 5
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Member:
    """Who asks, where: ``scope`` is "guild:<id>" (or "dm"), with their roles there and
    whether they can manage the server."""

    scope: str
    user_id: int
    role_ids: tuple[int, ...] = ()
    manages_server: bool = False

    @property
    def queue_key(self) -> str:
        # One member's questions anywhere share the cap: the GPU is the same.
        return f"user:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Limits:
    """A member's limits in tokens (None: no limit); ``exempt``: none at all, and why."""

    per_hour: int | None = None
    per_day: int | None = None
    exempt: str | None = None  # "admin" or "role"

    @property
    def limited(self) -> bool:
        return self.exempt is None and (self.per_hour is not None or self.per_day is not None)


@dataclass(frozen=True, slots=True)
class Usage:
    """A member's use this hour and today, their limits and when each window refills."""

    hour_tokens: int
    day_tokens: int
    limits: Limits
    hour_refill: datetime
    day_refill: datetime


def hour_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(now: datetime) -> datetime:
    return hour_start(now).replace(hour=0)


def _override(value: int | None, base: int | None) -> int | None:
    if value is None:
        return base
    return None if value == 0 else value


def _most(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def limits_for(policy: QuotaRecord | None, member: Member) -> Limits:
    """The limits that apply to ``member`` under the server's ``policy``."""
    if policy is None:
        return Limits()
    if member.manages_server:
        return Limits(exempt="admin")
    roles = [policy.roles[r] for r in member.role_ids if r in policy.roles]
    if any(role.exempt for role in roles):
        return Limits(exempt="role")
    if not roles:
        return Limits(policy.per_hour, policy.per_day)
    return Limits(
        _most([_override(role.hour, policy.per_hour) for role in roles]),
        _most([_override(role.day, policy.per_day) for role in roles]),
    )


def answer_tokens(result: OllamaQueryResult | None, error: OllacordError | None = None) -> int:
    """The GPU work of an answer: prompt tokens evaluated and tokens generated, or an
    estimate of the text written where Ollama reported no count."""
    generated: int | None = None
    prompt = 0
    text = ""
    if result is not None:
        prompt = result.prompt_eval_count or 0
        generated = result.eval_count
        text = result.content
    elif isinstance(error, OllamaError):
        text = error.partial_content
    if generated is None:
        generated = -(-len(text) // CHARS_PER_TOKEN)
    return prompt + generated


class Quotas:
    """Checks members against their server's quotas, records what answers cost, and holds
    the per-member cap of the queue."""

    def __init__(
        self,
        store: QuotaStore | None,
        queue: RequestQueue,
        *,
        max_queued_per_member: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self.max_queued_per_member = max_queued_per_member
        self._clock = clock
        self._monotonic = monotonic
        self._policies: dict[str, tuple[float, QuotaRecord | None]] = {}
        self._pruned_at = float("-inf")
        self._checking = asyncio.Lock()

    def open(self, sessions: SessionStore | None) -> None:
        """Keep quotas and usage in the database of ``sessions`` (None: no database, no
        quotas; the queue's cap still holds)."""
        self._store = None if sessions is None else QuotaStore(sessions)

    # asking --------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def admit(self, member: Member) -> AsyncIterator[Ticket]:
        """A question's admission: refused if the member has too many waiting or is over
        quota; the ticket records what the answer cost (``spent``)."""
        with self._queue.member_turn(member.queue_key, self.max_queued_per_member) as leave:
            await self.check(member)
            yield Ticket(self, member, leave)

    async def check(self, member: Member) -> None:
        """Raise ``QuotaExceededError`` if the member is at or over a limit; the day's
        first, as its refill comes later."""
        if self._store is None:
            return
        # One check at a time, in arrival order: two reads of the database may end in
        # either order, and questions must reach the queue in the order they came.
        async with self._checking:
            limits = limits_for(await self.policy(member.scope), member)
            if not limits.limited:
                return
            usage = await self._usage(member, limits)
        if limits.per_day is not None and usage.day_tokens >= limits.per_day:
            raise QuotaExceededError(QuotaExceededError.DAY, limits.per_day, usage.day_refill)
        if limits.per_hour is not None and usage.hour_tokens >= limits.per_hour:
            raise QuotaExceededError(QuotaExceededError.HOUR, limits.per_hour, usage.hour_refill)

    async def record(
        self,
        member: Member,
        result: OllamaQueryResult | None,
        error: OllacordError | None = None,
    ) -> int:
        """Add an answer's cost to the member's hour; how many tokens. A database failure
        is logged, never the answer's failure."""
        tokens = answer_tokens(result, error)
        if self._store is None or (result is None and not tokens):
            return tokens  # no store, or a question that never got to run: nothing spent
        now = self._clock()
        try:
            await self._store.add_usage(member.scope, member.user_id, hour_start(now), tokens)
            if self._monotonic() - self._pruned_at >= PRUNE_INTERVAL:
                self._pruned_at = self._monotonic()
                pruned = await self._store.prune(hour_start(now) - USAGE_KEPT)
                if pruned:
                    log.info("pruned %d hours of token usage", pruned)
        except StorageError:
            log.warning("%s: token usage of member %d not recorded", member.scope, member.user_id)
        return tokens

    # reading -------------------------------------------------------------------------------
    async def usage(self, member: Member) -> Usage:
        limits = limits_for(await self.policy(member.scope), member)
        return await self._usage(member, limits)

    async def _usage(self, member: Member, limits: Limits) -> Usage:
        now = self._clock()
        hour, day = hour_start(now), day_start(now)
        hours = await self._required().used(member.scope, member.user_id, day)
        return Usage(
            hour_tokens=hours.get(hour, 0),
            day_tokens=sum(hours.values()),
            limits=limits,
            hour_refill=hour + HOUR,
            day_refill=day + DAY,
        )

    async def top_users(self, scope: str, limit: int = TOP_USERS) -> list[MemberUse]:
        """Today's (UTC) heaviest users of the server, most tokens first."""
        if self._store is None:
            return []
        return await self._store.top_users(scope, day_start(self._clock()), limit)

    async def policy(self, scope: str) -> QuotaRecord | None:
        if self._store is None:
            return None
        cached = self._policies.get(scope)
        if cached is not None and self._monotonic() - cached[0] < POLICY_TTL:
            return cached[1]
        policy = await self._store.policy(scope)
        self._policies[scope] = (self._monotonic(), policy)
        return policy

    # changing ------------------------------------------------------------------------------
    async def set_limits(
        self, scope: str, *, per_hour: int | None, per_day: int | None
    ) -> QuotaRecord:
        """The server's limits (0 or None: no limit)."""
        store = self._required()
        try:
            return await store.set_limits(scope, per_hour=per_hour or None, per_day=per_day or None)
        finally:
            self._policies.pop(scope, None)

    async def set_role(self, scope: str, role_id: int, quota: RoleQuota | None) -> QuotaRecord:
        store = self._required()
        try:
            return await store.set_role(scope, role_id, quota)
        finally:
            self._policies.pop(scope, None)

    async def turn_off(self, scope: str) -> bool:
        store = self._required()
        try:
            return await store.delete_policy(scope)
        finally:
            self._policies.pop(scope, None)

    def _required(self) -> QuotaStore:
        if self._store is None:
            raise StorageError("Quotas need a database (DATABASE_URL).")
        return self._store


class Ticket:
    """An admitted question's: ``spent`` records its answer's cost once it ends;
    ``answered`` says the member has seen its end (it no longer counts against the cap)."""

    def __init__(
        self, quotas: Quotas, member: Member, answered: Callable[[], None] = lambda: None
    ) -> None:
        self._quotas = quotas
        self.member = member
        self.answered = answered

    async def spent(
        self, result: OllamaQueryResult | None, error: OllacordError | None = None
    ) -> int:
        return await self._quotas.record(self.member, result, error)
