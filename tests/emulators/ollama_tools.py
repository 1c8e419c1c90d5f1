"""Scripted tool calls: what a test asks the model to call, and how the model writes it.

A test describes a tool conversation as rounds of calls and a final answer (ToolScript).
The emulator picks the round from the request itself: the assistant messages with
tool_calls since the last user message are the rounds already played, so a bot that sends
its tool results back simply continues the script, and the final answer can quote those
results to prove they reached the model.

The calls are then written out as the model's raw text in its template's style (a bare
JSON object for llama3.2, `<tool_call>...</tool_call>` for qwen3) and handed to the port
of the server's parser (ollama_toolparse), which decides what the client receives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# The tool-call tags of the templates the emulator imitates (tools/template.go's parseTag
# finds them in the real templates): "{" where the template writes a bare JSON object.
JSON_TAG: Final = "{"
QWEN_TAG: Final = "<tool_call>"

_PLACEHOLDER_RE: Final = re.compile(r"\{tool:([^{}]+)\}|\{tools\}")


@dataclass(frozen=True)
class ToolCall:
    """One call the model makes. `arguments` as a str is the raw text the model writes for
    them, verbatim: the way to script malformed arguments (see ToolScript)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)


CallSpec = ToolCall | tuple[str, Mapping[str, Any] | str] | Mapping[str, Any]


def as_call(spec: CallSpec) -> ToolCall:
    """A ToolCall from a ToolCall, a (name, arguments) pair, or a wire-style dict
    ({"function": {"name", "arguments"}} or just {"name", "arguments"})."""
    if isinstance(spec, ToolCall):
        return spec
    if isinstance(spec, tuple):
        return ToolCall(*spec)
    function = spec.get("function", spec)
    return ToolCall(str(function["name"]), function.get("arguments") or {})


def raw_output(calls: Sequence[ToolCall], tag: str) -> str:
    """The text the model generates for these calls, as its chat template taught it."""
    if tag == JSON_TAG:
        # llama3.2: {"name": "...", "parameters": {...}} (its template says "parameters").
        parts = [f'{{"name": {json.dumps(c.name)}, "parameters": {_args(c)}}}' for c in calls]
        return "\n".join(parts)
    # qwen3 and templates like it: each call in its tag and the tag's closing twin.
    closing = tag.replace("<", "</", 1) if tag.startswith("<") else ""
    parts = [
        f'{tag}\n{{"name": {json.dumps(c.name)}, "arguments": {_args(c)}}}\n{closing}'
        for c in calls
    ]
    return "\n".join(parts)


def _args(call: ToolCall) -> str:
    arguments = call.arguments
    return arguments if isinstance(arguments, str) else json.dumps(dict(arguments))


def offered_names(body: Mapping[str, Any]) -> list[str]:
    """The names of the tools a request offers, in its order."""
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def since_last_user(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The messages after the last user message: the current turn's tool exchange."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return list(messages[last + 1 :])


def tool_results(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(tool name, content) of each tool message of the current turn. A tool message
    without tool_name is matched by position to the calls of the assistant message before
    it, as the tool results of older clients are."""
    results: list[tuple[str, str]] = []
    pending: list[str] = []
    for message in since_last_user(messages):
        if message.get("role") == "assistant":
            calls = message.get("tool_calls") or []
            pending = [str(as_call(c).name) for c in calls if isinstance(c, Mapping)]
        elif message.get("role") == "tool":
            name = message.get("tool_name")
            if name and name in pending:
                pending.remove(name)
            elif not name:
                name = pending.pop(0) if pending else ""
            results.append((str(name), str(message.get("content") or "")))
    return results


def quote_results(template: str, results: Iterable[tuple[str, str]]) -> str:
    """Fill `{tool:NAME}` (the latest result of NAME) and `{tools}` (all results, joined
    by "; "); a result that never came back reads `<no result from NAME>`."""
    listed = list(results)
    latest = dict(listed)

    def fill(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "; ".join(content for _, content in listed)
        name = match.group(1)
        return latest.get(name, f"<no result from {name}>")

    return _PLACEHOLDER_RE.sub(fill, template)


FinalAnswer = str | Callable[[dict[str, Any]], str]


@dataclass
class ToolScript:
    """A multi-round tool conversation: `rounds[k]` is what the model calls once k rounds
    have been played in the current turn; after the last round it answers `final`.

    Several calls in one round are made together, each with its own index. To script a
    model that calls a tool the request did not offer, name one: the parser then cannot
    recognise it (llama3.2's bare JSON reaches the client as text, qwen3's tagged call
    vanishes). Arguments given as a str go out verbatim, so '{"city": "Paris"' or
    "{'city': 'Paris'}" make malformed calls that reach the client the same way.
    """

    rounds: list[list[ToolCall]]
    final: FinalAnswer
    model: str | None = None

    def round_for(self, body: Mapping[str, Any]) -> list[ToolCall] | None:
        """The calls to make now, or None when it is time for the final answer."""
        played = sum(
            1
            for m in since_last_user(body.get("messages") or [])
            if m.get("role") == "assistant" and m.get("tool_calls")
        )
        return self.rounds[played] if played < len(self.rounds) else None

    def final_text(self, body: dict[str, Any]) -> str:
        if callable(self.final):
            return self.final(body)
        return quote_results(self.final, tool_results(body.get("messages") or []))
