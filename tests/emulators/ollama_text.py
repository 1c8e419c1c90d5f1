"""Deterministic stand-ins for what a model computes: tokens, embeddings, names, durations.

Everything here is a pure function so that the same request always gets the same answer,
which is what lets tests assert on exact text, token counts and vectors.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter
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
# Embeddings (see embedding): a word is a run of letters and digits in any script.
_WORD_RE: Final = re.compile(r"[^\W_]+")
_APOSTROPHE_RE: Final = re.compile(r"['\u2019]")
# Axes each word is spread over: one axis per word would make a single collision turn two
# unrelated words into synonyms; eight make a collision worth ±1/8.
WORD_AXES: Final = 8
# Words that carry no topic, left out so that "What is the X?" matches a passage about X
# and not every passage with "the" in it.
_STOP_WORDS_TEXT: Final = (
    "a an and are as at be been but by can could do does for from had has have he her his "
    "how i if in into is it its me my no not of on or our she so than that the their them "
    "then there these they this to us was we were what when where which who why will with "
    "would you your"
)
STOP_WORDS: Final = frozenset(_STOP_WORDS_TEXT.split())


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


def embedding_words(text: str) -> list[str]:
    """The words an emulated embedding model sees, in order: apostrophes removed ("France's"
    is "frances"), runs of letters and digits, lowercased, a plural's "s" dropped (_stem),
    and those that are, or whose stem is, in STOP_WORDS left out ("what's" too)."""
    words = (_stem(w) for w in _WORD_RE.findall(_APOSTROPHE_RE.sub("", text.lower())))
    return [w for w in words if w and w not in STOP_WORDS]


def _stem(word: str) -> str:
    """Crude on purpose, so a test can predict it: "cats" -> "cat", never "glass" or "bus";
    a stop word stays itself ("its", "this"), so it is still recognised as one."""
    if word in STOP_WORDS:
        return word
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@functools.lru_cache(maxsize=16_384)
def _word_axes(model: str, word: str, dimensions: int) -> tuple[tuple[int, float], ...]:
    """WORD_AXES distinct (axis, ±1) pairs for `word`, from sha256 of model and word."""
    wanted = min(WORD_AXES, dimensions)
    axes: dict[int, float] = {}
    block = 0
    while len(axes) < wanted:
        digest = hashlib.sha256(f"{model}\0{word}\0{block}".encode()).digest()
        for i in range(0, 32, 4):
            value = int.from_bytes(digest[i : i + 4], "big")
            axis = (value & 0x7FFF_FFFF) % dimensions
            if axis not in axes and len(axes) < wanted:
                axes[axis] = -1.0 if value >> 31 else 1.0
        block += 1
    return tuple(axes.items())


def embedding(text: str, dimensions: int, model: str) -> list[float]:
    """A normalised bag of words: each word of `text` (embedding_words) adds ±1 on its
    WORD_AXES axes once per occurrence, then the vector is scaled to unit length.

    So the cosine of two texts is, up to hash collisions (about ±1/sqrt(dimensions)), the
    cosine of their word-count vectors: identical texts 1.0, texts without a common word
    about 0, a question sharing words with a passage high. The axes are seeded with the
    model's name, so two models' vectors of one text are unrelated. A text with no words
    (empty, punctuation, only stop words) is embedded as its stripped self, one "word"."""
    bag = Counter(embedding_words(text)) or Counter([text.strip()])
    raw = [0.0] * dimensions
    for word, count in bag.items():
        for axis, sign in _word_axes(normalize_name(model), word, dimensions):
            raw[axis] += sign * count
    norm = math.sqrt(math.fsum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]
