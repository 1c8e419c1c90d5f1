"""/ask end to end: the real bot, the Discord emulator and the Ollama emulator."""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

from tests.e2e.conftest import World, stored_messages
from tests.emulators.discord_server import Channel, InteractionRecord, Message, User
from tests.emulators.ollama_text import tokenize

DISCORD_LIMIT = 2000
CURSOR = " ▌"
FOOTER_LINE = re.compile(r"(?:\A|\n)-# [^\n]*\Z")
FENCE_LINE = re.compile(r" {0,3}(`{3,}|~{3,})")
REOPENER = re.compile(r"(`{3,}|~{3,})[^\n`]*\n")


# helpers ------------------------------------------------------------------------------------
async def ask(
    w: World,
    prompt: str,
    *,
    user: User | None = None,
    channel: Channel | None = None,
    **options: Any,
) -> InteractionRecord:
    where = w.in_channel(channel) if channel is not None else w.where
    return await w.discord.invoke_slash(
        "ask",
        user_id=(user or w.alice).id,
        **where,
        options={"prompt": prompt, **options},
    )


def reply_messages(rec: InteractionRecord) -> list[Message]:
    """The deferred reply and its follow-ups, in page order."""
    return [rec.original, *rec.followups] if rec.original is not None else []


def has_footer(rec: InteractionRecord) -> bool:
    # The footer only ever goes out with the final write of the last page, which the pump
    # sends after every earlier page's final write: once it shows, the reply is complete.
    messages = reply_messages(rec)
    return bool(messages) and FOOTER_LINE.search(messages[-1].content) is not None


async def finished(rec: InteractionRecord, timeout: float = 10.0) -> list[Message]:  # noqa: ASYNC109
    await rec.wait_done(has_footer, timeout=timeout)
    return reply_messages(rec)


def footer_of(messages: list[Message]) -> str:
    match = FOOTER_LINE.search(messages[-1].content)
    assert match is not None, messages[-1].content
    return match.group(0).lstrip("\n")


def pages_without_footer(messages: list[Message]) -> list[str]:
    contents = [m.content for m in messages]
    contents[-1] = FOOTER_LINE.sub("", contents[-1])
    return [c for c in contents if c] if len(contents) > 1 else contents


def reassemble(pages: list[str], answer: str) -> str:
    """Join pages, dropping only fence lines the splitter added: a reopener at the start of a
    follow-up and a closer at the end of a page, each only where the answer itself has no such
    text. Anything else the bot added or lost makes the result differ from ``answer``."""
    joined = ""
    for index, page in enumerate(pages):
        rest = answer[len(joined) :]
        if index > 0 and (m := REOPENER.match(page)) and not rest.startswith(m.group(0)):
            page = page[m.end() :]
        # A closer follows a body ending in "\n" directly, or else after an added "\n".
        for closer in ("", r"(`{3,}|~{3,})\Z", r"\n(`{3,}|~{3,})\Z"):
            trimmed = re.sub(closer, "", page, count=1) if closer else page
            if rest.startswith(trimmed):
                page = trimmed
                break
        joined += page
    return joined


def fence_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if FENCE_LINE.match(line)]


def chat_requests(w: World) -> list[dict[str, Any]]:
    return [r.json or {} for r in w.ollama.requests if r.path == "/api/chat"]


def prose(paragraphs: int) -> str:
    return "\n\n".join(
        " ".join(f"Sentence {p}.{s} of a long and plain answer." for s in range(12))
        for p in range(paragraphs)
    )


def answer_to(body: dict[str, Any]) -> str:
    """A reply naming the question, so replies that leak into each other are caught."""
    question = (body.get("messages") or [{}])[-1].get("content", "")
    return f"Answer to [{question}]: " + " ".join(f"{question}-w{i}" for i in range(30)) + "."


# tests --------------------------------------------------------------------------------------
async def test_ask_streams_a_short_answer(w: World) -> None:
    w.ollama.set_reply("Paris is the capital of France.")
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "Capital of France?"}
    )
    await rec.wait_done(lambda r: r.original is not None and "tokens" in r.original.content)
    assert rec.ack_type == 5
    content = rec.original.content
    assert content.startswith("Paris is the capital of France.")
    assert "-# llama3.2 · 6 tokens" in content
    assert rec.original.allowed_mentions == {"parse": []}
    assert rec.original.components == []  # the Stop button is gone once done
    assert w.discord.count_429() == 0


async def test_long_answer_is_split_into_follow_ups(w: World) -> None:
    answer = prose(11)
    assert len(answer) > 2 * DISCORD_LIMIT
    w.ollama.set_reply(answer)
    # Slow enough that follow-ups are created while the text still grows, then edited.
    w.ollama.tokens_per_second = 400
    rec = await ask(w, "Tell me a lot.")
    messages = await finished(rec)
    await rec.wait_quiet()

    assert len(messages) >= 3
    assert all(len(m.content) <= DISCORD_LIMIT for m in messages)
    pages = pages_without_footer(messages)
    assert len(set(pages)) == len(pages), "a page was sent twice"
    assert "".join(pages) == answer  # plain prose: no fence lines to add
    assert all(not m.components for m in messages)


