"""The phases of ``bench.scaling``: throughput with one host and with two, a host killed
mid-run, and a bot process killed mid-answer and restarted. Each returns its figures and
checks; ``bench.scaling`` prints them."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.scaling_bots import Cluster
from bench.scaling_checks import Checks, Database, exactly_once
from bench.scaling_discord import (
    ANSWERED,
    FAILED,
    DiscordSide,
    Outcome,
    Question,
    outcome,
    settled,
)
from bench.scaling_hosts import HostProcess

READY_TIMEOUT = 60.0  # seconds for the emulator to see every shard and the commands
STORE_TIMEOUT = 30.0  # seconds for the turns of answers shown to be in the database
MOVED = "question moved from"  # bot.core.hosts.pool logs it when a question changes host


@dataclass
class Phase:
    """A phase's figures, checks and the lines it prints."""

    checks: Checks
    figures: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


@dataclass
class Bench:
    """What every phase works with."""

    side: DiscordSide
    hosts: list[HostProcess]
    cluster: Cluster
    db: Database
    capacity: int  # each host's slots: OLLAMA_HOSTS' *N, and the emulator's num_parallel
    tokens: int  # an answer's length in tokens
    answer_timeout: float  # seconds every answer of a round may take, all told

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def hosts_setting(self, hosts: Sequence[HostProcess]) -> str:
        return ",".join(h.spec(self.capacity) for h in hosts)

    async def start(self, label: str, hosts: Sequence[HostProcess]) -> None:
        await self.cluster.start(label, OLLAMA_HOSTS=self.hosts_setting(hosts))
        await self.side.emu.wait_for(
            lambda: self.side.serves_every_shard() and self.side.commands_registered(),
            READY_TIMEOUT,
        )

    def outcomes(self, questions: Sequence[Question]) -> list[Outcome]:
        return [outcome(q, self.names, self.tokens) for q in questions]

    async def round(self, questions: Sequence[Question]) -> list[Outcome]:
        await self.side.wait_settled(questions, self.answer_timeout)
        return self.outcomes(questions)


# -- checks shared by the phases -------------------------------------------------------------
async def check_answers(
    bench: Bench, checks: Checks, questions: Sequence[Question], outcomes: Sequence[Outcome]
) -> None:
    """Every question answered with exactly its host's text, shown once, stored once."""
    answered = [o for o in outcomes if o.kind == ANSWERED]
    checks.check(
        len(answered) == len(questions),
        f"{len(answered)}/{len(questions)} questions answered with exactly the model's text",
    )
    copies = Counter(bench.side.copies(q.qid) for q in questions)
    checks.check(
        set(copies) == {1},
        f"each answer shown in exactly one message (messages per question: {dict(copies)})",
    )
    # Waiting for the turns of the answered ones only: the others may never be stored.
    shown = [q.prompt for q, o in zip(questions, outcomes, strict=True) if o.kind == ANSWERED]
    await bench.db.stored(shown, "user", STORE_TIMEOUT)
    once, others = exactly_once(await bench.db.turns([q.prompt for q in questions], "user"))
    checks.check(not others, f"{once}/{len(questions)} questions stored exactly once {others}")
    texts = [o.text for o in answered]
    replies = await bench.db.stored(texts, "assistant", STORE_TIMEOUT)
    once, others = exactly_once(replies)
    checks.check(
        not others and once == len(questions),
        f"{once}/{len(questions)} answers stored exactly once {others}",
    )


