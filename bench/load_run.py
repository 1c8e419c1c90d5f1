"""One repetition of the load run: the members ask their questions through /ask, each with
its fault, and every question's outcome is checked against what its member must see and
what the database must hold.

A member keeps at most MEMBER_WINDOW questions open at once, under the bot's per-member cap
(MAX_QUEUED_PER_MEMBER, left at its default): a member waits for an answer before asking
more, as people do. A question refused by the cap anyway (the bot counts a question until
its turn is stored, a moment after the member sees the answer) is an expected answer,
counted apart, with nothing stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from bench import load_plan as plan
from bench.load_plan import Question
from tests.chaos.invariants import SETTLE_SECONDS, MessageSource, check_turns, turns_of
from tests.e2e.conftest import World, private_notes
from tests.e2e.test_ask import has_footer, pages_without_footer, reassemble, reply_messages
from tests.emulators.discord_faults import DiscordEdge, server_error
from tests.emulators.discord_server import Channel, InteractionRecord, User
from tests.emulators.ollama_server import BUSY

MEMBER_WINDOW: Final = 2  # open questions per member, under the default cap of 3
# Seconds from asking to the final message, queue included: a base, and more per question
# of the repetition, since on a loaded machine the last ones wait for all the others.
QUESTION_TIMEOUT: Final = 120.0
SECONDS_PER_QUESTION: Final = 1.0
QUIET_SECONDS: Final = 1.0  # nothing moving in Discord: every final edit has landed
DISCORD_429S: Final = 3  # forced on one answer's webhook writes
# Three times FIRST_TOKEN_TIMEOUT and STREAM_IDLE_TIMEOUT (2 s): the bot measures a silence
# from when it read the last chunk, which a loaded event loop (shared with the emulators)
# delays; at 1.5 times, a stall on a busy machine sometimes went unnoticed.
STALL_SECONDS: Final = 6.0
WARNING: Final = "⚠️"
CAP_REFUSAL: Final = "waiting; ask again"
# What the member's reply must say, per fault that ends in a warning.
WARNING_TEXT: Final[dict[str, str]] = {
    plan.OLLAMA_500_ALWAYS: "model server",
    plan.STALL_MID_STREAM: "stopped sending",
    plan.DROP_MID_STREAM: "connection to the model server was lost",
    plan.ERROR_MID_STREAM: "stopped with an error",
    plan.MISSING_MODEL: f"`{plan.MISSING_MODEL_NAME}` is not available",
}


@dataclass
class Asked:
    question: Question
    record: InteractionRecord | None = None
    asked_at: float = 0.0
    done_at: float | None = None
    verdict: str = ""  # "completes", "warned", "refused", or what went wrong

    @property
    def first_text_at(self) -> float | None:
        """When the answer's first model text was visible (None: none ever was)."""
        original = self.record.original if self.record else None
        start = self.question.reply[:16]
        for at, content in original.edits if original else ():
            if content.startswith(start):
                return at
        return None


@dataclass
class Repetition:
    asked: list[Asked]
    seconds: float
    problems: list[str] = field(default_factory=list)


def finished(rec: InteractionRecord) -> bool:
    """The member has seen the end: the footer, a warning, or a private refusal."""
    messages = reply_messages(rec)
    if messages and WARNING in messages[-1].content:
        return True
    return has_footer(rec) or bool(private_notes(rec))


def aim_faults(w: World, q: Question, max_retries: int) -> None:
    ollama, tag = w.ollama, q.tag
    if q.fault == plan.OLLAMA_500_ONCE:
        ollama.fail_next(1, prompt=tag)
    elif q.fault == plan.OLLAMA_503_ONCE:
        ollama.fail_next(1, status=503, error=BUSY, prompt=tag)
    elif q.fault == plan.OLLAMA_500_ALWAYS:
        ollama.fail_next(max_retries + 1, prompt=tag)
    elif q.fault == plan.STALL_FIRST_TOKEN:
        ollama.stall_before_first_token(STALL_SECONDS, prompt=tag)
    elif q.fault == plan.ERROR_FIRST_TOKEN:
        ollama.error_mid_stream(0, prompt=tag)
    elif q.fault == plan.STALL_MID_STREAM:
        ollama.stall_mid_stream(plan.MID_STREAM_AFTER, STALL_SECONDS, prompt=tag)
    elif q.fault == plan.DROP_MID_STREAM:
        ollama.drop_mid_stream(plan.MID_STREAM_AFTER, prompt=tag)
    elif q.fault == plan.ERROR_MID_STREAM:
        ollama.error_mid_stream(plan.MID_STREAM_AFTER, prompt=tag)


