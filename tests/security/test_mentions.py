"""Model output never pings: whatever mention syntax a model (or a question) holds, in a
message, an embed or a thread's name, every payload the bot sends pings nobody.

A property test over generated mention strings (users, nicknames, roles, @everyone, @here,
and their zero-width, bidirectional, homoglyph and markdown variants), run through /ask
(with a thread), a mention, /model compare and /summarize against one running bot. Hypothesis
is derandomized (the same examples every run); SECURITY_EXAMPLES raises their number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.discord_app.threads import thread_name
from tests.e2e.conftest import World, wait_private_note, world
from tests.e2e.test_ask import finished
from tests.e2e.test_model_runner import compared
from tests.e2e.test_summarize import finished as summarized
from tests.e2e.test_threads import answered_in
from tests.security.outgoing import MENTION_SYNTAX, all_ping_risks, sent_messages, thread_names

EXAMPLES = int(os.environ.get("SECURITY_EXAMPLES", "20"))
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
BIDI = ("\u202e", "\u202d", "\u200f", "\u200e", "\u2066", "\u2069")
# Letters Discord does not take for the ASCII ones (Cyrillic, fullwidth).
HOMOGLYPHS = {"e": "\u0435", "o": "\u043e", "@": "\uff20", "<": "\uff1c", "h": "\u04bb"}
MARKDOWN = ("**{}**", "_{}_", "`{}`", "||{}||", "> {}", "# {}", "[{}](https://x.example)")


@pytest.fixture
async def hostile_world(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path, MENTION_CHAT="true") as w:
        yield w


def ids(w: World) -> tuple[list[int], list[int]]:
    """Members that could be pinged, and the server's roles (the bot may mention any)."""
    users = [w.alice.id, w.bob.id, w.admin.id]
    roles = [r.id for r in w.discord.world.roles.values() if r.guild_id == w.guild.id]
    return users, roles


@st.composite
def mention(draw: st.DrawFn, users: list[int], roles: list[int]) -> str:
    base = draw(
        st.one_of(
            st.sampled_from(users).map(lambda i: f"<@{i}>"),
            st.sampled_from(users).map(lambda i: f"<@!{i}>"),
            st.sampled_from(roles).map(lambda i: f"<@&{i}>"),
            st.sampled_from(["@everyone", "@here", "@EVERYONE"]),
        )
    )
    variant = draw(st.sampled_from(["plain", "invisible", "bidi", "homoglyph", "markdown"]))
    if variant == "invisible":
        at = draw(st.integers(0, len(base)))
        base = base[:at] + draw(st.sampled_from(ZERO_WIDTH)) + base[at:]
    elif variant == "bidi":
        base = draw(st.sampled_from(BIDI)) + base + draw(st.sampled_from(BIDI))
    elif variant == "homoglyph":
        swappable = [i for i, c in enumerate(base) if c in HOMOGLYPHS]
        if swappable:
            at = draw(st.sampled_from(swappable))
            base = base[:at] + HOMOGLYPHS[base[at]] + base[at + 1 :]
    elif variant == "markdown":
        base = draw(st.sampled_from(MARKDOWN)).format(base)
    return base


def hostile_text(users: list[int], roles: list[int]) -> st.SearchStrategy[str]:
    filler = st.sampled_from(["hi", "look", "ping", "\n", "—", "everyone", "here"])
    piece = st.one_of(mention(users, roles), filler)
    return st.lists(piece, min_size=1, max_size=6).map(" ".join)


def mention_syntax(name: str) -> bool:
    """Mention syntax as Discord parses it, also once invisible characters (format
    characters: zero-width, bidirectional controls, soft hyphens) are dropped, as a copy or
    a renderer may drop them."""
    visible = "".join(c for c in name if unicodedata.category(c) != "Cf")
    return bool(MENTION_SYNTAX.search(name) or MENTION_SYNTAX.search(visible))


