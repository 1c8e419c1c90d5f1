"""The line under an answer: what it says about the model, its figures and its tools."""

from __future__ import annotations

import pytest

from bot.core.types import OllamaQueryResult
from bot.presentation.answer_text import footer


def result(**fields: object) -> OllamaQueryResult:
    return OllamaQueryResult(
        content="An answer.", model="qwen3:latest", done=True, eval_count=40,
        eval_duration=2_000_000_000,
        **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_figures_follow_the_model() -> None:
    assert footer(result()) == "qwen3:latest · 40 tokens · 20.0 tok/s"


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"tools_unavailable": True}, "tools unavailable for this model"),
        ({"tools_without_room": True}, "tools left out: the context window is too small"),
    ],
)
def test_tools_an_admin_chose_but_the_answer_went_without_are_said(
    fields: dict[str, bool], said: str
) -> None:
    assert footer(result(**fields), tools_chosen=True).endswith(f" · {said}")
    assert said not in footer(result(**fields), tools_chosen=False)  # the default tools