async def test_code_block_split_across_messages_keeps_fences_balanced(w: World) -> None:
    code = "".join(f"def add_{i}(x: int) -> int:\n    return x + {i}\n\n" for i in range(150))
    answer = f"Here is the module:\n\n```python\n{code}```\n\nThat is all."
    assert len(answer) > 2 * DISCORD_LIMIT
    w.ollama.set_reply(answer)
    rec = await ask(w, "Write many functions.")
    messages = await finished(rec)

    assert len(messages) >= 3
    for message in messages:
        assert len(message.content) <= DISCORD_LIMIT
        assert len(fence_lines(message.content)) % 2 == 0, message.content[-200:]
    # Every follow-up but the last starts inside the code block, so it must reopen it as
    # python (or the highlighting would be lost) and close it again before its end.
    for message in messages[1:-1]:
        assert message.content.startswith("```python\n")
        assert message.content.rstrip().endswith("```")
    pages = pages_without_footer(messages)
    assert len(set(pages)) == len(pages)
    assert reassemble(pages, answer) == answer


async def test_first_visible_content_comes_with_the_first_token(w: World) -> None:
    answer = " ".join(f"word{i}" for i in range(40))
    w.ollama.set_reply(answer)
    w.ollama.tokens_per_second = 30  # ~1.3 s of generation
    rec = await ask(w, "Count slowly.")
    messages = await finished(rec)

    edits = [content for _, content in messages[0].edits if content]
    first = edits[0]
    assert first.startswith("word0")
    # Shown while the model was still generating: later words had not arrived yet.
    shown = first.removesuffix(CURSOR)
    assert first.endswith(CURSOR)
    assert answer.startswith(shown) and len(shown) < len(answer) // 2


async def test_edits_are_spread_and_never_rate_limited(w: World) -> None:
    answer = " ".join(f"t{i}" for i in range(200))
    w.ollama.set_reply(answer)
    w.ollama.tokens_per_second = 50  # 4 s of streaming
    rec = await ask(w, "Two hundred tokens please.")
    messages = await finished(rec, timeout=15)

    assert len(messages) == 1
    assert messages[0].content.startswith(answer + "\n-# ")
    edits = len(messages[0].edits) - 1  # the first entry is the deferred placeholder
    # Progress is shown while streaming, yet coalesced far below one edit per token.
    assert 3 <= edits <= 200 // 5
    assert w.discord.count_429() == 0
    # Spread, not burst: spending the bucket at once and then freezing until it refills
    # would also avoid 429s, but with edits bunched a few ms apart. A lower bound on the gap
    # (the pacer keeps 0.2 s or more) only grows on a slow machine, so it cannot flake.
    streaming = [at for at, _ in messages[0].edits[1:-1]]  # minus placeholder and final
    gaps = [later - earlier for earlier, later in itertools.pairwise(streaming)]
    assert min(gaps) >= 0.1, gaps


async def test_two_asks_in_one_channel_never_interleave(w: World) -> None:
    w.ollama.set_reply(answer_to)
    w.ollama.tokens_per_second = 40  # the first answer streams for about a second
    first = await ask(w, "alpha")
    await w.discord.wait_for(lambda: len(chat_requests(w)) == 1)
    second = await ask(w, "beta", user=w.bob)

    first_messages = await finished(first)
    second_messages = await finished(second, timeout=15)

    assert any("Waiting for the previous answer" in c for _, c in second_messages[0].edits)
    assert not any("Waiting" in c for _, c in first_messages[0].edits)
    alpha = answer_to({"messages": [{"content": "alpha"}]})
    beta = answer_to({"messages": [{"content": "beta"}]})
    assert pages_without_footer(first_messages) == [alpha]
    assert pages_without_footer(second_messages) == [beta]
    # The second question was only sent once the first turn was complete and stored.
    history = [(m["role"], m["content"]) for m in chat_requests(w)[1]["messages"]]
    assert history[-3:] == [("user", "alpha"), ("assistant", alpha), ("user", "beta")]


async def test_concurrent_asks_in_five_channels_all_complete(w: World) -> None:
    w.ollama.set_reply(answer_to)
    w.ollama.tokens_per_second = 150
    channels = [w.discord.add_channel(w.guild.id, f"room-{i}") for i in range(5)]
    await w.discord.wait_for(lambda: all(w.bot.get_channel(ch.id) for ch in channels))
    records = [await ask(w, f"q{i}", channel=ch) for i, ch in enumerate(channels)]
    results = await asyncio.gather(*(finished(rec, timeout=15) for rec in records))

    for i, (rec, messages) in enumerate(zip(records, results, strict=True)):
        assert rec.channel_id == channels[i].id
        assert pages_without_footer(messages) == [answer_to({"messages": [{"content": f"q{i}"}]})]
    assert w.ollama.max_active_seen > 1, "the channels were answered one after another"
    assert w.discord.count_429() == 0