async def run_everything(w: World, text: str) -> None:
    """The question and the model's answer hold ``text`` everywhere a model speaks (each
    question has a word of its own: an empty one is refused before any model runs)."""
    w.ollama.set_reply(f"Sure {text} and again {text}")
    threads_before = len(w.discord.threads_of(w.channel.id))
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": f"{text} ?", "thread": True}
    )
    await w.discord.wait_for(
        lambda: len(w.discord.threads_of(w.channel.id)) > threads_before, timeout=10
    )
    await answered_in(w, w.discord.threads_of(w.channel.id)[-1].id, 1)
    await finished(
        await w.discord.invoke_slash(
            "ask", user_id=w.bob.id, **w.where, options={"prompt": f"Q: {text}", "private": True}
        )
    )
    await compared(w, f"Q: {text}", "llama3.2", "qwen3")
    await summarized(
        await w.discord.invoke_slash(
            "summarize", user_id=w.alice.id, **w.where, options={"text": f"Notes: {text}"}
        )
    )
    mentioned = await w.discord.send_user_message(
        w.channel.id, w.alice.id, f"Q: {text}", mentions=[w.discord.bot_user_id]
    )
    await w.discord.wait_for(
        lambda: any(
            m.reference and int(m.reference["message_id"]) == mentioned.id and "-# " in m.content
            for m in w.discord.channel_messages(w.channel.id)
        ),
        timeout=10,
    )
    del rec


def assert_nobody_pinged(w: World, since: int) -> None:
    """Of what the bot sent from REST call ``since``: no payload could ping, no message
    did (as the emulator resolved it), no thread name holds mention syntax."""
    assert all_ping_risks(w.discord, since) == []
    bot = w.discord.bot_user_id
    pinged = [m for m in w.discord.world.messages.values() if m.author_id == bot and m.pinged]
    assert pinged == [], [(m.content, m.mention_history) for m in pinged]
    names = thread_names(w.discord, since)
    assert names and not [n for n in names if mention_syntax(n)], names


def test_model_output_never_pings(tmp_path: Path) -> None:
    # Hypothesis runs synchronous examples: each drives the one bot on a loop of its own.
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    try:
        w = loop.run_until_complete(stack.enter_async_context(world(tmp_path, MENTION_CHAT="true")))
        users, roles = ids(w)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            # Each example drives the whole bot for seconds: report a failing one as it is
            # rather than spend minutes shrinking it.
            phases=[Phase.explicit, Phase.generate],
            report_multiple_bugs=False,
        )
        @given(text=hostile_text(users, roles))
        def example(text: str) -> None:
            since = len(w.discord.calls)
            loop.run_until_complete(run_everything(w, text))
            assert_nobody_pinged(w, since)

        example()
        # The property was exercised: the bot sent messages with mention syntax in them.
        contents = [s.payload.get("content") or "" for s in sent_messages(w.discord)]
        assert any(MENTION_SYNTAX.search(c) for c in contents)
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


async def test_a_refusal_quoting_the_question_pings_nobody(hostile_world: World) -> None:
    # Errors and refusals are messages too: a bad /settings value echoed back, a thread
    # refused for a private answer.
    w = hostile_world
    text = f"<@{w.bob.id}> @everyone <@&{w.guild.id}>"
    rec = await w.discord.invoke_slash(
        "ask",
        user_id=w.alice.id,
        **w.where,
        options={"prompt": text, "private": True, "thread": True},
    )
    await wait_private_note(rec)
    rec = await w.discord.invoke_slash(
        "model", subcommand="info", user_id=w.alice.id, **w.where, options={"name": text}
    )
    await wait_private_note(rec)
    assert all_ping_risks(w.discord) == []


@pytest.mark.parametrize("invisible", [*ZERO_WIDTH, *BIDI])
def test_a_thread_name_keeps_no_mention_hidden_by_an_invisible_character(invisible: str) -> None:
    for mention_text in ("<@123456789012345678>", "<@&123456789012345678>", "@everyone"):
        hidden = mention_text[:3] + invisible + mention_text[3:]
        name = thread_name(f"hello {hidden} there")
        assert not mention_syntax(name), name
        assert name == "hello there"
