"""Fuzz: history truncation (bot/core/history.py, prompting.assemble, context_window.py) and
the running summary (bot/core/memory/summary.py with MemoryStore.fold_state).

Conversations are generated turn by turn as the bot stores them (a question, tool rounds of
an assistant's calls and their results, an answer), with awkward text. Properties: the system
prompt leads and the question ends every prompt; the history sent is the newest stored
messages, contiguous, opening on a question, so a tool call is never sent without its results
or a result without its call; the token and message bounds hold whenever history is sent; the
summary folds exactly the stored messages the window no longer sends, and stays in bounds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.core.context_window import (
    MAX_CHARS_PER_TOKEN,
    MIN_CHARS_PER_TOKEN,
    TokenEstimator,
    prompt_budget,
)
from bot.core.history import ChatMessage, ConversationHistory, message_tokens
from bot.core.memory.summary import bounded, fold_prompt
from bot.core.prompting import assemble
from bot.storage.memory import FoldState, StoredText
from tests.fuzz.support import awkward_text, fuzz
from tests.storage.stores import Stores, stores_of

text = awkward_text(80)


@st.composite
def turns(draw: st.DrawFn) -> list[ChatMessage]:
    """One stored turn: the question, tool rounds (calls, then one result per call), the answer."""
    turn: list[ChatMessage] = [{"role": "user", "content": draw(text)}]
    for _ in range(draw(st.integers(0, 2))):
        calls = draw(st.integers(1, 3))
        turn.append(
            {
                "role": "assistant",
                "content": draw(text),
                "tool_calls": [
                    {"function": {"name": f"t{i}", "arguments": {}}} for i in range(calls)
                ],
            }
        )
        turn += [
            {"role": "tool", "content": draw(text), "tool_name": f"t{i}"} for i in range(calls)
        ]
    turn.append({"role": "assistant", "content": draw(text)})
    return turn


conversations = st.lists(turns(), max_size=12).map(lambda ts: list(itertools.chain(*ts)))


def check_tool_pairs(messages: list[ChatMessage]) -> None:
    """Every tool result follows its call's assistant message, and every call has its results."""
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            j = i
            while j > 0 and messages[j - 1]["role"] == "tool":
                j -= 1
            assert j > 0 and messages[j - 1].get("tool_calls"), f"result {i} without its call"
        if m.get("tool_calls"):
            results = messages[i + 1 : i + 1 + len(m["tool_calls"])]
            assert [r["role"] for r in results] == ["tool"] * len(m["tool_calls"]), (
                f"call {i} without its results"
            )


@fuzz(50)
@given(
    history=conversations,
    system=st.none() | awkward_text(300),
    question=awkward_text(300).filter(str.strip),
    max_messages=st.none() | st.integers(1, 40),
    max_tokens=st.none() | st.integers(1, 800),
    chars_per_token=st.floats(MIN_CHARS_PER_TOKEN, MAX_CHARS_PER_TOKEN),
)
@example(
    history=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "t0"}}]},
        {"role": "tool", "content": "r", "tool_name": "t0"},
        {"role": "assistant", "content": "a"},
    ],
    system="S",
    question="next",
    max_messages=3,
    max_tokens=None,
    chars_per_token=3.0,
)
def test_prompt_keeps_system_question_newest_and_tool_pairs(
    history: list[ChatMessage],
    system: str | None,
    question: str,
    max_messages: int | None,
    max_tokens: int | None,
    chars_per_token: float,
) -> None:
    def cost(m: ChatMessage) -> int:
        return int(len(m.get("content", "")) / chars_per_token) + 4

    new: list[ChatMessage] = [{"role": "user", "content": question}]
    sent = assemble(
        system_prompt=system,
        history=history,
        new_messages=new,
        max_messages=max_messages,
        max_tokens=max_tokens,
        cost=cost,
    )
    if system:
        assert sent[0] == {"role": "system", "content": system}
    assert sent[-1] == new[0]
    window = sent[(1 if system else 0) : -1]
    # The newest stored messages, as stored, never opening on an answer or a tool result.
    assert window == history[len(history) - len(window) :]
    if window:
        assert window[0]["role"] == "user"
        if max_tokens is not None:
            assert sum(cost(m) for m in sent) <= max_tokens
        if max_messages is not None:
            assert len(window) + 1 <= max_messages
    check_tool_pairs(window)


@fuzz(40)
@given(
    history=conversations, max_length=st.integers(1, 30), max_tokens=st.none() | st.integers(1, 500)
)
def test_conversation_history_window(
    history: list[ChatMessage], max_length: int, max_tokens: int | None
) -> None:
    kept = ConversationHistory(
        "fuzz", max_length=max_length, max_tokens=max_tokens, system_prompt="S"
    )
    for m in history:
        kept.add_message(m)
    assert len(kept) == min(len(history), max_length)
    sent = kept.get_messages()
    assert sent[0] == {"role": "system", "content": "S"}
    window = sent[1:]
    assert window == history[len(history) - len(window) :]
    if history:
        # The newest message is always sent, alone over budget if need be.
        assert window and window[-1] == history[-1]
    if len(window) > 1:
        assert window[0]["role"] == "user"
        if max_tokens is not None:
            assert sum(message_tokens(m) for m in sent) <= max_tokens
    check_tool_pairs([m for m in window if window[0]["role"] == "user"])


