"""The output manager (seed 002's): a JSON result and a Markdown report per run, named with
a timestamp, into a directory; an existing file is never overwritten."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_NAME_ATTEMPTS = 100  # same kind, same second: -2, -3, ... before giving up


@dataclass(frozen=True, slots=True)
class ReportPaths:
    json: Path
    markdown: Path


class OutputManager:
    def __init__(self, directory: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.directory = directory
        self._clock = clock or (lambda: datetime.now(UTC))

    def save(self, kind: str, document: dict[str, Any], markdown: str) -> ReportPaths:
        """Write ``<kind>-<UTC timestamp>.json`` and ``.md``; a suffix when taken."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = self._clock().strftime("%Y%m%d-%H%M%S")
        for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
            stem = f"{kind}-{stamp}" if attempt == 1 else f"{kind}-{stamp}-{attempt}"
            paths = ReportPaths(self.directory / f"{stem}.json", self.directory / f"{stem}.md")
            try:
                # "x": the check and the creation are one step, so two runs cannot collide.
                with paths.json.open("x", encoding="utf-8") as out:
                    json.dump(document, out, ensure_ascii=False, indent=2)
            except FileExistsError:
                continue
            if paths.markdown.exists():
                paths.json.unlink()
                continue
            paths.markdown.write_text(markdown, encoding="utf-8")
            return paths
        raise FileExistsError(f"no free report name for {kind}-{stamp} in {self.directory}")
