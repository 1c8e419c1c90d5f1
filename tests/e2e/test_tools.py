"""Tools end to end: the real bot runs the tools the emulated model calls, shows it while it
does, sends the results back, and counts the calls in /stats."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.tools.registry import Tool, ToolContext
from bot.discord_app.routing import channel_key
from tests.e2e.conftest import World, chat_bodies, settled_statistics, stored_messages
from tests.e2e.test_ask import ask, finished, footer_of, pages_without_footer
from tests.emulators.discord_server import InteractionRecord


def shown_versions(rec: InteractionRecord) -> list[str]:
    """Every content the reply's first message had, in order (the placeholder first)."""
    assert rec.original is not None
    return [content for _, content in rec.original.edits]


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages") or [] if m.get("role") == "tool"]


async def test_a_two_round_tool_answer_is_shown_while_it_runs(w: World) -> None:
    w.ollama.script_tools(
        [
            [("calculator", {"expression": "6*7"})],
            [("get_current_time", {"timezone": "Europe/Paris"})],
        ],
        final="6*7 is {tool:calculator}. Paris: {tool:get_current_time}",
    )
    rec = await ask(w, "What is 6*7, and what time is it in Paris?")
    messages = await finished(rec)

    # Nothing was written before the model called the calculator: the status stands alone.
    assert "🔧 Using calculator…" in shown_versions(rec)
    assert footer_of(messages).endswith("🔧 calculator, get_current_time")
    [answer] = pages_without_footer(messages)
    assert answer.startswith("6*7 is 6*7 = 42. Paris: date: ")
    assert "time zone: Europe/Paris" in answer
    assert "Using" not in answer  # the status went with the first text

    bodies = chat_bodies(w.ollama)
    assert len(bodies) == 3
    assert [(m["tool_name"], m["content"]) for m in tool_messages(bodies[1])] == [
        ("calculator", "6*7 = 42")
    ]
    assert [m["tool_name"] for m in tool_messages(bodies[2])] == [
        "calculator",
        "get_current_time",
    ]
    stored = await stored_messages(w, channel_key(w.channel.id), 6)
    assert [m["role"] for m in stored] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert stored[-1]["content"] == answer


async def test_stats_counts_the_tool_calls(w: World) -> None:
    w.ollama.script_tools(
        [[("calculator", {"expression": "1+1"}), ("calculator", {"expression": "1/0"})]],
        final="{tools}",
    )
    await finished(await ask(w, "Compute both."))
    stats = await settled_statistics(w, 1)
    assert stats["tools_usage"] == {"calculator": 2}

    rec = await w.discord.invoke_slash("stats", user_id=w.admin.id, **w.where)
    await rec.wait_done(lambda r: r.original is not None and bool(r.original.embeds))
    assert rec.original is not None
    [embed] = rec.original.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Tool calls"] == "`calculator`: 2 (1 failed)"


async def test_a_tool_that_times_out_still_gets_an_answer(w: World) -> None:
    started = asyncio.Event()

    async def never_answers(arguments: dict[str, Any], context: ToolContext) -> str:
        started.set()
        await asyncio.Event().wait()
        return "unreachable"

    w.bot.manager.tools.add(
        Tool(
            name="slow_lookup",
            description="Look something up, slowly.",
            parameters={"type": "object", "properties": {}},
            handler=never_answers,
            timeout=0.3,
            default_on=True,
        )
    )
    w.ollama.script_tools([[("slow_lookup", {})]], final="Sorry, the lookup said: {tools}")
    rec = await ask(w, "Look it up.")
    messages = await finished(rec)

    assert started.is_set()
    assert "🔧 Using slow_lookup…" in shown_versions(rec)
    [answer] = pages_without_footer(messages)
    assert answer == "Sorry, the lookup said: Error: the tool did not answer within 0.3 s."
    assert footer_of(messages).endswith("🔧 slow_lookup")
    stats = await settled_statistics(w, 1)
    assert stats["successful_requests"] == 1
    assert w.bot.manager.stats.tool_outcomes == {("slow_lookup", "timeout"): 1}

    # And the next question is answered as usual.
    w.ollama.clear_tool_scripts()
    w.ollama.set_reply("Anything else?")
    [again] = pages_without_footer(await finished(await ask(w, "Thanks.")))
    assert again == "Anything else?"
