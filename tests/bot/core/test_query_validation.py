"""Generation options are checked with one set of rules, for queries and for stored settings."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import OllamaRequestManager
from bot.core.errors import InvalidRequestError
from bot.core.queries import OPTION_RANGES, validate_options

ACCEPTED: list[dict[str, Any]] = [
    {},
    {"temperature": 0, "top_p": 1.0, "top_k": 1, "repeat_penalty": 10},
    {"num_predict": -1, "num_ctx": 8192, "seed": -3},
    {"num_predict": -2, "stop": ["\n\n", "User:"]},
    {"temperature": None, "stop": None},
]
REFUSED: list[dict[str, Any]] = [
    {"temperature": 2.01},
    {"temperature": math.nan},
    {"top_p": math.inf},
    {"temperature": "0.5"},
    {"temperature": True},
    {"top_k": 2.5},
    {"num_ctx": 100},
    {"num_ctx": 4096.0},
    {"seed": 2**64},
    {"num_predict": -3},
    {"stop": "STOP"},
    {"stop": [""]},
    {"stop": ["x"] * 17},
    {"stop": [7]},
]


@pytest.mark.parametrize("options", ACCEPTED)
def test_valid_options_pass(options: dict[str, Any]) -> None:
    validate_options(options)


@pytest.mark.parametrize("options", REFUSED)
def test_invalid_options_are_refused_with_the_option_named(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_options(options)
    assert next(iter(options)) in caught.value.user_message


@given(st.sampled_from(sorted(OPTION_RANGES)), st.floats(allow_nan=True, allow_infinity=True))
def test_a_number_passes_exactly_when_it_lies_in_its_range(name: str, value: float) -> None:
    low, high = OPTION_RANGES[name]
    if name in ("top_k", "num_predict", "num_ctx", "seed"):
        value = int(value) if math.isfinite(value) else value  # type: ignore[assignment]
    expected = isinstance(value, int) or name not in ("top_k", "num_predict", "num_ctx", "seed")
    expected = expected and low <= value <= high
    try:
        validate_options({name: value})
    except InvalidRequestError:
        assert not expected
    else:
        assert expected


async def test_stored_options_are_checked_and_nothing_is_stored(
    manager: OllamaRequestManager,
) -> None:
    await manager.update_session_settings("channel:1", options={"seed": 1})
    with pytest.raises(InvalidRequestError, match="temperature must be between 0 and 2"):
        await manager.update_session_settings("channel:1", options={"temperature": 1e9})
    assert (await manager.get_session_settings("channel:1")).options == {"seed": 1}
