"""Deterministic stand-ins for what a model computes: tokens, embeddings, names, durations.

Everything here is a pure function so that the same request always gets the same answer,
which is what lets tests assert on exact text, token counts and vectors.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from typing import Final

DEFAULT_KEEP_ALIVE: Final = 300.0

_TOKEN_RE: Final = re.compile(r"\s*\S+")
_DURATION_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_SIZE_UNITS: Final = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def normalize_name(name: str) -> str:
    """Ollama treats a name without a tag as `<name>:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def qualified_name(name: str) -> str:
    """The registry form real Ollama puts in some error messages."""
    name = normalize_name(name)
    return f"registry.ollama.ai/{name if '/' in name else 'library/' + name}"


def tokenize(text: str) -> list[str]:
    """Word-ish tokens that join back to exactly `text` (trailing blanks are a token)."""
    tokens: list[str] = _TOKEN_RE.findall(text)
    rest = text[sum(map(len, tokens)) :]
    return [*tokens, rest] if rest else tokens


def approx_tokens(text: str) -> int:
    return len(text) // 4 + 1


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parameter_count(parameter_size: str) -> int:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", parameter_size.upper())
    return round(float(match.group(1)) * _SIZE_UNITS[match.group(2)]) if match else 0


def parse_keep_alive(value: object) -> float:
    """Seconds to stay loaded: a number of seconds or a Go duration; negative is forever."""
    if value is None or isinstance(value, bool):
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            body = text.lstrip("+-")
            parts = _DURATION_PART_RE.findall(body)
            if not parts or "".join(n + u for n, u in parts) != body:
                return DEFAULT_KEEP_ALIVE
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
            seconds = -seconds if text.startswith("-") else seconds
    return math.inf if seconds < 0 else seconds


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by the text, so equal texts embed equally and others differ."""
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        raw.extend(int.from_bytes(digest[i : i + 4], "big") / 2**31 - 1.0 for i in range(0, 32, 4))
        block += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]
