"""Discord's sharding as the gateway applies it: which session gets which guild's events,
what a valid ``shard`` is, and the IDENTIFY rate limit per bucket.

A session that identified with ``shard: [k, n]`` gets the guilds with
``(guild_id >> 22) % n == k`` (READY, GUILD_CREATE and every event about them) and, when
k is 0, direct messages. A session without ``shard`` gets everything, as before sharding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from .discord_state import shard_of

CLOSE_INVALID_SHARD = 4010
CLOSE_SHARDING_REQUIRED = 4011
# Discord refuses a session holding more guilds than this ("Sharding required").
MAX_GUILDS_PER_SHARD = 2500
# What /gateway/bot recommends: about one shard per this many guilds.
GUILDS_PER_RECOMMENDED_SHARD = 1000
DISCORD_IDENTIFY_INTERVAL = 5.0  # seconds between IDENTIFYs of one bucket on Discord
# Events whose data is the guild itself (its id in "id"); the others name it in "guild_id".
GUILD_OBJECT_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})


@dataclass
class ShardRules:
    """How strict the emulated gateway is about sharding.

    ``identify_interval``: seconds one bucket (``shard_id % max_concurrency``) must wait
    between IDENTIFYs, else op 9 (Discord: DISCORD_IDENTIFY_INTERVAL); 0, the default, does
    not limit, so tests that reconnect stay fast. ``recommended_shards``: what
    /gateway/bot says (default: from the guild count).
    """

    identify_interval: float = 0.0
    max_concurrency: int = 1
    max_guilds_per_shard: int = MAX_GUILDS_PER_SHARD
    recommended_shards: int | None = None
    _last_identify: dict[int, float] = field(default_factory=dict)

    def recommend(self, guild_count: int) -> int:
        if self.recommended_shards is not None:
            return self.recommended_shards
        return max(1, math.ceil(guild_count / GUILDS_PER_RECOMMENDED_SHARD))

    def may_identify(self, shard: list[int] | None) -> bool:
        """Whether an IDENTIFY now fits its bucket's window; counts it when it does."""
        if self.identify_interval <= 0:
            return True
        bucket = (shard[0] if shard else 0) % self.max_concurrency
        now = time.monotonic()
        last = self._last_identify.get(bucket)
        if last is not None and now - last < self.identify_interval:
            return False
        self._last_identify[bucket] = now
        return True


def valid_shard(value: Any) -> bool:
    """``[shard_id, num_shards]`` with 0 <= shard_id < num_shards."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] < value[1]
    )


def owns(shard: list[int] | None, guild_id: int | None) -> bool:
    """Whether a session identified with ``shard`` gets the events of ``guild_id``
    (None: a direct message, not in any guild)."""
    if shard is None:
        return True
    shard_id, count = shard
    if guild_id is None:
        return shard_id == 0
    return shard_of(guild_id, count) == shard_id


def event_guild(event: str, data: dict[str, Any]) -> int | None:
    """The guild a dispatch is about; None for direct messages (and anything guildless)."""
    raw = data.get("id") if event in GUILD_OBJECT_EVENTS else data.get("guild_id")
    return int(raw) if raw is not None else None
