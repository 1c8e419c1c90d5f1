"""Scripted failures for the Ollama emulator: which request suffers which fault.

Faults are queued by the test and consumed, in the order they were added, by the next
requests whose path matches. A request takes at most one fault of each kind, so a test can
combine, say, a stall before the first token with a dropped connection later in the stream.
A fault with a ``prompt`` only hits requests whose last user message contains it: under
load, where requests arrive in no fixed order, a test aims it at one question.

The mid-stream faults also apply to /api/pull (``paths=PULL_PATHS``), counted in progress
lines instead of tokens. A mid-stream stall (an answer's or a pull's) lasts until
``end_stalls()`` if that comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from typing import Final

FAIL: Final = "fail"
STALL_BEFORE: Final = "stall_before"
STALL_MID: Final = "stall_mid"
DROP: Final = "drop"
ERROR_MID: Final = "error_mid"
# The runner dies after the request was queued and its model loaded, before its first token:
# Ollama has written no header yet, so the failure is a status (500), not an error line.
RUNNER_FAIL: Final = "runner_fail"
RUNNER_STOPPED: Final = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)

GENERATION_PATHS: Final = ("/api/chat", "/api/generate")
PULL_PATHS: Final = ("/api/pull",)

# Order matters when two mid-stream faults fire at the same token: a stall still lets the
# stream continue, so it must run before a drop or an error ends it.
_MID_STREAM_KINDS: Final = (STALL_MID, DROP, ERROR_MID)


@dataclass
class Fault:
    kind: str
    remaining: int = 1
    paths: tuple[str, ...] = GENERATION_PATHS
    status: int = 500
    error: str = ""
    seconds: float = 0.0
    after_tokens: int = 0
    prompt: str = ""  # only requests whose last user text contains it ("": any)


@dataclass
class StreamFaults:
    """The faults one chat/generate answer will suffer, fixed when the request arrives."""

    stall_before: float = 0.0
    mid_stream: tuple[Fault, ...] = ()
    released: asyncio.Event = field(default_factory=asyncio.Event)  # end_stalls() sets it

    def at(self, index: int, total: int) -> list[Fault]:
        """Faults due after `index` chunks; those past the end fire just before the last line."""
        return [f for f in self.mid_stream if min(f.after_tokens, total) == index]

    async def due(self, index: int, total: int) -> Fault | None:
        """Sit out the stalls due after `index` lines; a fault that ends the stream, if any."""
        for fault in self.at(index, total):
            if fault.kind != STALL_MID:
                return fault
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), fault.seconds)
        return None


class FaultBook:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._released = asyncio.Event()

    @property
    def pending(self) -> list[Fault]:
        return list(self._faults)

    def add(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("a fault needs a count of at least 1")
        if fault.after_tokens < 0 or fault.seconds < 0:
            raise ValueError("after_tokens and seconds cannot be negative")
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def end_stalls(self) -> None:
        """End every stall under way that waits on it (a pull's); later ones stall again."""
        self._released.set()
        self._released = asyncio.Event()

    def take(self, kind: str, path: str, text: str = "") -> Fault | None:
        for fault in self._faults:
            if fault.kind == kind and path in fault.paths and fault.prompt in text:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return replace(fault, remaining=1)
        return None

    def take_stream_faults(self, path: str, text: str = "") -> StreamFaults:
        stall = self.take(STALL_BEFORE, path, text)
        mid = [f for kind in _MID_STREAM_KINDS if (f := self.take(kind, path, text)) is not None]
        mid.sort(key=lambda f: f.after_tokens)
        return StreamFaults(stall.seconds if stall else 0.0, tuple(mid), self._released)
