"""The context window a query runs with, and how many of its tokens a text will take.

Ollama runs a model with the ``num_ctx`` it is sent, else its own default (a few thousand
tokens), and silently drops the oldest part of a prompt that does not fit; llama.cpp refuses
it. So the bot decides the window itself, sends it, and sizes what it sends to fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.history import CHARS_PER_TOKEN, MESSAGE_OVERHEAD_TOKENS, ChatMessage
from bot.core.ollama_client import normalize_model_name

# Where the window came from, as /settings show names it.
FROM_REQUEST = "request"
FROM_CHANNEL = "channel"
FROM_DEFAULT = "DEFAULT_NUM_CTX"

# Room kept for the answer when num_predict does not say how long it may be.
ANSWER_SHARE = 0.25
# However long num_predict allows, the prompt keeps at least half the window.
MAX_ANSWER_SHARE = 0.5
# The bot's own tools may take at most this share of the prompt's room, or are left out.
MAX_TOOLS_SHARE = 0.5
# The template's own tokens around the whole prompt (beginning of sequence, a default system
# preamble such as llama3's "Cutting Knowledge Date"), which no message accounts for.
PROMPT_OVERHEAD_TOKENS = 32

# Learned ratios stay within these bounds: a tokenizer covers from about one character per
# token (CJK text) to about five (plain English); a sample outside is a server miscounting.
MIN_CHARS_PER_TOKEN = 1.0
MAX_CHARS_PER_TOKEN = 5.0
# Each sample moves the learned ratio this far, so one odd prompt (code, a table) can't.
SMOOTHING = 0.3
# The next prompt is not the last one: estimate as if it were 10% denser than learned.
SAFETY_FACTOR = 0.9
# Shorter prompts are mostly template tokens and say little about the tokenizer.
MIN_SAMPLE_TOKENS = 64
# A count above this share of the window may be of a prompt the server cut (Ollama drops
# whole old messages, so the count can end well below the window): it can only lower the
# ratio, never raise it. Prompts are sized to stay below it.
SUSPECT_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class ContextWindow:
    """The window a query asks for (``tokens``), where that came from, and the model's cap."""

    tokens: int
    source: str
    model_max: int | None = None  # set only when it lowered the window

    @property
    def capped(self) -> bool:
        """True when the model's maximum is below what was chosen (or the default)."""
        return self.model_max is not None and self.tokens == self.model_max


def choose_window(
    chosen: int | None, source: str, default: int, model_max: int | None
) -> ContextWindow:
    """``chosen`` (from ``source``), else ``default``; never above the model's trained maximum."""
    tokens, origin = (chosen, source) if chosen else (default, FROM_DEFAULT)
    if model_max and model_max < tokens:
        return ContextWindow(model_max, origin, model_max)
    return ContextWindow(tokens, origin, None)


def answer_reserve(window: int, num_predict: int | None) -> int:
    """Tokens kept free for the answer: num_predict when set, else a quarter of the window."""
    wanted = num_predict if num_predict and num_predict > 0 else int(window * ANSWER_SHARE)
    return min(wanted, int(window * MAX_ANSWER_SHARE))


def prompt_budget(window: int, num_predict: int | None = None) -> int:
    """Tokens the messages (system prompt, history, question) may take in ``window``."""
    return max(1, window - answer_reserve(window, num_predict) - PROMPT_OVERHEAD_TOKENS)


# What one image costs in a vision model's context: 256 tokens in gemma3, 576 in llava 1.5,
# up to ~1600 in llama3.2-vision's tiles. The high end, so an image never overflows silently.
IMAGE_TOKENS = 1600


class TokenEstimator:
    """Tokens a text will take, per model: a conservative guess until the server's own
    prompt_eval_count of completed answers teaches the model's real characters per token."""

    def __init__(self) -> None:
        self._learned: dict[str, float] = {}

    def chars_per_token(self, model: str) -> float:
        learned = self._learned.get(normalize_model_name(model))
        return CHARS_PER_TOKEN if learned is None else learned * SAFETY_FACTOR

    def text_tokens(self, text: str, model: str) -> int:
        return math.ceil(len(text) / self.chars_per_token(model))

    def tools_tokens(self, tools: Sequence[Mapping[str, Any]], model: str) -> int:
        """The room the tools' schemas take in the prompt (the template writes them as JSON)."""
        return self.text_tokens(tools_text(tools), model) if tools else 0

    def message_tokens(self, message: ChatMessage, model: str) -> int:
        tokens = self.text_tokens(message.get("content", ""), model) + MESSAGE_OVERHEAD_TOKENS
        if "images" in message:
            tokens += IMAGE_TOKENS * len(message["images"])
        return tokens

    def learn(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        prompt_eval_count: int | None,
        window: int | None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Take in what the server counted for ``messages`` and ``tools`` (sent as they
        were, text only)."""
        if not prompt_eval_count or any(m.get("images") for m in messages):
            return
        # Only the per-message overhead is taken off: what remains (the template's preamble)
        # is counted as text, which errs towards fewer characters per token, the safe side.
        text_tokens = prompt_eval_count - MESSAGE_OVERHEAD_TOKENS * len(messages)
        if text_tokens < MIN_SAMPLE_TOKENS:
            return
        chars = sum(len(m.get("content", "")) for m in messages) + len(tools_text(tools or ()))
        observed = min(MAX_CHARS_PER_TOKEN, max(MIN_CHARS_PER_TOKEN, chars / text_tokens))
        key = normalize_model_name(model)
        previous = self._learned.get(key)
        if window is not None and prompt_eval_count >= window * SUSPECT_SHARE:
            # Perhaps cut: then fewer tokens were counted than sent, and the true ratio is
            # below ``observed``. Either way the estimate must not have more than that.
            current = CHARS_PER_TOKEN / SAFETY_FACTOR if previous is None else previous
            self._learned[key] = min(current, observed)
        elif previous is None:
            self._learned[key] = observed
        else:
            self._learned[key] = previous + SMOOTHING * (observed - previous)


def tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tools as the prompt holds them, near enough: their schemas as JSON."""
    return json.dumps(list(tools), ensure_ascii=False) if tools else ""
