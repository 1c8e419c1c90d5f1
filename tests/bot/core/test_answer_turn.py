"""AnswerTurn: the rounds of one answer, put together for the result and the stored turn."""

from __future__ import annotations

from bot.core.answer_turn import AnswerTurn
from bot.core.generation import GenerationLimits, GenerationRequest
from bot.core.planning import Plan
from bot.core.queries import build_query
from bot.core.tools.builtin import builtin_tools, no_conversations
from bot.core.tools.registry import ToolOutcome, ToolRegistry

LIMITS = GenerationLimits(
    timeout=10, first_token_timeout=5, idle_timeout=5, max_retries=0, retry_backoff=0
)
CALL = {"function": {"name": "calculator", "arguments": {"expression": "2+2"}}}


def plan(toolset: object = None) -> Plan:
    request = GenerationRequest(
        models=("m",), messages=[], options={}, format=None, keep_alive=None, tools=None,
        think=None, limits=LIMITS,
    )  # fmt: skip
    return Plan(request, toolset, max_tool_rounds=4)  # type: ignore[arg-type]


def test_the_texts_of_rounds_are_paragraphs_and_figures_add_up() -> None:
    turn = AnswerTurn()
    first = turn.next_round()
    first.parts.append("Let me compute that.")
    first.tool_calls.append(CALL)
    first.stats = {"eval_count": 5, "eval_duration": 100}
    turn.add_tool_round([ToolOutcome("calculator", {}, "4", "ok", 0.0)])
    second = turn.next_round()
    second.parts.append("It is 4.")
    second.stats = {"eval_count": 3, "eval_duration": 50}

    result = turn.result(plan(), {})
    assert result.content == "Let me compute that.\n\nIt is 4."
    assert (result.eval_count, result.eval_duration) == (8, 150)
    assert result.tools_used == ["calculator"]
    assert turn.final_text == "It is 4."
    assert [m["role"] for m in turn.exchange] == ["assistant", "tool"]


def test_a_stopped_round_leaves_no_call_without_its_result_in_the_stored_turn() -> None:
    toolset = ToolRegistry(builtin_tools(no_conversations)).select(["calculator"])
    query = build_query({"prompt": "2+2?", "toolset": toolset}, LIMITS, restartable=False)
    turn = AnswerTurn()
    cut = turn.next_round()
    cut.parts.append("Let me compute that.")
    cut.tool_calls.append(CALL)  # stopped while the calculator ran
    result = turn.result(plan(toolset), {}, stopped=True)

    stored = query.turn(result, turn.exchange, turn.final_text)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert "tool_calls" not in stored[-1]
    assert stored[-1]["content"] == "Let me compute that."


def test_a_caller_running_its_own_tools_gets_the_calls_stored() -> None:
    query = build_query(
        {"prompt": "2+2?", "tools": [{"type": "function"}]}, LIMITS, restartable=False
    )
    turn = AnswerTurn()
    turn.next_round().tool_calls.append(CALL)
    stored = query.turn(turn.result(plan(), {}), turn.exchange, turn.final_text)
    assert stored[-1]["tool_calls"] == [CALL]