@fuzz(40)
@given(
    samples=st.lists(
        st.tuples(
            st.lists(awkward_text(400), min_size=1, max_size=5),
            st.none() | st.integers(-10, 10**7),
            st.none() | st.integers(256, 10**6),
        ),
        max_size=10,
    ),
    window=st.integers(256, 10**6),
    num_predict=st.none() | st.integers(-2, 10**6),
)
def test_token_estimates_stay_in_bounds(
    samples: list[tuple[list[str], int | None, int | None]], window: int, num_predict: int | None
) -> None:
    """Whatever counts a server reports, the learned ratio stays within the tokenizer bounds,
    and the prompt budget is positive and inside the window."""
    estimator = TokenEstimator()
    for contents, count, ctx in samples:
        estimator.learn("m", [{"role": "user", "content": c} for c in contents], count, ctx)
        ratio = estimator.chars_per_token("m")
        assert MIN_CHARS_PER_TOKEN * 0.9 - 1e-9 <= ratio <= MAX_CHARS_PER_TOKEN
    assert 1 <= prompt_budget(window, num_predict) <= window


@fuzz(60)
@given(answer=awkward_text(4000), limit=st.integers(10, 2000))
@example(answer="x" * 3000 + ". end", limit=1500)
def test_summary_is_bounded_and_a_prefix(answer: str, limit: int) -> None:
    summary = bounded(answer, limit)
    assert len(summary) <= limit
    assert summary == summary.strip()
    whole = answer.strip()
    if len(whole) <= limit:
        assert summary == whole
    else:
        assert whole.startswith(summary.removesuffix("…").rstrip())


@fuzz(30)
@given(history=conversations, summary=st.none() | awkward_text(300))
def test_fold_prompt_shows_each_message_on_one_line(
    history: list[ChatMessage], summary: str | None
) -> None:
    stored = [
        StoredText(i, "s", m["role"], m.get("content", ""), None, None)  # type: ignore[arg-type]
        for i, m in enumerate(history)
    ]
    prompt = fold_prompt(FoldState(summary, None, len(stored), stored, None))
    lines = prompt.split("\n")
    for m in history:
        said = " ".join(m.get("content", "").split())
        if m["role"] in ("user", "assistant") and said:
            assert f"{m['role']}: {said}" in lines
        if m["role"] == "tool" and said:
            assert f"tool: {said}" not in lines


# --- the summary folds exactly what the prompt no longer sends ---------------------------


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, Stores]]:
    """One SQLite database for all examples (each gets a session of its own) and a loop."""
    loop = asyncio.new_event_loop()
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'history.db'}"
    manager = stores_of(url)
    stores = loop.run_until_complete(manager.__aenter__())
    yield loop, stores
    loop.run_until_complete(manager.__aexit__(None, None, None))
    loop.close()


_sessions = itertools.count()


@fuzz(15)
@given(conversation=st.lists(turns(), min_size=1, max_size=10), window=st.integers(1, 30))
def test_summary_folds_what_the_window_drops(
    world: tuple[asyncio.AbstractEventLoop, Stores],
    conversation: list[list[ChatMessage]],
    window: int,
) -> None:
    loop, stores = world
    session = f"fuzz:{next(_sessions)}"

    async def run() -> tuple[list[ChatMessage], FoldState | None]:
        for turn in conversation:
            await stores.sessions.append_turn(session, turn, model="m")
        _, history = await stores.sessions.load_context(session, window)
        sent = assemble(
            system_prompt=None,
            history=history,
            new_messages=[{"role": "user", "content": "next"}],
            max_messages=window,
            max_tokens=None,
        )
        state = await stores.memory.fold_state(
            session, keep_newest=max(0, window - 1), limit=10_000, max_chars=10_000
        )
        return sent[:-1], state

    sent, state = loop.run_until_complete(run())
    stored = [as_stored(m) for m in itertools.chain(*conversation)]
    assert state is not None
    folded = state.messages
    # Nothing both summarized and sent, nothing neither: the oldest are folded, the rest sent.
    assert state.pending == len(folded) == len(stored) - len(sent)
    assert [m.role for m in folded] == [m["role"] for m in stored[: len(folded)]]
    for m, original in zip(folded, stored, strict=False):
        assert original["content"].startswith(m.content)  # the start of each text
    assert sent == stored[len(folded) :]


def as_stored(message: ChatMessage) -> ChatMessage:
    """A message as every database keeps it: a NUL becomes U+FFFD (bot.storage.models)."""
    return {**message, "content": message["content"].replace("\x00", "\ufffd")}  # type: ignore[typeddict-item]


def test_fold_reads_text_past_a_nul(world: tuple[asyncio.AbstractEventLoop, Stores]) -> None:
    loop, stores = world
    turn: list[ChatMessage] = [
        {"role": "user", "content": "before\x00after"},
        {"role": "assistant", "content": "a"},
    ]

    async def run() -> FoldState | None:
        await stores.sessions.append_turn("fuzz:nul", turn, model="m")
        return await stores.memory.fold_state("fuzz:nul", keep_newest=0, limit=10, max_chars=100)

    state = loop.run_until_complete(run())
    # Stored as U+FFFD, as PostgreSQL must: SQLite's substr() stopped at the NUL itself, so
    # the summary and the embedding lost what came after it (found by
    # test_summary_folds_what_the_window_drops).
    assert state is not None and state.messages[0].content == "before\ufffdafter"