async def test_private_ask_defers_an_ephemeral_reply(w: World) -> None:
    w.ollama.set_reply("Only you can read this.")
    rec = await ask(w, "Secret?", private=True)
    messages = await finished(rec)

    assert rec.ack_type == 5
    assert rec.ephemeral
    assert messages[0].ephemeral
    assert messages[0].content.startswith("Only you can read this.")


async def test_footer_shows_model_tokens_and_speed(w: World) -> None:
    w.ollama.set_reply("One two three four five.")
    w.ollama.tokens_per_second = 200
    rec = await ask(w, "Count to five.")
    messages = await finished(rec)

    tokens = len(tokenize("One two three four five."))
    pattern = rf"-# llama3\.2 · {tokens} tokens · \d+\.\d tok/s"
    assert re.fullmatch(pattern, footer_of(messages)), footer_of(messages)


async def test_model_output_pings_nobody(w: World) -> None:
    role_id = w.guild.role_ids[-1]
    ping = f"@everyone <@{w.bob.id}> <@&{role_id}> "
    answer = "\n\n".join(ping + f"paragraph {i} " + "x " * 150 for i in range(8))
    assert len(answer) > DISCORD_LIMIT
    w.ollama.set_reply(answer)
    rec = await ask(w, "Ping everybody.")
    messages = await finished(rec)

    assert len(messages) >= 2
    for message in messages:
        assert "@everyone" in message.content
        assert not message.pinged, message.mention_history
        assert message.allowed_mentions == {"parse": []}


async def test_stop_button_only_for_the_asker_and_keeps_the_partial_turn(w: World) -> None:
    answer = " ".join(f"slow{i}" for i in range(200))
    w.ollama.set_reply(answer)
    w.ollama.tokens_per_second = 20  # ten seconds if nobody stops it
    rec = await ask(w, "Talk for a while.")

    def streaming_with_button(r: InteractionRecord) -> bool:
        return (
            r.original is not None and bool(r.original.components) and "slow2" in r.original.content
        )

    await rec.wait_done(streaming_with_button)
    assert rec.original is not None

    refused = await w.discord.press_button(rec.original.id, 0, user_id=w.bob.id)
    await refused.wait_done()
    assert refused.ack_type == 4
    assert refused.ephemeral
    assert refused.original is not None
    assert "Only the person who asked" in refused.original.content
    # Bob's press changed nothing: the answer keeps growing.
    seen = len(rec.original.content)
    await rec.wait_done(lambda r: len(r.original.content) > seen + 10)
    assert not has_footer(rec)

    pressed = await w.discord.press_button(rec.original.id, 0, user_id=w.alice.id)
    await pressed.wait_done(lambda r: r.acked)
    messages = await finished(rec)
    # The model's stream is closed, not left running in the background.
    await w.discord.wait_for(lambda: w.ollama.active_streams == 0, timeout=3)

    assert len(messages) == 1
    assert footer_of(messages).endswith("stopped")
    assert messages[0].components == []
    shown = pages_without_footer(messages)[0]
    assert shown.startswith("slow0 slow1 slow2")
    assert answer.startswith(shown) and len(shown) < len(answer) // 2
    stored = await stored_messages(w, f"channel:{w.channel.id}", 2)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "Talk for a while."),
        ("assistant", shown),
    ]


async def test_ask_with_model_option_uses_that_model(w: World) -> None:
    w.ollama.set_reply("Answered by qwen.")
    rec = await ask(w, "Who are you?", model="qwen3")
    messages = await finished(rec)

    assert [r["model"] for r in chat_requests(w)] == ["qwen3"]
    assert footer_of(messages).startswith("-# qwen3 · ")


async def test_second_ask_sends_the_first_turn_as_history(w: World) -> None:
    w.ollama.queue_replies("Nice to meet you, Ada.", "Your name is Ada.")
    await finished(await ask(w, "My name is Ada."))
    await finished(await ask(w, "What is my name?", user=w.bob))

    first, second = chat_requests(w)
    assert [m["role"] for m in first["messages"] if m["role"] != "system"] == ["user"]
    history = [(m["role"], m["content"]) for m in second["messages"] if m["role"] != "system"]
    assert history == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


async def test_start_up_objects_are_left_out_of_full_collections(w: World) -> None:
    # Full collections walked every object loaded at start, a pause that landed among answers
    # starting together (see docs/benchmarks.md); the bot freezes them once it is set up.
    import gc

    assert w.bot.is_ready()
    assert gc.get_freeze_count() > 10_000
