"""The Ollama emulator's test-facing API: what the model answers and what goes wrong.

OllamaEmulator inherits this, so the scripting a test does lives apart from the HTTP
plumbing. Everything a request takes (a queued reply, a tool round, a fault, a schema
violation) is taken when the request arrives, so requests waiting in the queue consume
their scripts in arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from .ollama_faults import (
    DROP,
    ERROR_MID,
    FAIL,
    GENERATION_PATHS,
    RUNNER_FAIL,
    RUNNER_STOPPED,
    STALL_BEFORE,
    STALL_MID,
    Fault,
    FaultBook,
)
from .ollama_schema import VIOLATIONS
from .ollama_text import normalize_name
from .ollama_tools import CallSpec, FinalAnswer, ToolCall, ToolScript, as_call, since_last_user


class Reply(NamedTuple):
    """What the model means to say: text, or tool calls (then the text is empty)."""

    text: str
    calls: list[ToolCall] | None = None


class Scripting:
    def __init__(self) -> None:
        self._reply: str | Callable[[dict[str, Any]], str] | None = None
        self._replies: deque[str] = deque()
        self._tool_calls: deque[list[ToolCall]] = deque()
        self._tool_scripts: dict[str | None, ToolScript] = {}
        self._thinking: str | None = None
        self._violations: deque[str] = deque()
        self._faults = FaultBook()

    # -- answers -----------------------------------------------------------------------
    def set_reply(self, reply: str | Callable[[dict[str, Any]], str]) -> None:
        """Every answer from now on (a callable gets the request body)."""
        self._reply = reply

    def queue_replies(self, *replies: str) -> None:
        """The next answers, one per request, before set_reply's."""
        self._replies.extend(replies)

    def set_thinking(self, text: str) -> None:
        self._thinking = text

    def queue_tool_calls(self, calls: Sequence[CallSpec]) -> None:
        """The next chat request that offers tools gets these calls instead of text. Each
        call is a ToolCall, a (name, arguments) pair or a wire-style dict."""
        self._tool_calls.append([as_call(c) for c in calls])

    def script_tools(
        self,
        rounds: Sequence[Sequence[CallSpec]],
        final: FinalAnswer = "{tools}",
        *,
        model: str | None = None,
    ) -> ToolScript:
        """A tool conversation for chat requests that offer tools (to `model`, or to any
        model): round k's calls once k rounds are in the messages since the last user
        message, then `final`, where `{tool:NAME}` quotes the result of NAME the client
        sent back and `{tools}` all of them. It stays until clear_tool_scripts(); a script
        for a model wins over one for any model. See ToolScript for the odd cases."""
        key = normalize_name(model) if model else None
        script = ToolScript([[as_call(c) for c in calls] for calls in rounds], final, key)
        self._tool_scripts[key] = script
        return script

    def clear_tool_scripts(self) -> None:
        self._tool_scripts.clear()

    def violate_schema(self, times: int = 1, *, mode: str = "auto") -> None:
        """The next `times` answers under a `format` break it: "missing" leaves out a
        required property, "type" gives one the wrong type, "invalid" is not even JSON,
        "auto" picks the first that applies. (A real model under a grammar cannot do
        this; a bot that validates anyway is what such a test is for.)"""
        if mode not in VIOLATIONS:
            raise ValueError(f"mode must be one of {VIOLATIONS}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._violations.extend([mode] * times)

    # -- faults ------------------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        error: str = "internal error",
        paths: tuple[str, ...] = ("/api/chat", "/api/generate"),
        prompt: str = "",
    ) -> None:
        """``prompt`` (in every fault method): only requests whose last user message
        contains it take the fault."""
        self._faults.add(Fault(FAIL, count, paths, status=status, error=error, prompt=prompt))

    def stall_before_first_token(self, seconds: float, count: int = 1, *, prompt: str = "") -> None:
        self._faults.add(Fault(STALL_BEFORE, count, seconds=seconds, prompt=prompt))

    def stall_mid_stream(
        self,
        after_tokens: int,
        seconds: float,
        count: int = 1,
        *,
        prompt: str = "",
        paths: tuple[str, ...] = GENERATION_PATHS,
    ) -> None:
        """``paths`` (here, in drop_ and error_mid_stream): PULL_PATHS makes it a pull's fault,
        after that many progress lines."""
        fault = Fault(STALL_MID, count, paths, seconds=seconds, after_tokens=after_tokens)
        self._faults.add(replace(fault, prompt=prompt))

    def drop_mid_stream(
        self,
        after_tokens: int,
        count: int = 1,
        *,
        prompt: str = "",
        paths: tuple[str, ...] = GENERATION_PATHS,
    ) -> None:
        self._faults.add(Fault(DROP, count, paths, after_tokens=after_tokens, prompt=prompt))

    def error_mid_stream(
        self,
        after_tokens: int,
        error: str = "model runner has unexpectedly stopped",
        count: int = 1,
        *,
        prompt: str = "",
        paths: tuple[str, ...] = GENERATION_PATHS,
    ) -> None:
        fault = Fault(ERROR_MID, count, paths, error=error, after_tokens=after_tokens)
        self._faults.add(replace(fault, prompt=prompt))

    def fail_in_runner(
        self, count: int = 1, *, error: str = RUNNER_STOPPED, prompt: str = ""
    ) -> None:
        """The next answers fail once queued and their model loaded, before any token: a 500
        (fail_next's comes before the queue, an error_mid_stream line after the headers)."""
        self._faults.add(Fault(RUNNER_FAIL, count, error=error, prompt=prompt))

    def end_stalls(self) -> None:
        """End the mid-stream stalls under way now (answers' and pulls')."""
        self._faults.end_stalls()

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return self._faults.pending

    # -- taking scripts ----------------------------------------------------------------
    def _decide(self, body: dict[str, Any], model: str, chat: bool, echo: str) -> Reply:
        """Consume what this request answers: queued calls, a tool round, a reply or the
        echo (`echo` is the text of the default answer)."""
        offers_tools = chat and bool(body.get("tools"))
        if offers_tools and self._tool_calls:
            return Reply("", self._tool_calls.popleft())
        script = self._tool_scripts.get(model) or self._tool_scripts.get(None)
        if chat and script is not None:
            if offers_tools and (calls := script.round_for(body)) is not None:
                return Reply("", calls)
            answered = any(m.get("role") == "tool" for m in since_last_user(body["messages"]))
            # Results sent back without tools: the model can only answer now.
            if offers_tools or answered:
                return Reply(script.final_text(body))
        if self._replies:
            return Reply(self._replies.popleft())
        if callable(self._reply):
            return Reply(self._reply(body))
        if self._reply is not None:
            return Reply(self._reply)
        return Reply(echo)

    def _take_violation(self, body: dict[str, Any]) -> str | None:
        if body.get("format") in (None, "") or not self._violations:
            return None
        return self._violations.popleft()
