"""Phase 3 of ``bench.scaling``: conversations of several turns on both shards; the shard-1
process SIGKILLed while answers stream, and restarted. Its conversations must be intact:
every turn completed before the kill stored once and still shown as it was, the interrupted
replies ended with the crash notice by the next start, and a new question sent with the
conversation's history.

The last turn before the kill: on shard 0 long answers (its process lives on: they finish);
on shard 1 long answers that the kill cuts, and in a third of its conversations shorter
ones, which finish just before the kill (the bot recorded them as being written and had
not yet forgotten them: the restart must leave them as they are).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from bench.scaling_checks import Checks, exactly_once
from bench.scaling_discord import ANSWERED, CURSOR, Conversation, Outcome, Question, settled
from bench.scaling_hosts import HostProcess, reply_text
from bench.scaling_phases import STORE_TIMEOUT, Bench, Phase, check_answers, streaming_host
from bot.discord_app.unfinished_replies import CRASH_NOTICE

LIVE_REPLIES_TIMEOUT = 20.0  # the bot records a reply about a second after its first words
ENDED_TIMEOUT = 60.0  # seconds for the restarted process to end the interrupted replies
POLL_INTERVAL = 0.05
Turn = tuple[str, str]  # (role, content)


async def process_killed(
    bench: Bench, hosts: Sequence[HostProcess], *, turns: int, long_words: int
) -> Phase:
    phase = Phase(Checks("shard 1's process killed and restarted"))
    side, checks = bench.side, phase.checks
    conversations = side.group("restart")
    history: dict[Conversation, list[Turn]] = {c: [] for c in conversations}
    answered: list[tuple[Question, str]] = []  # answered before the kill, and the answer
    await bench.start("restart", hosts)
    victim = bench.cluster.bots[-1]
    mine = [c for c in conversations if c.shard == victim.shard]
    finishing_at = {c for c in mine[: max(1, len(mine) // 3)]} if len(mine) > 1 else set()
    try:
        for _ in range(turns):
            answered += await _turn(bench, checks, conversations, history)
        last = []
        for c in conversations:
            words = long_words // 2 if c in finishing_at else long_words
            last.append(await side.ask(c, f"tell me something ({words} words)"))
        cut = [q for q in last if q.conversation in mine and q.conversation not in finishing_at]
        finishing = [q for q in last if q.conversation in finishing_at]
        spared = [q for q in last if q.conversation not in mine]
        await side.emu.wait_for(lambda: all(map(streaming_host, last)), bench.answer_timeout)
        # Recorded as being written, or the next start could not know to end them.
        recorded = await _recorded(bench, cut)
        await side.emu.wait_for(lambda: all(map(settled, finishing)), bench.answer_timeout)
        # Complete in the bot's sense too: their turns stored. Then at once the kill, while
        # the bot may not yet have forgotten them as being written (it does so in batches).
        await bench.db.stored([q.prompt for q in finishing], "user", STORE_TIMEOUT)
        await bench.db.stored(
            [reply_text(streaming_host(q) or "?", q.prompt, 0) for q in finishing],
            "assistant",
            STORE_TIMEOUT,
        )
        early = [q.qid for q in cut if settled(q)]
        lag = time.monotonic() - max((_final_at(q) for q in finishing), default=time.monotonic())
        await victim.kill()
        checks.check(
            recorded and not early,
            f"{len(cut)} answers of shard {victim.shard} streaming at the kill, recorded as "
            f"being written (already final: {early or 'none'})",
        )
        finished = finishing + spared
        outcomes = await bench.round(finished)
        await check_answers(bench, checks, finished, outcomes)
        answered += _grow(history, finished, outcomes)
        await victim.start()
        ended = not early and await _ended_in_time(bench, cut)
        cleared = await _recorded(bench, cut, count=0)
        before = {c: list(turns_) for c, turns_ in history.items()}
        after = [q for q, _ in await _turn(bench, checks, conversations, history)]
    finally:
        await bench.cluster.stop()

    await _check_kept(bench, checks, answered)
    checks.check(
        ended,
        f"the {len(cut)} interrupted replies ended by the restart with {CRASH_NOTICE!r}, "
        "their text kept, no cursor, no Stop button",
    )
    checks.check(cleared, "none of them still recorded as being written after the restart")
    seen = await _histories_seen(hosts, after)
    right = [q for q in after if seen.get(q.prompt) == before[q.conversation]]
    checks.check(
        len(right) == len(after),
        f"{len(right)}/{len(after)} new questions sent with their conversation's earlier "
        f"turns, in order ({_mismatches(after, seen, before)})",
    )
    stored = await bench.db.turns([q.prompt for q in cut], "user")
    phase.figures = {
        "conversations": f"{len(conversations)} ({len(mine)} on shard {victim.shard})",
        "turns_before": turns,
        "interrupted": len(cut),
        "finished_just_before_the_kill": f"{len(finishing)}, stored, killed {lag:.2f} s "
        "after their final edit",
        "interrupted_questions_stored": sum(stored.values()),
        "restart_log": victim.grep("replies a restart had interrupted", "interrupted reply"),
    }
    return phase


async def _turn(
    bench: Bench,
    checks: Checks,
    conversations: Sequence[Conversation],
    history: dict[Conversation, list[Turn]],
) -> list[Question]:
    """A question in every conversation at once, answered; the history grows by each turn."""
    asked = [await bench.side.ask(c) for c in conversations]
    outcomes = await bench.round(asked)
    await check_answers(bench, checks, asked, outcomes)
    return _grow(history, asked, outcomes)


def _grow(
    history: dict[Conversation, list[Turn]],
    asked: Sequence[Question],
    outcomes: Sequence[Outcome],
) -> list[tuple[Question, str]]:
    """Add the answered turns to their conversations' histories; returns them."""
    answered = []
    for question, result in zip(asked, outcomes, strict=True):
        if result.kind == ANSWERED:
            history[question.conversation] += [
                ("user", question.prompt),
                ("assistant", result.text),
            ]
            answered.append((question, result.text))
    return answered


