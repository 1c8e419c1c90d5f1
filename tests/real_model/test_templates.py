"""The chat templates and tool-call parsing of the real-model server (no model needed)."""

from __future__ import annotations

from tests.real_model.templates import CHATML, GEMMA, SMOLLM2_SYSTEM, parse_tool_calls

TOOL = {"type": "function", "function": {"name": "clock", "description": "The time"}}


def test_gemma_turns_system_messages_into_user_turns_and_opens_the_models() -> None:
    prompt = GEMMA.render(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ]
    )
    assert prompt == (
        "<start_of_turn>user\nBe brief.<end_of_turn>\n"
        "<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nAgain<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_chatml_puts_the_system_and_tools_first_and_tool_results_in_tool_turns() -> None:
    prompt = CHATML.render(
        [
            {"role": "user", "content": "Time?"},
            {"role": "system", "content": "Be brief."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "clock", "arguments": {}}}],
            },
            {"role": "tool", "content": "12:00", "tool_name": "clock"},
        ],
        [TOOL],
    )
    assert prompt.startswith("<|im_start|>system\nYou are an expert in composing functions.")
    assert '<tools>{"type": "function", "function": {"name": "clock"' in prompt
    assert prompt.endswith(
        "</tool_call>\n\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nTime?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>[{"name": "clock", "arguments": {}}]'
        "</tool_call><|im_end|>\n"
        "<|im_start|>tool\n12:00<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_without_a_system_prompt_uses_the_models_default() -> None:
    assert CHATML.render([{"role": "user", "content": "Hi"}]) == (
        f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_tool_calls_are_parsed_after_the_tag_and_bad_ones_stay_text() -> None:
    one = '<tool_call>\n{"name": "clock", "arguments": {"zone": "UTC"}}\n</tool_call>'
    assert parse_tool_calls(one) == (
        [{"function": {"name": "clock", "arguments": {"zone": "UTC"}}}],
        "",
    )
    listed = (
        '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]</tool_call>'
    )
    calls, rest = parse_tool_calls(listed)
    assert [c["function"]["name"] for c in calls] == ["a", "b"] and rest == ""
    assert parse_tool_calls("<tool_call>\n{not json") == ([], "<tool_call>\n{not json")
    assert parse_tool_calls("<tool_call>[]</tool_call>") == ([], "<tool_call>[]</tool_call>")
    assert parse_tool_calls("The time is noon.") == ([], "The time is noon.")
