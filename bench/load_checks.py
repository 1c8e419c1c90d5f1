"""What the load run checks beside the answers: exceptions nobody handled, and memory.

``Watch`` records, while installed: every call of the event loop's exception handler
(errors in callbacks, tasks whose exception was never retrieved: those are reported when
the task is collected, hence ``gc.collect()`` before reading), every log record at ERROR or
above, and whether it carried a traceback, and unraisable exceptions (``sys.unraisablehook``:
errors in ``__del__`` and in finalizers of async generators).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

STATUS: Final = Path("/proc/self/status")


@dataclass
class Watch:
    loop_errors: list[str] = field(default_factory=list)
    error_logs: list[str] = field(default_factory=list)  # ERROR and above, no traceback
    tracebacks: list[str] = field(default_factory=list)  # ERROR and above, with one
    unraisable: list[str] = field(default_factory=list)
    _forwarding: bool = False

    @property
    def unhandled(self) -> list[str]:
        return [*self.loop_errors, *self.tracebacks, *self.unraisable]

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_error)
        self._handler = _Recorder(self)
        logging.getLogger().addHandler(self._handler)
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable

    def uninstall(self) -> None:
        gc.collect()  # tasks never retrieved report themselves when collected
        self._loop.set_exception_handler(self._previous_handler)
        logging.getLogger().removeHandler(self._handler)
        sys.unraisablehook = self._previous_hook

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.loop_errors.append(f"{context.get('message')}: {exc!r}")
        self._forwarding = True  # logged by asyncio at ERROR: counted once, here
        try:
            loop.default_exception_handler(context)
        finally:
            self._forwarding = False

    def _on_unraisable(self, unraisable: Any) -> None:
        self.unraisable.append(f"{unraisable.err_msg}: {unraisable.exc_value!r}")
        self._previous_hook(unraisable)


class _Recorder(logging.Handler):
    def __init__(self, watch: Watch) -> None:
        super().__init__(logging.ERROR)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        if self.watch._forwarding:
            return
        line = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            self.watch.tracebacks.append(f"{line}: {record.exc_info[1]!r}")
        else:
            self.watch.error_logs.append(line)


@dataclass(frozen=True)
class Memory:
    rss_kib: int  # VmRSS: resident now
    peak_kib: int  # VmHWM: the resident high-water mark of the process

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


def memory() -> Memory:
    """This process's resident memory from /proc (Linux), after a full collection."""
    gc.collect()
    values: dict[str, int] = {}
    for line in STATUS.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])  # "123456 kB"
    return Memory(values["VmRSS"], values["VmHWM"])