async def ask_one(
    w: World,
    edge: DiscordEdge,
    asked: Asked,
    channel: Channel,
    member: User,
    *,
    retries: int,
    timeout: float,  # noqa: ASYNC109 (each question waits its own condition)
) -> None:
    q = asked.question
    aim_faults(w, q, retries)
    options: dict[str, str] = {"prompt": q.prompt}
    if q.fault == plan.MISSING_MODEL:
        options["model"] = plan.MISSING_MODEL_NAME
    asked.asked_at = time.monotonic()
    rec = await w.discord.invoke_slash(
        "ask", user_id=member.id, **w.in_channel(channel), options=options
    )
    asked.record = rec
    if q.fault == plan.DISCORD_429:
        # Only this answer's writes: its webhook (the acknowledgement is never limited).
        route = f"/webhooks/{w.discord.application_id}/{rec.token}"
        w.discord.force_429(DISCORD_429S, retry_after=0.05, route_contains=route)
    elif q.fault == plan.DISCORD_5XX:
        # Discord's JSON 500 or Cloudflare's 503 page on the answer's first edit.
        status = 500 if q.index % 2 else 503
        webhook = f"/webhooks/{w.discord.application_id}/{rec.token}/messages/"
        edge.inject(server_error(status), route_contains=webhook, method="PATCH")
    try:
        await rec.wait_done(finished, timeout=timeout)
    except TimeoutError:
        asked.verdict = f"no final message within {timeout:.0f} s"
        return
    asked.done_at = time.monotonic()


async def run_repetition(
    w: World,
    edge: DiscordEdge,
    questions: list[Question],
    channels: list[Channel],
    members: list[User],
) -> Repetition:
    retries = w.settings.max_retries
    timeout = QUESTION_TIMEOUT + SECONDS_PER_QUESTION * len(questions)
    by_member: dict[int, list[Asked]] = defaultdict(list)
    asked = [Asked(q) for q in questions]
    for item in asked:
        by_member[item.question.member].append(item)

    async def member_asks(mine: list[Asked]) -> None:
        window = asyncio.Semaphore(MEMBER_WINDOW)

        async def one(item: Asked) -> None:
            try:
                q = item.question
                channel, member = channels[q.channel], members[q.member]
                await ask_one(w, edge, item, channel, member, retries=retries, timeout=timeout)
            finally:
                window.release()

        tasks = []
        for item in mine:  # in the schedule's order, at most MEMBER_WINDOW open
            await window.acquire()
            tasks.append(asyncio.create_task(one(item)))
        await asyncio.gather(*tasks)

    started = time.monotonic()
    await asyncio.gather(*(member_asks(mine) for mine in by_member.values()))
    seconds = time.monotonic() - started
    await w.discord.wait_for(
        lambda: time.monotonic() - w.discord.world.notifier.last_change >= QUIET_SECONDS,
        timeout=timeout,
    )
    repetition = Repetition(asked, seconds)
    for item in asked:
        if not item.verdict:
            item.verdict = judge(item)
        if item.verdict not in (plan.COMPLETES, plan.WARNED, "refused"):
            repetition.problems.append(
                f"{item.question.tag} ({item.question.fault}): {item.verdict}"
            )
    await check_store(w, asked, channels, repetition)
    return repetition


def judge(item: Asked) -> str:
    """What the member saw, against what the question's fault must end in."""
    q, rec = item.question, item.record
    assert rec is not None
    notes = private_notes(rec)
    if notes and any(CAP_REFUSAL in n for n in notes):
        return "refused"
    if notes:
        return f"a private note instead of the answer: {notes!r}"
    messages = reply_messages(rec)
    last = messages[-1].content if messages else ""
    if q.outcome == plan.COMPLETES:
        if WARNING in last or not has_footer(rec):
            return f"expected the whole answer, saw {last[-200:]!r}"
        text = reassemble(pages_without_footer(messages), q.reply)
        if text != q.reply:
            return f"answer differs: {len(text)} of {len(q.reply)} chars, ends {text[-80:]!r}"
        return plan.COMPLETES
    if WARNING not in last:
        return f"expected a warning, saw {last[-200:]!r}"
    expected = WARNING_TEXT[q.fault]
    if expected not in last:
        return f"the warning does not say {expected!r}: {last[-200:]!r}"
    shown = "".join(m.content for m in messages).split(WARNING)[0].rstrip()
    if shown and not q.reply.startswith(shown):
        return f"the partial text is not the answer's start: {shown[:80]!r}"
    return plan.WARNED


async def check_store(
    w: World, asked: list[Asked], channels: list[Channel], repetition: Repetition
) -> None:
    """Each channel's conversation: every completed question stored once with its answer,
    none of the others."""
    store = w.bot.manager.store
    per_channel: dict[int, list[Asked]] = defaultdict(list)
    for item in asked:
        per_channel[item.question.channel].append(item)
    for index, items in sorted(per_channel.items()):
        answered = [i.question for i in items if i.verdict == plan.COMPLETES]
        others = [i.question.prompt for i in items if i.verdict != plan.COMPLETES]
        session = f"channel:{channels[index].id}"
        messages = await stored_with(store, session, [q.prompt for q in answered])
        try:
            turns = check_turns(messages, answered=[q.prompt for q in answered], unanswered=others)
        except AssertionError as exc:
            repetition.problems.append(f"{session}: {exc}")
            continue
        stored = dict(turns)
        for q in answered:
            if stored[q.prompt] != q.reply:
                repetition.problems.append(f"{session}: {q.tag} stored a different answer")


async def stored_with(store: MessageSource, session: str, prompts: list[str]) -> list[Any]:
    """The session's messages once every prompt is stored (an answer is shown a moment
    before its turn is written), or after SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        messages = list(await store.messages(session))
        have = {q for q, _ in turns_of(messages)}
        if all(p in have for p in prompts) or time.monotonic() > deadline:
            return messages
        await asyncio.sleep(0.02)