async def _recorded(bench: Bench, questions: Sequence[Question], count: int | None = None) -> bool:
    """Until ``count`` (default: all) of the questions' replies are rows of live_replies,
    the bot's record of the replies being written; False if not within the timeout."""
    ids = _reply_ids(questions)
    wanted = len(questions) if count is None else count
    deadline = asyncio.get_running_loop().time() + LIVE_REPLIES_TIMEOUT
    while len(await bench.db.live_replies(ids)) != wanted:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)
    return True


def _final_at(question: Question) -> float:
    return max(m.edits[-1][0] for m in question.messages if m.edits)


def _reply_ids(questions: Sequence[Question]) -> list[int]:
    """A reply's row in live_replies has the id of its first message."""
    return [q.messages[0].id for q in questions if q.messages]


async def _ended_in_time(bench: Bench, cut: Sequence[Question]) -> bool:
    try:
        await bench.side.emu.wait_for(lambda: all(map(_ended, cut)), ENDED_TIMEOUT)
    except TimeoutError:
        return False
    return True


def _ended(question: Question) -> bool:
    """Ended with the crash notice under the text it had, without cursor or Stop button."""
    messages = question.messages
    if not messages or messages[-1].components or not settled(question):
        return False
    last = messages[-1].content
    if not last.endswith(CRASH_NOTICE) or CURSOR in last:
        return False
    kept = last.removesuffix(CRASH_NOTICE).strip().split("\n")[0]
    host = kept.split(" ", 1)[0]
    return bool(kept) and reply_text(host, question.prompt, 0).startswith(kept)


async def _check_kept(
    bench: Bench, checks: Checks, answered: Sequence[tuple[Question, str]]
) -> None:
    """The turns answered before the restart: each stored exactly once, and still shown as
    the complete answer it was (no crash notice added by the restart)."""
    questions = [q for q, _ in answered]
    now = bench.outcomes(questions)
    changed = [(q, o) for q, o in zip(questions, now, strict=True) if o.kind != ANSWERED]
    checks.check(
        not changed,
        f"{len(answered) - len(changed)}/{len(answered)} answers complete before the "
        "restart still shown as they were after it ("
        + ("; ".join(f"{q.qid} now ends {o.text[-60:]!r}" for q, o in changed[:3]) or "all")
        + (f"; {len(changed)} changed" if changed else "")
        + ")",
    )
    texts = {"user": [q.prompt for q in questions], "assistant": [t for _, t in answered]}
    for role, contents in texts.items():
        counts = await bench.db.stored(contents, role, STORE_TIMEOUT)
        once, others = exactly_once(counts)
        checks.check(
            not others and once == len(answered),
            f"{once}/{len(answered)} {role} messages of those turns stored exactly once {others}",
        )


async def _histories_seen(
    hosts: Sequence[HostProcess], questions: Sequence[Question]
) -> dict[str, list[Turn]]:
    """For each question, the earlier turns the model was sent with it (system prompt and
    the question itself left out)."""
    wanted = {q.prompt for q in questions}
    seen: dict[str, list[Turn]] = {}
    for host in hosts:
        for chat in await host.chats():
            if chat.question in wanted:
                turns = [(r, c) for r, c in chat.messages if r in ("user", "assistant")]
                seen[chat.question] = turns[:-1]
    return seen


def _mismatches(
    questions: Sequence[Question],
    seen: dict[str, list[Turn]],
    before: dict[Conversation, list[Turn]],
) -> str:
    wrong = [
        f"{q.qid}: sent {len(seen.get(q.prompt, []))} earlier messages, "
        f"stored {len(before[q.conversation])}"
        for q in questions
        if seen.get(q.prompt) != before[q.conversation]
    ]
    return "; ".join(wrong[:5]) or "none differ"
