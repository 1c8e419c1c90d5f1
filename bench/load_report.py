"""The load run's figures: outcomes per fault, waits per channel and member (starvation),
memory, and the lines it prints."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.load_checks import Memory
from bench.load_run import Asked, Repetition


@dataclass(frozen=True)
class Waits:
    """Seconds from a question to its answer's first text, over the questions that showed
    text, and the worst channel's and member's longest wait."""

    median: float
    p95: float
    worst: float
    worst_channel: float
    median_channel_max: float
    worst_member: float
    median_member_max: float


@dataclass
class Summary:
    """One repetition, reduced to numbers (its records are dropped before memory is read)."""

    seconds: float
    outcomes: Counter[str]  # verdict -> questions
    by_fault: dict[str, Counter[str]]  # fault -> verdict -> questions
    served_per_channel: tuple[int, int]  # fewest, most questions ended per channel
    served_per_member: tuple[int, int]
    unserved: int  # questions that never got a final message
    waits: Waits | None
    problems: list[str] = field(default_factory=list)


def _max_by(items: Iterable[tuple[int, float]]) -> dict[int, float]:
    worst: dict[int, float] = defaultdict(float)
    for key, value in items:
        worst[key] = max(worst[key], value)
    return worst


def _waits(asked: list[Asked]) -> Waits | None:
    seen = [(a, at - a.asked_at) for a in asked if (at := a.first_text_at) is not None]
    if not seen:
        return None
    values = sorted(v for _, v in seen)
    per_channel = _max_by((a.question.channel, v) for a, v in seen)
    per_member = _max_by((a.question.member, v) for a, v in seen)
    return Waits(
        median=statistics.median(values),
        p95=values[min(len(values) - 1, int(0.95 * len(values)))],
        worst=values[-1],
        worst_channel=max(per_channel.values()),
        median_channel_max=statistics.median(per_channel.values()),
        worst_member=max(per_member.values()),
        median_member_max=statistics.median(per_member.values()),
    )


def summarise(repetition: Repetition, channels: int, members: int) -> Summary:
    asked = repetition.asked
    ended = [a for a in asked if a.done_at is not None]
    channel_counts = Counter(a.question.channel for a in ended)
    member_counts = Counter(a.question.member for a in ended)
    by_fault: dict[str, Counter[str]] = defaultdict(Counter)
    for a in asked:
        by_fault[a.question.fault][a.verdict] += 1
    return Summary(
        seconds=repetition.seconds,
        outcomes=Counter(a.verdict for a in asked),
        by_fault=dict(by_fault),
        served_per_channel=(
            min(channel_counts[c] for c in range(channels)),
            max(channel_counts[c] for c in range(channels)),
        ),
        served_per_member=(
            min(member_counts[m] for m in range(members)),
            max(member_counts[m] for m in range(members)),
        ),
        unserved=len(asked) - len(ended),
        waits=_waits(asked),
        problems=list(repetition.problems),
    )


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def lines(
    summaries: list[Summary],
    memories: list[Memory],
    unhandled: list[str],
    error_logs: list[str],
    growth_bound_mib: float,
) -> list[str]:
    out: list[str] = []
    for number, s in enumerate(summaries, 1):
        outcome = ", ".join(f"{n} {verdict}" for verdict, n in sorted(s.outcomes.items()))
        out.append(f"repetition {number}: {s.seconds:.1f} s; {outcome}; unserved {s.unserved}")
        out.append(
            f"  served per channel {s.served_per_channel[0]}-{s.served_per_channel[1]}, "
            f"per member {s.served_per_member[0]}-{s.served_per_member[1]}"
        )
        if (w := s.waits) is not None:
            out.append(
                f"  wait to first text: median {w.median:.2f} s, p95 {w.p95:.2f} s, "
                f"max {w.worst:.2f} s ({w.worst / w.median:.1f}x median)"
            )
            out.append(
                f"  longest wait per channel: worst {w.worst_channel:.2f} s, median "
                f"{w.median_channel_max:.2f} s; per member: worst {w.worst_member:.2f} s, "
                f"median {w.median_member_max:.2f} s"
            )
        for fault, verdicts in sorted(s.by_fault.items()):
            shown = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
            out.append(f"    {fault:<18} {shown}")
    before, *after = memories
    out.append(f"memory (this process: bot and both emulators): before {mib(before.rss_kib)}")
    for number, m in enumerate(after, 1):
        out.append(
            f"  after repetition {number}: RSS {mib(m.rss_kib)} "
            f"({(m.rss_kib - before.rss_kib) / 1024:+.1f} MiB), peak {mib(m.peak_kib)}"
        )
    if len(after) > 1:
        growth = (after[-1].rss_kib - after[0].rss_kib) / 1024
        out.append(
            f"  growth from repetition 1 to {len(after)}: {growth:+.1f} MiB "
            f"(bound {growth_bound_mib:.0f} MiB)"
        )
    out.append(f"unhandled exceptions: {len(unhandled)}; other ERROR logs: {len(error_logs)}")
    out.extend(f"  {line}" for line in [*unhandled, *error_logs][:20])
    return out
