"""ConversationHistory and the window rules, with property tests for truncation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot import ConversationHistory
from bot.core.history import ChatMessage, estimate_tokens, fit_window, message_tokens
from bot.core.prompting import assemble


def conversation(n: int) -> list[ChatMessage]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(n)
    ]


def test_seed_api_round_trip() -> None:
    history = ConversationHistory("user_123", max_length=50, max_tokens=4000, system_prompt="Hi")
    history.add_user_message("Hello!")
    history.add_assistant_message("Hi there!", tool_calls=[{"function": {"name": "f"}}])
    messages = history.get_messages()
    assert messages[0] == {"role": "system", "content": "Hi"}
    assert [m["content"] for m in messages[1:]] == ["Hello!", "Hi there!"]
    stats = history.get_statistics()
    assert stats.message_count == 2 and stats.user_messages == 1 and stats.assistant_messages == 1
    assert stats.window_messages == 3
    copy = ConversationHistory.from_dict(history.to_dict())
    assert copy.get_messages() == messages
    assert copy.created_at == history.created_at and copy.max_tokens == 4000


def test_max_length_drops_the_oldest() -> None:
    history = ConversationHistory("s", max_length=3)
    for m in conversation(5):
        history.add_message(m)
    assert [m["content"] for m in history.messages] == ["message 2", "message 3", "message 4"]


def test_window_never_opens_on_an_orphaned_answer() -> None:
    history = ConversationHistory("s", max_length=2)
    for m in conversation(4):  # u a u a -> keeps [u, a]
        history.add_message(m)
    history.add_user_message("next")  # keeps [a, u]: the window must drop the orphan
    assert [m["role"] for m in history.get_messages()] == ["user"]


def test_token_budget_keeps_system_prompt_and_newest() -> None:
    history = ConversationHistory("s", max_tokens=30, system_prompt="You are terse.")
    for i in range(20):
        history.add_user_message(f"question {i} " + "y" * 20)
        history.add_assistant_message(f"answer {i}")
    window = history.get_messages()
    assert window[0]["role"] == "system"
    assert window[-1]["content"] == "answer 19"
    assert sum(message_tokens(m) for m in window) <= 30


def test_estimate_tokens_errs_towards_more_tokens() -> None:
    # English averages about four characters per token; the estimate assumes three.
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 2


roles = st.sampled_from(["user", "assistant"])
messages_strategy = st.lists(
    st.builds(
        lambda role, text: {"role": role, "content": text},
        roles,
        st.text(max_size=120),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    messages=messages_strategy,
    max_messages=st.none() | st.integers(1, 30),
    max_tokens=st.none() | st.integers(1, 400),
)
def test_fit_window_properties(
    messages: list[ChatMessage], max_messages: int | None, max_tokens: int | None
) -> None:
    window = fit_window(messages, max_messages=max_messages, max_tokens=max_tokens)
    # a non-empty, contiguous suffix that ends with the newest message
    assert window and window == messages[len(messages) - len(window) :]
    if max_messages is not None:
        assert len(window) <= max_messages
    if len(window) > 1:
        assert window[0]["role"] == "user"
        if max_tokens is not None:
            assert sum(message_tokens(m) for m in window) <= max_tokens
    # maximal: one more older message would break a limit (or it was an orphan answer)
    start = len(messages) - len(window)
    if start > 0 and window[0]["role"] == "user":
        bigger = messages[start - 1 :]
        over_count = max_messages is not None and len(bigger) > max_messages
        over_tokens = max_tokens is not None and sum(message_tokens(m) for m in bigger) > max_tokens
        orphan_trim = bigger[0]["role"] == "assistant"
        assert over_count or over_tokens or orphan_trim


@settings(max_examples=300, deadline=None)
@given(
    history=messages_strategy,
    system=st.none() | st.text(min_size=1, max_size=200),
    question=st.text(min_size=1, max_size=200),
    max_messages=st.none() | st.integers(1, 30),
    max_tokens=st.none() | st.integers(1, 600),
)
def test_assemble_properties(
    history: list[ChatMessage],
    system: str | None,
    question: str,
    max_messages: int | None,
    max_tokens: int | None,
) -> None:
    new: list[ChatMessage] = [{"role": "user", "content": question}]
    result = assemble(
        system_prompt=system,
        history=history,
        new_messages=new,
        max_messages=max_messages,
        max_tokens=max_tokens,
    )
    # the system prompt always leads, the question always ends
    if system:
        assert result[0] == {"role": "system", "content": system}
    assert result[-1] == new[0]
    middle = result[(1 if system else 0) : -1]
    assert middle == history[len(history) - len(middle) :] or not middle
    if middle:
        assert middle[0]["role"] == "user"
        if max_tokens is not None:
            assert sum(message_tokens(m) for m in result) <= max_tokens
        if max_messages is not None:
            assert len(middle) + 1 <= max_messages


@settings(max_examples=200, deadline=None)
@given(messages=messages_strategy, max_length=st.integers(1, 20))
def test_history_round_trips_and_bounds(messages: list[ChatMessage], max_length: int) -> None:
    history = ConversationHistory("p", max_length=max_length, system_prompt="S")
    for m in messages:
        history.add_message(m)
    assert len(history) == min(len(messages), max_length)
    assert history.messages == messages[-max_length:]
    assert ConversationHistory.from_dict(history.to_dict()).get_messages() == (
        history.get_messages()
    )
