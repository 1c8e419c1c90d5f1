"""The context window a query asks for, and the token estimates that size what it sends."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.context_window import (
    FROM_CHANNEL,
    FROM_DEFAULT,
    MAX_CHARS_PER_TOKEN,
    MIN_CHARS_PER_TOKEN,
    SAFETY_FACTOR,
    TokenEstimator,
    answer_reserve,
    choose_window,
    prompt_budget,
)
from bot.core.history import CHARS_PER_TOKEN, MESSAGE_OVERHEAD_TOKENS, ChatMessage


def user(chars: int) -> ChatMessage:
    return {"role": "user", "content": "x" * chars}


def counted(chars: int, chars_per_token: float) -> int:
    """What a server whose tokenizer has ``chars_per_token`` counts for ``user(chars)``."""
    return round(chars / chars_per_token) + MESSAGE_OVERHEAD_TOKENS


def test_the_chosen_window_wins_over_the_default_and_the_model_caps_both() -> None:
    assert choose_window(None, FROM_CHANNEL, 8192, 131_072).tokens == 8192
    assert choose_window(None, FROM_CHANNEL, 8192, 131_072).source == FROM_DEFAULT
    chosen = choose_window(16_384, FROM_CHANNEL, 8192, 131_072)
    assert (chosen.tokens, chosen.source, chosen.capped) == (16_384, FROM_CHANNEL, False)
    capped = choose_window(16_384, FROM_CHANNEL, 8192, 2048)
    assert (capped.tokens, capped.capped) == (2048, True)
    assert choose_window(None, FROM_CHANNEL, 8192, 2048).capped
    # An unknown maximum (the server could not tell) leaves the window as chosen.
    assert choose_window(None, FROM_CHANNEL, 8192, None).tokens == 8192


def test_the_answer_keeps_room_in_the_window() -> None:
    assert answer_reserve(8192, None) == 2048
    assert answer_reserve(8192, 100) == 100
    assert answer_reserve(8192, -1) == 2048  # -1: no limit, so the usual share
    assert answer_reserve(8192, 100_000) == 4096  # the prompt keeps half the window
    assert prompt_budget(8192) < 8192 - 2048
    assert prompt_budget(4096, 100) > prompt_budget(4096)


def test_before_learning_the_estimate_assumes_dense_text() -> None:
    tokens = TokenEstimator()
    assert tokens.chars_per_token("llama3.2") == CHARS_PER_TOKEN < 4
    assert tokens.text_tokens("x" * 300, "llama3.2") == 100


def test_the_ratio_is_learned_per_model_from_prompt_eval_count() -> None:
    tokens = TokenEstimator()
    tokens.learn("llama3.2", [user(4000)], counted(4000, 4.0), 8192)
    tokens.learn("qwen3:latest", [user(4000)], counted(4000, 2.0), 8192)
    assert tokens.chars_per_token("llama3.2:latest") == pytest.approx(4.0 * SAFETY_FACTOR)
    assert tokens.chars_per_token("qwen3") == pytest.approx(2.0 * SAFETY_FACTOR)
    assert tokens.chars_per_token("other") == CHARS_PER_TOKEN


def test_one_odd_prompt_moves_the_ratio_only_part_of_the_way() -> None:
    tokens = TokenEstimator()
    for _ in range(3):
        tokens.learn("m", [user(4000)], counted(4000, 4.0), 8192)
    tokens.learn("m", [user(2000)], counted(2000, 2.0), 8192)  # a table, code...
    ratio = tokens.chars_per_token("m") / SAFETY_FACTOR
    assert 3.0 < ratio < 4.0
    for _ in range(20):
        tokens.learn("m", [user(2000)], counted(2000, 2.0), 8192)
    assert tokens.chars_per_token("m") / SAFETY_FACTOR == pytest.approx(2.0, abs=0.01)


def test_learned_ratios_stay_within_bounds() -> None:
    tokens = TokenEstimator()
    tokens.learn("sparse", [user(8000)], 70, 8192)  # a server that miscounts wildly
    tokens.learn("dense", [user(200)], 2000, 8192)
    assert tokens.chars_per_token("sparse") == pytest.approx(MAX_CHARS_PER_TOKEN * SAFETY_FACTOR)
    assert tokens.chars_per_token("dense") == pytest.approx(MIN_CHARS_PER_TOKEN * SAFETY_FACTOR)


def test_a_count_near_the_window_can_only_lower_the_ratio() -> None:
    # Ollama cuts a prompt that overflows and counts only what it kept: chars / count then
    # overstates the ratio, and believing it would make the next prompt overflow more.
    tokens = TokenEstimator()
    tokens.learn("m", [user(20_000)], 4000, 4096)  # 20,000 chars sent, "4000 tokens"
    assert tokens.chars_per_token("m") == CHARS_PER_TOKEN
    tokens.learn("m", [user(9000)], 4000, 4096)  # even a cut prompt bounds the ratio
    assert tokens.chars_per_token("m") == pytest.approx(9000 / 3996 * SAFETY_FACTOR)


def test_short_prompts_and_images_teach_nothing() -> None:
    tokens = TokenEstimator()
    tokens.learn("m", [user(40)], counted(40, 1.0), 8192)
    tokens.learn("m", [{**user(4000), "images": ["aGk="]}], 3000, 8192)
    tokens.learn("m", [user(4000)], None, 8192)
    assert tokens.chars_per_token("m") == CHARS_PER_TOKEN


@settings(max_examples=200, deadline=None)
@given(
    true_ratio=st.floats(1.0, 5.0),
    sizes=st.lists(st.integers(300, 30_000), min_size=1, max_size=15),
)
def test_after_learning_estimates_never_undercount(true_ratio: float, sizes: list[int]) -> None:
    # Whatever the tokenizer, once a model's ratio is learned from honest counts, a text of
    # the same density is never estimated at fewer tokens than the server will count.
    tokens = TokenEstimator()
    for size in sizes:
        tokens.learn("m", [user(size)], counted(size, true_ratio), 1_000_000)
    for size in (500, 5000, 50_000):
        assert tokens.text_tokens("x" * size, "m") >= size / true_ratio
