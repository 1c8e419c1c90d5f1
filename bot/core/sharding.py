"""Discord's sharding in numbers: which shard serves a server, and the SHARD_COUNT and
SHARD_IDS settings (parsed here so bot.core.config stays short)."""

from __future__ import annotations

from collections.abc import Mapping

# A bound on SHARD_COUNT, far above any bot's need (Discord allows up to 2,500 servers per
# shard), so a typo such as SHARD_IDS=0-99999999 is refused instead of filling memory.
MAX_SHARD_COUNT = 100_000
# Discord's snowflakes keep their creation time above bit 22; the shard formula reads it.
SNOWFLAKE_TIMESTAMP_SHIFT = 22
IDS_EXAMPLE = "shard ids such as 0,1 or a range such as 0-3"


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a server's events to. Direct messages go to shard 0."""
    return (guild_id >> SNOWFLAKE_TIMESTAMP_SHIFT) % shard_count


def describe(shard_ids: tuple[int, ...], shard_count: int) -> str:
    """ "shard 1 of 4", "shards 0-3 of 4" or "shards 0, 2 of 4", for logs and /stats."""
    if len(shard_ids) == 1:
        return f"shard {shard_ids[0]} of {shard_count}"
    consecutive = shard_ids == tuple(range(shard_ids[0], shard_ids[-1] + 1))
    listed = f"{shard_ids[0]}-{shard_ids[-1]}" if consecutive else ", ".join(map(str, shard_ids))
    return f"shards {listed} of {shard_count}"


def parse_shard_count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"expected a whole number, got {raw!r}") from None
    if not 1 <= value <= MAX_SHARD_COUNT:
        raise ValueError(f"must be from 1 to {MAX_SHARD_COUNT:,}, got {value}")
    return value


def parse_shard_ids(raw: str) -> tuple[int, ...]:
    """Shard ids written "0,1", "0-3" or both ("0-3,8"): sorted, each once."""
    seen: set[int] = set()
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise ValueError(f"expected {IDS_EXAMPLE}, got {raw!r}") from None
        if high < low:
            raise ValueError(f"the range {low}-{high} runs backwards")
        if high >= MAX_SHARD_COUNT:
            raise ValueError(f"shard {high} is beyond the largest SHARD_COUNT, {MAX_SHARD_COUNT:,}")
        # Refused as soon as one repeats: counting them afterwards took minutes for a range
        # of 100,000 shards, and a range repeated many times would fill the memory first.
        if repeated := sorted(seen.intersection(range(low, high + 1))):
            raise ValueError(f"shard {repeated[0]} is listed twice")
        seen.update(range(low, high + 1))
    if not seen:
        raise ValueError(f"expected {IDS_EXAMPLE}, got {raw!r}")
    return tuple(sorted(seen))


def shard_problems(
    shard_count: int | None, shard_ids: tuple[int, ...] | None, env: Mapping[str, str]
) -> list[str]:
    """SHARD_IDS only means something with SHARD_COUNT, and names shards below it."""
    if shard_ids is None:
        return []
    if shard_count is None:
        if (env.get("SHARD_COUNT") or "").strip():
            return []  # SHARD_COUNT itself was refused, and said so
        return ["SHARD_IDS: needs SHARD_COUNT, the number of shards of the whole bot"]
    beyond = [i for i in shard_ids if i >= shard_count]
    if beyond:
        return [
            f"SHARD_IDS: shard {beyond[0]} does not exist with SHARD_COUNT={shard_count} "
            f"(shards are numbered 0 to {shard_count - 1})"
        ]
    return []
