"""A batch's JSONL output: one record per line, appended and flushed as each completes, so
an interruption loses at most the answers in flight; read back to resume."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TextIO

from bot.core.runner.records import RunRecord

log = logging.getLogger(__name__)


def read_records(path: Path) -> list[RunRecord]:
    """The records of an earlier run (none when the file does not exist). A line cut short
    by an interruption, or any line that is not a record, is skipped."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                data = json.loads(line)
                records.append(RunRecord.from_dict(data))
            except (ValueError, TypeError):
                log.info("%s line %d is not a record; ignored", path, number)
    return records


def latest(records: list[RunRecord]) -> dict[tuple[int, str], RunRecord]:
    """The last record of each prompt: a prompt that failed, then answered, counts as answered."""
    return {(r.index, r.prompt): r for r in records}


class JsonlWriter:
    """Appends records to ``path``; each write reaches the OS before the next answer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def __enter__(self) -> JsonlWriter:
        self._file = self.path.open("a", encoding="utf-8")
        if self._file.tell() > 0 and not _ends_with_newline(self.path):
            self._file.write("\n")  # after a torn last line, start on a line of our own
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, record: RunRecord) -> None:
        assert self._file is not None, "use JsonlWriter as a context manager"
        self._file.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as raw:
        raw.seek(-1, os.SEEK_END)
        return raw.read(1) == b"\n"
