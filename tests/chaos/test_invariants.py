"""The chaos checks themselves: they must catch a lost, doubled, empty or ghost turn."""

from __future__ import annotations

import pytest

from tests.chaos.invariants import check_turns, turns_of


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


GOOD = [msg("user", "a"), msg("assistant", "A"), msg("user", "b"), msg("tool", "x"),
        msg("assistant", ""), msg("assistant", "B")]  # fmt: skip


def test_turns_pair_each_question_with_its_last_answer() -> None:
    assert turns_of(GOOD) == [("a", "A"), ("b", "B")]


def test_a_whole_history_passes() -> None:
    assert check_turns(GOOD, answered=["a", "b"], unanswered=["c"]) == [("a", "A"), ("b", "B")]


@pytest.mark.parametrize(
    ("messages", "answered", "unanswered", "complaint"),
    [
        (GOOD + GOOD[:2], ["a"], [], "stored more than once"),
        (GOOD, ["a", "c"], [], "answered but not stored"),
        ([msg("user", "a")], ["a"], [], "stored without an answer"),
        (GOOD, [], ["b"], "stored although never answered"),
    ],
)
def test_each_fault_is_caught(
    messages: list[dict[str, str]], answered: list[str], unanswered: list[str], complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_turns(messages, answered=answered, unanswered=unanswered)
