"""Fuzz: the arguments a model gives the bot's own tools (bot/core/tools/builtin.py, run by
registry.ToolSet): wrong types, nested and huge values, JSON strings and garbage, paths such
as ../../etc/passwd, absolute paths and NUL bytes where a time zone or a query goes.

Properties: ToolSet.run never raises; every call gets one outcome, in order, bounded by the
tool's result limit; a path never names a time zone (nothing is read from it: no file's
content comes back); searches and channel reads only ever reach the question's own
conversation and channel.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bot.core.history import ChatMessage
from bot.core.tools.builtin import builtin_tools
from bot.core.tools.registry import (
    MAX_TOOL_CALLS_PER_ROUND,
    ChannelMessage,
    ToolContext,
    ToolRegistry,
)
from tests.fuzz.support import AWKWARD, fuzz

SESSION = "channel:1"
PATHS = [
    "Europe/Paris",
    " utc ",
    "../../etc/passwd",
    "/etc/passwd",
    "/etc/shadow",
    "..",
    ".",
    "Europe/../../../etc/passwd",
    "Europe/Paris\x00",
    "\x00",
    "Europe",
    "zone.tab",
    "tzdata.zi",
    "posixrules",
    "C:\\Windows\\win.ini",
    "~root/.ssh/id_rsa",
    "file:///etc/passwd",
    "Europe/Paris" * 10,
    "\ud800",
]


class Channel:
    """The channel a question was asked in, recording the reads it gets."""

    def __init__(self) -> None:
        self.limits: list[int] = []

    async def recent_messages(self, limit: int) -> list[ChannelMessage]:
        self.limits.append(limit)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        return [ChannelMessage("m\n" * 50, "x" * 5000, now) for _ in range(limit)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
strings = (
    st.sampled_from(PATHS + AWKWARD)
    | st.text(max_size=40)
    | st.integers(0, 100_000).map(lambda n: "9" * n)
)
argument_names = st.sampled_from(["timezone", "expression", "query", "limit", "path", ""])
arguments = (
    st.dictionaries(argument_names, strings | json_values, max_size=4)
    | st.dictionaries(argument_names, strings, max_size=3).map(json.dumps)
    | strings
    | json_values
)
tool_names = st.sampled_from(
    ["get_current_time", "calculator", "search_conversation", "read_channel", "", "../x", "\x00"]
)
calls = st.lists(
    st.builds(lambda n, a: {"function": {"name": n, "arguments": a}}, tool_names, arguments)
    | json_values.map(lambda v: {"function": v} if isinstance(v, dict) else {}),
    max_size=MAX_TOOL_CALLS_PER_ROUND + 2,
)


@fuzz(200)
@given(calls=calls)
@example(
    calls=[
        {"function": {"name": "get_current_time", "arguments": {"timezone": p}}} for p in PATHS[:8]
    ]
)
@example(
    calls=[
        {"function": {"name": "get_current_time", "arguments": {"timezone": p}}}
        for p in PATHS[8:16]
    ]
)
@example(
    calls=[
        {"function": {"name": "get_current_time", "arguments": {"timezone": p}}} for p in PATHS[16:]
    ]
)
@example(calls=[{"function": {"name": "calculator", "arguments": {"expression": "9**9**9**9"}}}])
@example(
    calls=[
        {"function": {"name": "search_conversation", "arguments": '{"query": "x", "limit": "1e9"}'}}
    ]
)
def test_tool_calls_never_escape(calls: list[dict[str, Any]]) -> None:
    searched: list[str] = []

    async def search(session_id: str, text: str, limit: int) -> list[ChatMessage]:
        searched.append(session_id)
        return [{"role": "user", "content": text * 50}] * limit

    channel = Channel()
    registry = ToolRegistry(builtin_tools(search))
    names = ["get_current_time", "calculator", "search_conversation", "read_channel"]
    toolset = registry.select(names, ToolContext(session_id=SESSION, channel=channel))
    outcomes = asyncio.run(toolset.run(calls))

    assert len(outcomes) == len(calls)
    for outcome in outcomes:
        tool = registry.get(outcome.name)
        limit = tool.max_result_chars if tool else 8000
        assert len(outcome.content) <= limit
        assert outcome.status in ("ok", "error", "timeout", "unknown")
        assert outcome.status != "timeout", "a built-in tool hung"
        assert "root:" not in outcome.content, "a file's content came back"
        if outcome.name == "get_current_time" and outcome.ok:
            zone = outcome.arguments.get("timezone")
            if isinstance(zone, str):
                assert ".." not in zone and "\x00" not in zone
                assert not zone.strip().startswith(("/", "\\", "~", "file:"))
    assert set(searched) <= {SESSION}
    assert all(1 <= n <= 50 for n in channel.limits)
