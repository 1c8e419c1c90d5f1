"""How Ollama 0.12.6 turns a model's raw output into tool calls: a port of its parser.

A real server does not receive tool calls from the model: the model writes text (a JSON
object after a tag such as `<tool_call>`, or a bare JSON object for templates without a
tag), and the server's parser (tools/tools.go at v0.12.6) picks calls out of the streamed
text, token by token, keeping back what might still become a call. The emulator writes the
same kind of raw text and runs it through this port, so what a client sees, including the
odd cases (a call to a tool that was not offered, arguments that are not JSON, text that
only looks like a call), is what that parser would make of it rather than our guess.

The port keeps the Go code's structure and names; comments note where Python differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

_LOOKING_FOR_TAG: Final = 0
_TOOL_CALLING: Final = 1
_DONE: Final = 2
# Tags that are JSON itself: such a parser gives up as soon as other text comes first.
_BRACKET_TAGS: Final = ("{", "[")


def _reject_constant(name: str) -> Any:
    # Go's encoding/json knows no NaN or Infinity, which Python's json accepts.
    raise ValueError(name)


def _go_object(text: str) -> dict[str, Any] | None:
    """json.Unmarshal into a map: a JSON object, or None where Go reports an error."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ToolParser:
    """tools.Parser: feed it the model's text chunk by chunk with add()."""

    def __init__(self, tag: str, tool_names: Sequence[str]) -> None:
        self.tag = tag
        self.names = list(tool_names)
        self.state = _LOOKING_FOR_TAG
        self.buffer = ""
        self.n = 0  # calls found so far: each call's "index"

    def add(self, s: str) -> tuple[list[dict[str, Any]], str]:
        """Parser.Add: the calls completed by this chunk and the text to pass on as content."""
        if self.state == _DONE:
            return [], s
        self.buffer += s
        content = ""
        if self.state == _LOOKING_FOR_TAG:
            i, found = self._find_tag()
            if i == -1:
                content, self.buffer = self.buffer, ""
            else:
                content, self.buffer = self.buffer[:i], self.buffer[i:]
            if self.tag in _BRACKET_TAGS and content.strip() != "":
                self.state = _DONE
                return [], content + self.buffer
            if not found:
                return [], content
            self.state = _TOOL_CALLING
        calls: list[dict[str, Any]] = []
        while (call := self._parse_tool_call()) is not None:
            calls.append(call)
        if self._done():
            self.state = _DONE
            content, self.buffer = self.buffer, ""
        return calls, content

    def content(self) -> str:
        """Parser.Content: what is left for the user once the model has finished."""
        if self.n > 0:
            return ""
        return self.buffer if self.tag in _BRACKET_TAGS else ""

    def _find_tag(self) -> tuple[int, bool]:
        if (i := self.buffer.find(self.tag)) > -1:
            return i, True
        # A partial tag at the end is held back until the next chunk decides.
        for i in range(min(len(self.buffer), len(self.tag)), 0, -1):
            if self.buffer.endswith(self.tag[:i]):
                return len(self.buffer) - i, False
        return -1, False

    def _parse_tool_call(self) -> dict[str, Any] | None:
        name, end = _find_tool(self.names, self.buffer)
        if name is None:
            return None
        args, i = _find_arguments(self.buffer)
        if args is None:  # Go: `found == nil`, true for a nil map as well
            return None
        end = max(end, i)
        call = {"function": {"index": self.n, "name": name, "arguments": args}}
        self.n += 1
        self.buffer = self.buffer[end:]
        return call

    def _done(self) -> bool:
        if self.tag not in _BRACKET_TAGS:
            return False
        opening, closing = ("{", "}") if self.tag == "{" else ("[", "]")
        count = 0
        for c in self.buffer:
            if c == opening:
                count += 1
            elif c == closing:
                count -= 1
                if count == 0:
                    return True
        return False


def _find_tool(names: Sequence[str], buf: str) -> tuple[str | None, int]:
    """findTool: the offered name found earliest (longest on a tie) and where it ends."""
    if not buf:
        return None, 0
    longest = ""
    for name in names:
        if len(name) > len(longest):
            longest = name
    # A buffer ending in the start of a name waits: "get" may yet become "get_weather".
    for i in range(1, min(len(buf), len(longest)) + 1):
        tail = buf[-i:]
        if any(len(tail) < len(name) and name.startswith(tail) for name in names):
            return None, 0
    found: str | None = None
    start = end = -1
    for name in names:
        pos = buf.find(name)
        if pos == -1:
            continue
        # A later match, or one as early but no longer, loses to the one already found.
        if found is not None and (pos > start or (pos == start and len(name) <= len(found))):
            continue
        found, start, end = name, pos, pos + len(name)
    return (found, end) if found is not None else (None, 0)


def _find_object(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """findArguments' inner findObject: the arguments of the first object with a "name"."""
    if "name" in obj:
        for key in ("arguments", "parameters"):
            value = obj.get(key)
            if isinstance(value, dict):
                return value, True
            if isinstance(value, str):
                try:
                    decoded = json.loads(value, parse_constant=_reject_constant)
                except ValueError:
                    continue
                # Go unmarshals "null" into a nil map without error: no arguments then.
                if decoded is None or isinstance(decoded, dict):
                    return decoded, True
        return None, True
    # Go ranges over a map in random order; Python's insertion order is one of those orders.
    for value in obj.values():
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, dict):
                result, found = _find_object(child)
                if found:
                    return result, True
    return None, False


def _find_arguments(buffer: str) -> tuple[dict[str, Any] | None, int]:
    """findArguments: the first complete JSON object's arguments and the index of its `}`."""
    start, braces = -1, 0
    in_string = escaped = False
    for i, c in enumerate(buffer):
        if escaped:
            escaped = False
            continue
        if c == "\\":
            escaped = True
            continue
        if c == '"':
            in_string = not in_string
            continue
        if in_string:
            continue
        if c == "{":
            if braces == 0:
                start = i
            braces += 1
        elif c == "}":
            braces -= 1
            if braces == 0 and start != -1:
                data = _go_object(buffer[start : i + 1])
                if data is None:  # not a valid object: keep looking
                    start = -1
                    continue
                args, found = _find_object(data)
                return (args, i) if found else (data, i)
            braces = max(braces, 0)
    return None, 0


def route(
    tokens: Sequence[str], tag: str, tool_names: Sequence[str]
) -> tuple[list[tuple[str, Any] | None], str]:
    """What ChatHandler (server/routes.go) sends for each generated token of a request with
    tools: ("content", text), ("tool_calls", calls) or None when it holds the token back;
    and the content of the final line, where the parser's leftovers go."""
    parser = ToolParser(tag, tool_names)
    steps: list[tuple[str, Any] | None] = []
    for token in tokens:
        calls, content = parser.add(token)
        # A chunk that yields text and calls at once passes the text on and loses the calls.
        if content:
            steps.append(("content", content))
        elif calls:
            steps.append(("tool_calls", calls))
        else:
            steps.append(None)
    # The runner's last response (done: true) has no text: Add("") then Content().
    parser.add("")
    return steps, parser.content()
