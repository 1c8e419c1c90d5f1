"""The rounds of one answer: each round is a generation; between two rounds the bot runs
the tools the model called and sends their results back. ``AnswerTurn`` keeps what every
round produced, for the result, the statistics and the turn that is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bot.core.generation import GenerationProgress
from bot.core.history import ChatMessage
from bot.core.ollama_client import STAT_FIELDS
from bot.core.tools.registry import ToolOutcome
from bot.core.types import OllamaQueryResult

if TYPE_CHECKING:
    from bot.core.planning import Plan

ROUND_GAP = "\n\n"  # between the texts of two rounds, as the executor streams them


def call_name(call: Mapping[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or "")


@dataclass(slots=True)
class AnswerTurn:
    rounds: list[GenerationProgress] = field(default_factory=list)
    exchange: list[ChatMessage] = field(default_factory=list)  # tool calls and results
    tools_used: list[str] = field(default_factory=list)
    tool_rounds: int = 0
    parsed: Any = None

    @property
    def round(self) -> GenerationProgress:
        return self.rounds[-1]

    def next_round(self) -> GenerationProgress:
        self.rounds.append(GenerationProgress())
        return self.rounds[-1]

    def discard_round(self) -> None:
        """Forget the last round (an answer that failed its schema, to be asked again)."""
        self.rounds.pop()

    def wants_tools(self, plan: Plan) -> bool:
        """The model called tools that the bot runs, and rounds are left."""
        return (
            plan.toolset is not None
            and bool(self.rounds)
            and bool(self.round.tool_calls)
            and self.tool_rounds < plan.max_tool_rounds
        )

    def add_tool_round(self, outcomes: Sequence[ToolOutcome]) -> list[ChatMessage]:
        """Record the round's calls and their results; the messages that continue it."""
        calls: ChatMessage = {
            "role": "assistant",
            "content": self.round.content,
            "tool_calls": list(self.round.tool_calls),
        }
        results: list[ChatMessage] = [
            {"role": "tool", "content": o.content, "tool_name": o.name} for o in outcomes
        ]
        self.exchange += [calls, *results]
        self.tools_used += [o.name for o in outcomes]
        self.tool_rounds += 1
        return [calls, *results]

    @property
    def has_text(self) -> bool:
        return any(r.parts for r in self.rounds)

    @property
    def retries(self) -> int:
        return sum(r.retries for r in self.rounds)

    @property
    def fell_back(self) -> bool:
        return any(r.fallback_from is not None for r in self.rounds)

    @property
    def first_token_seconds(self) -> float | None:
        return self.rounds[0].first_token_seconds if self.rounds else None

    @property
    def final_text(self) -> str:
        """The text of the last round: the answer after the tools."""
        return self.round.content if self.rounds else ""

    def result(
        self, plan: Plan, metadata: Mapping[str, Any], *, stopped: bool = False
    ) -> OllamaQueryResult:
        """The answer over all its rounds: all the text shown, the figures summed."""
        last = self.round.result(plan.request.model, metadata)
        totals: dict[str, int | None] = {}
        for name in STAT_FIELDS:
            values = [r.stats.get(name) for r in self.rounds if r.stats.get(name) is not None]
            totals[name] = sum(v for v in values if v is not None) if values else None
        return replace(
            last,
            # As streamed: a round's text starts a new paragraph after an earlier one's.
            content=ROUND_GAP.join(r.content for r in self.rounds if r.content),
            tool_calls=[call for r in self.rounds for call in r.tool_calls],
            thinking="".join("".join(r.thinking) for r in self.rounds),
            fallback_from=next((r.fallback_from for r in self.rounds if r.fallback_from), None),
            done_reason="stopped" if stopped else last.done_reason,
            metadata={
                **last.metadata,
                "attempts": sum(r.attempts for r in self.rounds),
                "retries": self.retries,
            },
            tools_used=list(self.tools_used),
            tools_unavailable=plan.tools_unavailable,
            tools_without_room=plan.tools_without_room,
            vision_from=plan.vision_from,
            parsed=self.parsed,
            **totals,
        )
