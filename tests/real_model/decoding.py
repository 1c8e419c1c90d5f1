"""From the runner's token pieces to the text a client sees: UTF-8 and stop strings.

A token can end in the middle of a UTF-8 character, and a stop string can span tokens, so
(as Ollama's runner does) text that could still be the start of a stop string is held back
until the next piece decides; the stop string itself is never sent.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Final

# How a generation ended: Ollama's done_reason values, and a client that hung up (the
# runner stops; Ollama sends nothing more, so no done_reason goes out).
STOP: Final = "stop"
LENGTH: Final = "length"
CANCELLED: Final = "cancelled"


class StopScanner:
    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.stopped = False  # a stop string was found: generation ends here

    def feed(self, piece: bytes) -> str:
        """The text that can be sent now, after this token's bytes."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(piece)
        found = [i for i in (self._pending.find(s) for s in self.stops) if i >= 0]
        if found:
            text, self._pending = self._pending[: min(found)], ""
            self.stopped = True
            return text
        keep = max((_overlap(self._pending, s) for s in self.stops), default=0)
        cut = len(self._pending) - keep
        text, self._pending = self._pending[:cut], self._pending[cut:]
        return text

    def flush(self) -> str:
        """What was held back, when generation ends without a stop string."""
        if self.stopped:
            return ""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return text


def _overlap(text: str, stop: str) -> int:
    """The length of the longest end of ``text`` that is a start of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0
