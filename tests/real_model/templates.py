"""Each model's chat template, as Ollama renders it into the prompt the runner evaluates.

Ollama turns /api/chat's messages into one prompt with the model's Go template, then hands
that text to the runner; the model only ever sees the rendered text. These two are written
out in Python after Ollama's library templates for gemma3 (no system role: system messages
become user turns; no tools) and smollm2 (ChatML, with the Qwen-style tool block). The stop
strings are the ones the library's Modelfiles set as `stop` parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

Message = Mapping[str, Any]

TOOL_OPEN: Final = "<tool_call>"
TOOL_CLOSE: Final = "</tool_call>"
# smollm2's Modelfile SYSTEM: what the model hears when a request has no system message.
SMOLLM2_SYSTEM: Final = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# SmolLM2's own tool-calling prompt (its model card's): the tools as JSON, and the calls
# asked for as a JSON list after the tag.
_TOOLS_PREAMBLE: Final = (
    "You are an expert in composing functions. You are given a question and a set of "
    "possible functions. Based on the question, you will need to make one or more "
    "function/tool calls to achieve the purpose. If none of the functions can be used, point "
    "it out and refuse to answer. If the given question lacks the parameters required by the "
    "function, also point it out.\n\nYou have access to the following tools:\n<tools>"
)
_TOOLS_CLOSING: Final = (
    "</tools>\n\nThe output MUST strictly adhere to the following format, and NO other text "
    "MUST be included.\nThe example format is as follows. Please make sure the parameter type "
    "is correct. If no function call is needed, please make the tool calls an empty list "
    "'[]'.\n<tool_call>[\n"
    '{"name": "func_name1", "arguments": {"argument1": "value1", "argument2": "value2"}},\n'
    "... (more tool calls as required)\n]</tool_call>"
)


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    stops: tuple[str, ...]
    tool_tag: str | None  # what starts a tool call in the model's output; None: no tools

    def render(self, messages: Sequence[Message], tools: Sequence[Message] = ()) -> str:
        if self.name == "gemma":
            return _gemma(messages)
        return _chatml(messages, tools)


GEMMA: Final = ChatTemplate("gemma", ("<end_of_turn>",), None)
CHATML: Final = ChatTemplate("chatml", ("<|im_start|>", "<|im_end|>"), TOOL_OPEN)


def _text(message: Message) -> str:
    return str(message.get("content") or "")


def _gemma(messages: Sequence[Message]) -> str:
    out = []
    for index, message in enumerate(messages):
        last = index == len(messages) - 1
        role = message.get("role")
        if role in ("user", "system"):
            out.append(f"<start_of_turn>user\n{_text(message)}<end_of_turn>\n")
            if last:
                out.append("<start_of_turn>model\n")
        elif role == "assistant":
            # A last assistant message is left open: the model continues it.
            out.append(f"<start_of_turn>model\n{_text(message)}")
            if not last:
                out.append("<end_of_turn>\n")
    return "".join(out)


def _chatml(messages: Sequence[Message], tools: Sequence[Message]) -> str:
    system = "\n\n".join(_text(m) for m in messages if m.get("role") == "system")
    if tools:
        listed = "\n".join(json.dumps(t) for t in tools)
        system = _TOOLS_PREAMBLE + listed + _TOOLS_CLOSING + (f"\n\n{system}" if system else "")
    out = [f"<|im_start|>system\n{system or SMOLLM2_SYSTEM}<|im_end|>\n"]
    rest = [m for m in messages if m.get("role") != "system"]
    for index, message in enumerate(rest):
        last = index == len(rest) - 1
        role = message.get("role")
        if role == "user":
            out.append(f"<|im_start|>user\n{_text(message)}<|im_end|>\n")
        elif role == "assistant":
            out.append(f"<|im_start|>assistant\n{_text(message) or _calls(message)}")
            if not last:
                out.append("<|im_end|>\n")
        elif role == "tool":
            out.append(f"<|im_start|>tool\n{_text(message)}<|im_end|>\n")
        if role != "assistant" and last:
            out.append("<|im_start|>assistant\n")
    return "".join(out)


def _calls(message: Message) -> str:
    calls = [
        {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in message.get("tool_calls") or []
    ]
    return f"{TOOL_OPEN}{json.dumps(calls)}{TOOL_CLOSE}" if calls else ""


def parse_tool_calls(text: str) -> tuple[list[dict[str, Any]], str]:
    """The calls in a model's output that begins with the tool tag, and what is left over.

    Like Ollama's parser (tools/tools.go): the JSON after the tag, an object or a list of
    objects each with a `name` and `arguments` (an object), becomes `tool_calls`; output it
    cannot parse stays text. Returns ([], text) when no call parses.
    """
    calls: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    rest = text.strip()
    while rest.startswith(TOOL_OPEN):
        rest = rest[len(TOOL_OPEN) :].lstrip()
        try:
            found, end = decoder.raw_decode(rest)
        except json.JSONDecodeError:
            return [], text
        for obj in found if isinstance(found, list) else [found]:
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                return [], text
            arguments = obj.get("arguments")
            arguments = arguments if isinstance(arguments, dict) else {}
            calls.append({"function": {"name": obj["name"], "arguments": arguments}})
        rest = rest[end:].strip()
        if rest.startswith(TOOL_CLOSE):
            rest = rest[len(TOOL_CLOSE) :].strip()
    return (calls, rest) if calls else ([], text)
