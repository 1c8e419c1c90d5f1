"""The built-in tools, each called through a ToolSet so the registry's error handling is in
the path; the calculator also against Python's own arithmetic (a hypothesis property)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.errors import ModelNotFoundError, OllamaUnavailableError
from bot.core.history import ChatMessage
from bot.core.tools.builtin import (
    EXCERPT_CHARS,
    MAX_CHANNEL_CHARS,
    MAX_CHANNEL_MESSAGES,
    MAX_SEARCH_RESULTS,
    MESSAGE_CHARS,
    builtin_tools,
    calculator_tool,
    current_time_tool,
    read_channel_tool,
    search_conversation_tool,
)
from bot.core.tools.calculator import MAX_NESTING, evaluate
from bot.core.tools.registry import (
    ChannelMessage,
    Tool,
    ToolContext,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    ToolSet,
)

NOON_UTC = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # a Wednesday


async def call(tool: Tool, arguments: object, context: ToolContext | None = None) -> ToolOutcome:
    tools = ToolSet({tool.name: tool}, context or ToolContext())
    [outcome] = await tools.run([{"function": {"name": tool.name, "arguments": arguments}}])
    return outcome


async def calculate(expression: str) -> ToolOutcome:
    return await call(calculator_tool(), {"expression": expression})


async def no_search(session_id: str, text: str, limit: int) -> list[ChatMessage]:
    return []


def test_builtin_tools_and_what_is_on_by_default() -> None:
    registry = ToolRegistry(builtin_tools(no_search))
    assert sorted(registry.names()) == [
        "calculator", "get_current_time", "read_channel", "search_conversation",
    ]  # fmt: skip
    assert sorted(registry.default_names()) == [
        "calculator", "get_current_time", "search_conversation",
    ]  # fmt: skip
    for tool in registry:
        assert tool.source == "builtin"
        schema = tool.schema()["function"]
        assert schema["description"] and schema["parameters"]["type"] == "object"


# --- get_current_time -------------------------------------------------------------------


async def test_time_in_a_zone() -> None:
    outcome = await call(current_time_tool(lambda: NOON_UTC), {"timezone": "Europe/Paris"})
    assert outcome.ok
    assert "2024-05-01 (Wednesday)" in outcome.content
    assert "time: 14:00:00" in outcome.content
    assert "Europe/Paris (CEST, UTC+02:00)" in outcome.content
    assert "iso: 2024-05-01T14:00:00+02:00" in outcome.content


@pytest.mark.parametrize("arguments", [{}, {"timezone": "utc"}, {"timezone": ""}])
async def test_time_defaults_to_utc(arguments: dict[str, str]) -> None:
    outcome = await call(current_time_tool(lambda: NOON_UTC), arguments)
    assert outcome.ok and "time: 12:00:00" in outcome.content
    assert "time zone: UTC (UTC, UTC+00:00)" in outcome.content


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe", "x" * 65])
async def test_an_unknown_zone_is_named(zone: str) -> None:
    outcome = await call(current_time_tool(lambda: NOON_UTC), {"timezone": zone})
    assert outcome.status == "error"
    assert "IANA" in outcome.content
    if len(zone) < 65:
        assert repr(zone) in outcome.content


# --- calculator -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),  # left-associative
        ("2 ** 3 ** 2", "512"),  # right-associative
        ("-2 ** 2", "-4"),  # the sign applies to the power, as in Python
        ("2 ** -1", "0.5"),
        ("--3 + +2", "5"),
        ("7 // 2 + 7 % 2", "4"),
        ("-7 // 2", "-4"),
        ("1 / 4", "0.25"),
        ("0.1 + 0.2", "0.3"),  # 15 significant digits hide the binary noise
        ("1.5e3 + .5", "1500.5"),
        ("2E-3 * 1000", "2"),
        ("sqrt(16) + abs(-3)", "7"),
        ("round(2.567, 2)", "2.57"),
        ("round(2.5)", "2"),
        ("min(3, 1, 2) + max(4, 9)", "10"),
        ("log(e)", "1"),
        ("log(8, 2)", "3"),
        ("sin(0) + cos(0) + tan(0)", "1"),
        ("pi", "3.14159265358979"),
        ("2 ** 100", str(2**100)),  # integers stay exact
    ],
)
async def test_calculator_values(expression: str, value: str) -> None:
    outcome = await calculate(expression)
    assert outcome.ok, outcome.content
    assert outcome.content == f"{expression} = {value}"


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("1 / 0", "division by zero"),
        ("5 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("sqrt(-1)", "sqrt(-1) is not defined"),
        ("log(0)", "log(0) is not defined"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("1 +", "ends too early"),
        ("(1 + 2", "expected ')'"),
        ("1 2", "unexpected '2'"),
        ("2pi", "unexpected 'pi'"),
        ("foo(1)", "unknown name 'foo'"),
        ("sqrt", "needs its arguments in parentheses"),
        ("sqrt(1, 2)", "sqrt takes 1 argument(s), not 2"),
        ("round(1, 0.5)", "round's digits"),
        ("1 $ 2", "unexpected character '$' at position 3"),
        ("   ", "non-empty string"),
    ],
)
async def test_calculator_errors(expression: str, error: str) -> None:
    outcome = await calculate(expression)
    assert outcome.status == "error"
    assert error in outcome.content


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("10 ** 10 ** 10", "too large"),
        ("9 ** 9 ** 9 ** 9", "too large"),
        ("2 ** 4000", "too large"),
        ("(10 ** 900) * (10 ** 900) * (10 ** 900) * (10 ** 900)", "too large"),
        ("1.5 ** 100000", "too large"),
        ("1e999", "too large"),
        ("10 ** 400 / 3", "too large"),
        ("sqrt(10 ** 900)", "too large"),
        ("round(5, -1000000)", "round's digits"),
        ("(" * 200 + "1" + ")" * 200, "nested too deeply"),
        ("-" * 200 + "1", "nested too deeply"),
        ("2" + "**2" * 100, "nested too deeply"),
        ("1" + " + 1" * 2500, "too long"),  # 10k characters
        ("__import__('os').system('true')", "unexpected character"),
        ("().__class__", "unexpected character '.'"),
        ("１ + ２", "unexpected character"),  # full-width digits are not numbers here
    ],
)
async def test_hostile_input_is_refused(expression: str, error: str) -> None:
    outcome = await calculate(expression)
    assert outcome.status == "error"
    assert error in outcome.content


async def test_exact_integers_just_under_the_bound() -> None:
    outcome = await calculate("2 ** 3000 - 2 ** 3000 + 1 ** (10 ** 100)")
    assert outcome.ok and outcome.content.endswith("= 1")


async def test_nesting_within_the_bound_is_fine() -> None:
    depth = MAX_NESTING // 2
    assert evaluate("(" * depth + "1" + ")" * depth) == 1


_LITERAL = st.integers(0, 12).map(str)
# Powers only of literals with small exponents, so no expression reaches the size bound.
_POWER = st.builds(
    lambda base, exponents: "**".join([base, *exponents]),
    _LITERAL,
    st.lists(st.sampled_from(["0", "1", "2", "3", "-1", "-2"]), max_size=2),
)
_EXPRESSIONS = st.recursive(
    _POWER,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner).map(" ".join),
        inner.map(lambda text: f"({text})"),
        inner.map(lambda text: f"-{text}"),
    ),
    max_leaves=10,
)


@given(_EXPRESSIONS)
def test_the_calculator_agrees_with_python(expression: str) -> None:
    try:
        expected: object = eval(expression, {"__builtins__": {}})  # the oracle, on our strings
    except (ZeroDivisionError, OverflowError):
        expected = ToolError
    if expression.count("(") + expression.count("-") + expression.count("**") >= MAX_NESTING:
        expected = None  # deeper than we accept: either answer is fine
    try:
        value: object = evaluate(expression)
    except ToolError:
        value = ToolError
    if expected is not None:
        assert value == expected
        assert type(value) is type(expected)


# --- search_conversation ----------------------------------------------------------------


class FakeSearch:
    def __init__(self, found: list[ChatMessage]) -> None:
        self.found = found
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(self, session_id: str, text: str, limit: int) -> list[ChatMessage]:
        self.calls.append((session_id, text, limit))
        return self.found


async def test_search_finds_turns_of_this_conversation() -> None:
    search = FakeSearch([
        {"role": "user", "content": "my cat is called\nMiso"},
        {"role": "assistant", "content": "Miso is a lovely name."},
    ])  # fmt: skip
    outcome = await call(
        search_conversation_tool(search), {"query": " Miso ", "limit": 3}, ToolContext("s1")
    )
    assert outcome.ok
    assert search.calls == [("s1", "Miso", 3)]
    assert outcome.content.splitlines()[1:] == [
        "user: my cat is called Miso",
        "assistant: Miso is a lovely name.",
    ]


async def test_search_excerpts_are_trimmed_around_the_match() -> None:
    long = "blah " * 500 + "the password is swordfish " + "blah " * 500
    search = FakeSearch([{"role": "user", "content": long}] * 20)
    outcome = await call(
        search_conversation_tool(search), {"query": "swordfish", "limit": 100}, ToolContext("s")
    )
    assert search.calls[0][2] == MAX_SEARCH_RESULTS
    lines = outcome.content.splitlines()[1:]
    assert len(lines) == MAX_SEARCH_RESULTS
    assert all("swordfish" in line and len(line) <= EXCERPT_CHARS + 20 for line in lines)
    assert lines[0].startswith("user: …") and lines[0].endswith("…")


async def test_search_without_a_conversation_or_a_query() -> None:
    search = FakeSearch([])
    outcome = await call(search_conversation_tool(search), {"query": "x"}, ToolContext(None))
    assert outcome.status == "error" and "no conversation here" in outcome.content
    outcome = await call(search_conversation_tool(search), {"limit": 2}, ToolContext("s"))
    assert outcome.status == "error" and "query" in outcome.content
    outcome = await call(search_conversation_tool(search), {"query": "x"}, ToolContext("s"))
    assert outcome.ok and "No message of this conversation contains 'x'" in outcome.content
    outcome = await call(
        search_conversation_tool(search), {"query": "x", "limit": "many"}, ToolContext("s")
    )
    assert outcome.status == "error" and "whole number" in outcome.content
    for limit in ("--5", 2.5, True):
        outcome = await call(
            search_conversation_tool(search), {"query": "x", "limit": limit}, ToolContext("s")
        )
        assert outcome.status == "error" and "whole number" in outcome.content
    await call(search_conversation_tool(search), {"query": "x", "limit": -3}, ToolContext("s"))
    assert search.calls[-1] == ("s", "x", 1)  # clamped


class FakeMeaning:
    """A search by meaning: its results, None (no vectors yet), or an error to raise."""

    def __init__(self, found: list[tuple[ChatMessage, float]] | Exception | None) -> None:
        self.found = found
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(
        self, session_id: str, text: str, limit: int
    ) -> list[tuple[ChatMessage, float]] | None:
        self.calls.append((session_id, text, limit))
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


async def test_search_by_meaning_comes_first() -> None:
    words = FakeSearch([{"role": "user", "content": "never asked for"}])
    meaning = FakeMeaning([
        ({"role": "user", "content": "The release slipped to March."}, 0.8123),
        ({"role": "assistant", "content": "Noted: March."}, 0.61),
    ])  # fmt: skip
    outcome = await call(
        search_conversation_tool(words, meaning),
        {"query": "when do we ship?", "limit": 4},
        ToolContext("s1"),
    )
    assert outcome.ok
    assert meaning.calls == [("s1", "when do we ship?", 4)] and words.calls == []
    header, *lines = outcome.content.splitlines()
    assert "about 'when do we ship?'" in header and "closest in meaning first" in header
    assert lines == [
        "user (0.81): The release slipped to March.",
        "assistant (0.61): Noted: March.",
    ]


@pytest.mark.parametrize(
    "meant",
    [None, [], OllamaUnavailableError("http://127.0.0.1:11434"), ModelNotFoundError("nomic")],
    ids=["no vectors", "nothing close", "ollama down", "model missing"],
)
async def test_search_falls_back_to_the_words(
    meant: list[tuple[ChatMessage, float]] | Exception | None,
) -> None:
    words = FakeSearch([{"role": "user", "content": "the code name is Bluebird"}])
    meaning = FakeMeaning(meant)
    outcome = await call(
        search_conversation_tool(words, meaning), {"query": "Bluebird"}, ToolContext("s")
    )
    assert outcome.ok
    assert meaning.calls and words.calls == [("s", "Bluebird", 5)]
    assert outcome.content.splitlines() == [
        "Messages of this conversation containing 'Bluebird':",
        "user: the code name is Bluebird",
    ]


async def test_builtin_tools_take_the_search_by_meaning() -> None:
    meaning = FakeMeaning([({"role": "user", "content": "found by meaning"}, 0.9)])
    registry = ToolRegistry(builtin_tools(no_search, meaning))
    tool = registry.get("search_conversation")
    assert tool is not None
    outcome = await call(tool, {"query": "anything"}, ToolContext("s"))
    assert outcome.content.endswith("user (0.90): found by meaning")


# --- read_channel -----------------------------------------------------------------------


class FakeChannel:
    def __init__(self, messages: list[ChannelMessage]) -> None:
        self.messages = messages
        self.limits: list[int] = []

    async def recent_messages(self, limit: int) -> list[ChannelMessage]:
        self.limits.append(limit)
        return self.messages[-limit:]


def posted(author: str, content: str) -> ChannelMessage:
    return ChannelMessage(author, content, NOON_UTC)


async def test_read_channel_lines() -> None:
    channel = FakeChannel([
        posted("Ada", "hello\n\neveryone"), posted("Bob", ""), posted("Cy", "x" * 1000),
    ])  # fmt: skip
    outcome = await call(read_channel_tool(), {"limit": "10"}, ToolContext("s", channel))
    assert outcome.ok and channel.limits == [10]
    header, *lines = outcome.content.splitlines()
    assert header == "The last 3 messages of this channel, oldest first:"
    assert lines[:2] == ["Ada: hello everyone", "Bob: (no text)"]
    assert lines[2] == "Cy: " + "x" * (MESSAGE_CHARS - 1) + "…"


async def test_read_channel_bounds_the_count_and_keeps_the_newest() -> None:
    channel = FakeChannel([posted(f"user{i}", f"{i} " + "y" * 400) for i in range(100)])
    outcome = await call(read_channel_tool(), {"limit": 500}, ToolContext(None, channel))
    assert channel.limits == [MAX_CHANNEL_MESSAGES]
    assert len(outcome.content) <= MAX_CHANNEL_CHARS + 100
    header, *lines = outcome.content.splitlines()
    assert "older ones left out" in header
    assert lines[-1].startswith("user99: 99 ")


async def test_read_channel_without_a_reader() -> None:
    outcome = await call(read_channel_tool(), {}, ToolContext("s", None))
    assert outcome.status == "error"
    assert "cannot read this channel's messages" in outcome.content
    assert "Message Content intent" in outcome.content
    outcome = await call(read_channel_tool(), {}, ToolContext("s", FakeChannel([])))
    assert outcome.ok and "no messages" in outcome.content