def hosts_of(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Who answered how many."""
    return dict(sorted(Counter(o.host for o in outcomes if o.kind == ANSWERED).items()))


def status_kinds(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many answers showed each kind of status line (numbers blanked)."""
    kinds: Counter[str] = Counter()
    for o in outcomes:
        kinds.update({re.sub(r"\d+", "N", s) for s in o.statuses})
    return dict(kinds.most_common())


# -- phase 1: throughput ---------------------------------------------------------------------
async def throughput(
    bench: Bench, hosts: Sequence[HostProcess], questions: int, *, keep: bool = False
) -> Phase:
    """Both shards' processes on ``hosts``; ``questions`` at once over the group's channels;
    answers per minute from the first question to the last final answer. ``keep``: leave
    the processes running (the next phase uses them)."""
    label = f"throughput-{len(hosts)}"
    phase = Phase(Checks(f"throughput, {len(hosts)} host{'s' * (len(hosts) > 1)}"))
    await bench.start(label, hosts)
    try:
        # A first answer per shard, not measured: connections and caches warm up.
        warm = [await bench.side.ask(c) for c in bench.side.group("warmup")]
        await check_answers(bench, Checks("warm-up"), warm, await bench.round(warm))
        asked = await bench.side.ask_all(bench.side.group(label), questions)
        outcomes = await bench.round(asked)
    finally:
        if not keep:
            await bench.cluster.stop()
    await check_answers(bench, phase.checks, asked, outcomes)
    done = [o.final_at for o in outcomes if o.final_at is not None]
    span = max(done) - min(q.asked_at for q in asked) if done else float("nan")
    per_shard = Counter(
        q.conversation.shard for q, o in zip(asked, outcomes, strict=True) if o.kind == ANSWERED
    )
    phase.checks.check(
        len(per_shard) == bench.cluster.shards,
        f"both shards' processes answered: {dict(sorted(per_shard.items()))}",
    )
    served = hosts_of(outcomes)
    phase.checks.check(set(served) == {h.name for h in hosts}, f"every host answered: {served}")
    stats = [await h.stats() for h in hosts]
    phase.figures = {
        "hosts": len(hosts),
        "questions": len(asked),
        "seconds": span,
        "per_minute": len(asked) / span * 60 if span > 0 else float("nan"),
        "by_host": served,
        "max_parallel": {h.name: s["max_active"] for h, s in zip(hosts, stats, strict=True)},
    }
    return phase


# -- phase 2: a host killed ------------------------------------------------------------------
async def host_killed(bench: Bench, questions: int, victim: HostProcess) -> Phase:
    """On running processes with every host: ``questions`` at once; once a third are
    answered and an answer streams from ``victim``, SIGKILL it. Every question must be
    answered, none twice."""
    phase = Phase(Checks(f"host {victim.name} killed"))
    side = bench.side
    moved_before = bench.cluster.count(MOVED)
    asked = await side.ask_all(side.group("kill"), questions)
    third = max(1, len(asked) // 3)

    def time_to_kill() -> bool:
        # A third answered, and an answer streaming from the victim: the kill cuts it.
        if sum(map(settled, asked)) < third:
            return False
        return any(streaming_host(q) == victim.name and not settled(q) for q in asked)

    await side.emu.wait_for(time_to_kill, bench.answer_timeout)
    before = {q.qid for q in asked if settled(q)}
    streaming = Counter(host for q in asked if q.qid not in before and (host := streaming_host(q)))
    await asyncio.to_thread(victim.kill)
    outcomes = await bench.round(asked)
    await bench.cluster.stop()
    await check_answers(bench, phase.checks, asked, outcomes)
    after = [(q, o) for q, o in zip(asked, outcomes, strict=True) if q.qid not in before]
    moved = bench.cluster.count(MOVED) - moved_before
    phase.figures = {
        "questions": len(asked),
        "settled_before_kill": len(before),
        "streaming_at_kill": dict(sorted(streaming.items())),
        "moved": moved,
        "outcomes_after": dict(Counter(o.kind for _, o in after)),
        "by_host_after": hosts_of([o for _, o in after]),
        "statuses_after": status_kinds([o for _, o in after]),
    }
    phase.lines.append(f"  per question not settled at the kill ({len(after)}):")
    for q, o in after:
        seen = "; ".join(s for s in o.statuses if not s.startswith("⏳")) or "no status line"
        said = f"by {o.host}" if o.kind == ANSWERED else repr(o.text[-120:])
        if o.kind == FAILED and o.host:
            said = f"after {o.shown_words} words from {o.host}: {said}"
        phase.lines.append(f"    {q.qid} shard {q.conversation.shard}: {o.kind} {said} ({seen})")
    phase.lines.extend(f"    log: {line}" for line in bench.cluster.grep(MOVED, "out of rotation"))
    return phase


def streaming_host(question: Question) -> str | None:
    """The host whose text the answer shows while it streams (None: no text yet)."""
    messages = question.messages
    match = re.match(r"(\S+) answers q", messages[0].content) if messages else None
    return match.group(1) if match else None
