"""The load run's schedule: who asks what where, what the model answers, and which fault each
question suffers, all drawn from one seed so that a failing run can be replayed.

Each question carries a tag (``[load-R-NNNN]``, R the repetition) that the Ollama
emulator's reply and its faults key on: under load the requests reach the emulator in no
fixed order, so a fault is aimed at its question (``prompt=``) rather than at "the next
request".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Final

# What a faulted question must end in (see bench.load_checks).
COMPLETES: Final = "completes"  # retried or carried through: the whole answer, stored once
WARNED: Final = "warned"  # a clear message in the reply, nothing stored

# Fault kinds, with what the member must see. Weights are per 100 questions.
NONE: Final = "none"
OLLAMA_500_ONCE: Final = "ollama-500-once"  # a 500 before the stream, then fine: retried
OLLAMA_503_ONCE: Final = "ollama-503-once"  # Ollama's queue full once: retried
OLLAMA_500_ALWAYS: Final = "ollama-500-always"  # every attempt fails: told, nothing stored
STALL_FIRST_TOKEN: Final = "stall-first-token"  # past FIRST_TOKEN_TIMEOUT once: retried
ERROR_FIRST_TOKEN: Final = "error-before-text"  # an error line before any text: retried
STALL_MID_STREAM: Final = "stall-mid-stream"  # past STREAM_IDLE_TIMEOUT: partial + warning
DROP_MID_STREAM: Final = "drop-mid-stream"  # the connection drops: partial + warning
ERROR_MID_STREAM: Final = "error-mid-stream"  # an error line mid-answer: partial + warning
MISSING_MODEL: Final = "missing-model"  # /ask model: a model Ollama does not have
DISCORD_429: Final = "discord-429"  # 429s on the answer's webhook writes: carried through
DISCORD_5XX: Final = "discord-5xx-edit"  # Discord's edge fails an edit of the answer: retried

WEIGHTS: Final[dict[str, int]] = {
    NONE: 60,
    OLLAMA_500_ONCE: 4,
    OLLAMA_503_ONCE: 4,
    OLLAMA_500_ALWAYS: 3,
    STALL_FIRST_TOKEN: 3,
    ERROR_FIRST_TOKEN: 3,
    STALL_MID_STREAM: 3,
    DROP_MID_STREAM: 4,
    ERROR_MID_STREAM: 3,
    MISSING_MODEL: 3,
    DISCORD_429: 6,
    DISCORD_5XX: 4,
}
OUTCOME: Final[dict[str, str]] = {
    NONE: COMPLETES,
    OLLAMA_500_ONCE: COMPLETES,
    OLLAMA_503_ONCE: COMPLETES,
    OLLAMA_500_ALWAYS: WARNED,
    STALL_FIRST_TOKEN: COMPLETES,
    ERROR_FIRST_TOKEN: COMPLETES,
    STALL_MID_STREAM: WARNED,
    DROP_MID_STREAM: WARNED,
    ERROR_MID_STREAM: WARNED,
    MISSING_MODEL: WARNED,
    DISCORD_429: COMPLETES,
    DISCORD_5XX: COMPLETES,
}
MISSING_MODEL_NAME: Final = "no-such-model"
LONG_SHARE: Final = 0.12  # answers past one 2000-character page (with a code block)
MID_STREAM_AFTER: Final = 6  # tokens streamed before a mid-stream fault
TAG: Final = re.compile(r"\[load-\d+-\d+\]")


@dataclass(frozen=True)
class Question:
    repetition: int
    index: int
    channel: int  # 0..channels-1
    member: int  # 0..members-1
    fault: str
    reply: str

    @property
    def tag(self) -> str:
        return f"[load-{self.repetition}-{self.index:04d}]"

    @property
    def prompt(self) -> str:
        return f"{self.tag} question {self.index} from member {self.member}"

    @property
    def outcome(self) -> str:
        return OUTCOME[self.fault]


def short_reply(rng: random.Random, tag: str) -> str:
    words = rng.randint(24, 60)
    return f"Answer to {tag}: " + " ".join(f"w{i}-{rng.randint(0, 999)}" for i in range(words))


def long_reply(rng: random.Random, tag: str) -> str:
    """2,500-4,500 characters: prose, then a code block across a page break."""
    prose = " ".join(f"Sentence {i} of the long answer to {tag}." for i in range(30))
    lines = "".join(f"value_{i} = {rng.randint(0, 10**6)}\n" for i in range(rng.randint(60, 140)))
    return f"{prose}\n\n```python\n{lines}```\n\nThat was {tag}."


def schedule(
    *, questions: int, channels: int, members: int, seed: int, repetition: int = 0
) -> list[Question]:
    """The questions of one repetition, in the order they are asked. Every channel gets
    questions // channels of them (or one more) and so does every member: all must be
    served. Faults are drawn by WEIGHTS; a long answer is independent of its fault."""
    if min(questions, channels, members) < 1:
        raise ValueError("questions, channels and members must be at least 1")
    rng = random.Random(f"{seed}:{repetition}")
    channel_of = [i % channels for i in range(questions)]
    member_of = [i % members for i in range(questions)]
    rng.shuffle(channel_of)
    rng.shuffle(member_of)
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    plan: list[Question] = []
    for index in range(questions):
        fault = rng.choices(kinds, weights)[0]
        tag = f"[load-{repetition}-{index:04d}]"
        reply = long_reply(rng, tag) if rng.random() < LONG_SHARE else short_reply(rng, tag)
        plan.append(Question(repetition, index, channel_of[index], member_of[index], fault, reply))
    return plan


def describe(plan: list[Question]) -> str:
    """One line per question, to replay a failing run by hand."""
    return "\n".join(
        f"{q.tag} channel {q.channel} member {q.member} {q.fault} {len(q.reply)} chars"
        for q in plan
    )
