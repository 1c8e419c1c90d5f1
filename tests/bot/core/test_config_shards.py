"""SHARD_COUNT and SHARD_IDS: which shards this process connects, and every mistake named."""

from __future__ import annotations

import pytest

from bot.core.config import Settings
from bot.core.errors import ConfigError
from bot.core.sharding import MAX_SHARD_COUNT, describe, shard_of


def settings(**env: str) -> Settings:
    return Settings.from_mapping({"DISCORD_TOKEN": "t", **env})


def problems(**env: str) -> str:
    with pytest.raises(ConfigError) as info:
        settings(**env)
    return str(info.value)


def test_unsharded_by_default() -> None:
    s = settings()
    assert (s.shard_count, s.shard_ids, s.shards) == (None, None, ())


def test_shard_count_alone_runs_every_shard_here() -> None:
    assert settings(SHARD_COUNT="4").shards == (0, 1, 2, 3)


@pytest.mark.parametrize(
    ("raw", "shards"),
    [
        ("1", (1,)),
        ("0,1", (0, 1)),
        ("0-3", (0, 1, 2, 3)),
        (" 5 , 0-1 ,", (0, 1, 5)),
        ("7-7", (7,)),
    ],
)
def test_shard_ids_are_lists_and_ranges(raw: str, shards: tuple[int, ...]) -> None:
    s = settings(SHARD_COUNT="8", SHARD_IDS=raw)
    assert s.shard_ids == shards and s.shards == shards


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"SHARD_IDS": "0"}, "SHARD_IDS: needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0-2"}, "shard 2 does not exist with SHARD_COUNT=2"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1-0"}, "the range 1-0 runs backwards"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0-2,2"}, "shard 2 is listed twice"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "one"}, "expected shard ids such as 0,1"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "-1"}, "expected shard ids such as 0,1"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": ","}, "expected shard ids such as 0,1"),
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT: must be from 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT: expected a whole number"),
        ({"SHARD_COUNT": str(MAX_SHARD_COUNT + 1)}, "SHARD_COUNT: must be from 1"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0-999999999"}, "beyond the largest SHARD_COUNT"),
    ],
)
def test_every_mistake_is_named(env: dict[str, str], said: str) -> None:
    assert said in problems(**env)


def test_a_bad_count_is_said_once_not_blamed_on_the_ids() -> None:
    message = problems(SHARD_COUNT="many", SHARD_IDS="0")
    assert "SHARD_COUNT: expected a whole number" in message
    assert "needs SHARD_COUNT" not in message


def test_shard_mistakes_come_with_the_others() -> None:
    message = problems(SHARD_IDS="0", MAX_RETRIES="x")
    assert "SHARD_IDS" in message and "MAX_RETRIES" in message


def test_discords_shard_formula_and_its_words() -> None:
    # The creation time sits above bit 22; the bits below it never matter.
    guild_id = 1_000_006 << 22 | 0x3FFFFF
    assert [shard_of(guild_id, n) for n in (1, 4, 10)] == [0, 2, 6]
    assert describe((1,), 4) == "shard 1 of 4"
    assert describe((0, 1, 2), 4) == "shards 0-2 of 4"
    assert describe((0, 2), 4) == "shards 0, 2 of 4"
