"""One round of bench.streaming, per answer: its latencies, phases and completeness."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from bench.streaming_child import AnswerTimeline, Collected, answer_for, prompt_for
from bench.streaming_probes import DbCall, ReplyMark

_CLOSER_AT_END = re.compile(r"(`{3,}|~{3,})\Z")
_OPENER_LINE = re.compile(r"(`{3,}|~{3,})[^\n`]*\n")


@dataclass
class AnswerStats:
    first_visible: float | None
    longest_gap: float | None
    last_to_final: float | None
    writes: int
    complete: bool
    timeline: AnswerTimeline
    last_token_at: float | None
    phases: dict[str, float | None]


@dataclass
class RoundResult:
    n: int
    finished: bool
    answers: list[AnswerStats]
    collected: Collected
    bot_cpu: float
    wall: float
    rtts: list[float]
    db: list[DbCall] = field(default_factory=list)
    loop_lag: list[float] = field(default_factory=list)
    logs: Counter[str] = field(default_factory=Counter)
    replies: list[ReplyMark] = field(default_factory=list)
    path: str = "ask"  # how the questions were asked: "ask" or "mention"


def rebuild(pages: list[str], expected: str) -> str | None:
    """The answer as the final pages show it: footer line and added fence pairs removed.

    A page the splitter cut inside a code block ends with a closing fence and the next one
    starts by reopening it. The closer is preceded by a "\\n" that may or may not be the
    answer's own (it is added when the cut was not at a line end); the expected answer only
    decides between these two readings, never anything else.
    """
    if not pages:
        return None
    pages = list(pages)
    head, _, last_line = pages[-1].rpartition("\n")
    if not last_line.startswith("-# "):
        return None
    pages[-1] = head
    if not pages[-1]:
        pages.pop()
    text = pages[0] if pages else ""
    for page in pages[1:]:
        opener = _OPENER_LINE.match(page)
        closer = _CLOSER_AT_END.search(text)
        if opener and closer and closer.group(1)[0] == opener.group(1)[0]:
            body = page[opener.end() :]
            cut = text[: closer.start()]
            readings = [cut + body, cut.removesuffix("\n") + body]
            text = next((r for r in readings if expected.startswith(r)), readings[0])
        else:
            text += page
    return text


def percentile(values: list[float], p: float) -> float:
    """Nearest rank (p95 of 10 values is the 10th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def analyse(
    timeline: AnswerTimeline,
    index: int,
    tokens: int,
    collected: Collected,
    db: list[DbCall],
    replies: list[ReplyMark],
) -> AnswerStats:
    expected = answer_for(index, tokens)
    mark = expected.split()[0]
    original = timeline.messages[0] if timeline.messages else []
    first = next((t for t, content in original if content.startswith(mark)), None)
    shown = sorted(t for message in timeline.messages for t, content in message if content)
    final_at = shown[-1] if shown else None
    gap = None
    if first is not None and final_at is not None:
        times = [t for t in shown if first <= t <= final_at]
        gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    first_token, last_token = collected.token_times.get(expected, (None, None))
    asked = collected.chat_requests.get(prompt_for(index))
    pages = [message[-1][1] for message in timeline.messages if message]
    mine = [c for c in db if str(timeline.channel_id) in c.key]
    reads = [c for c in mine if c.name in ("settings_of", "load_context")]
    stored = next((c for c in mine if c.name == "append_turn"), None)
    marks = [m for m in replies if m.channel_id == timeline.channel_id]
    closed = next((m.end for m in marks if m.what == "closed"), None)
    final_sent = max((m.start for m in marks if m.what.startswith("final write")), default=None)
    return AnswerStats(
        first_visible=_since(timeline.dispatched_at, first),
        longest_gap=gap,
        last_to_final=_since(last_token, final_at),
        writes=timeline.writes,
        complete=rebuild(pages, expected) == expected,
        timeline=timeline,
        last_token_at=last_token,
        phases={
            "(ack)": _since(timeline.dispatched_at, timeline.acked_at),
            "(DB reads)": sum(c.end - c.start for c in reads),
            "dispatch→chat req": _since(timeline.dispatched_at, asked),
            "request→1st tok": _since(asked, first_token),
            "1st tok→visible": _since(first_token, first),
            "last tok→closed": _since(last_token, closed),
            "closed→final sent": _since(closed, final_sent),
            "final sent→shown": _since(final_sent, final_at),
            "DB append_turn": _since(stored.start, stored.end) if stored else None,
        },
    )
