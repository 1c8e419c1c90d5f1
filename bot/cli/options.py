"""Generation options on the command line: `chat` flags and a stored session's settings.

Values are checked by the manager's own rules (bot.core.queries.validate_options), while argparse
parses them, so a bad one is a usage error (exit 2) before anything is opened. Only the
flags given are sent: an option left out keeps the session's value, else the model's own.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

# Flag, option name (GenerationConfig's), Python type, help.
GENERATION_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--temperature", "temperature", float, "sampling temperature, 0 to 2 (higher: more varied)"),
    ("--top-p", "top_p", float, "nucleus sampling, 0 to 1"),
    ("--seed", "seed", int, "random seed, for answers that repeat"),
    ("--num-predict", "num_predict", int, "most tokens to write (-1: no limit)"),
    ("--num-ctx", "num_ctx", int, "context window in tokens (at least 256)"),
)
OPTION_NAMES = tuple(name for _, name, _, _ in GENERATION_FLAGS)


def add_generation_options(parser: argparse.ArgumentParser, *, default_note: str) -> None:
    group = parser.add_argument_group(
        "generation options", f"Sent to Ollama only when given; {default_note}."
    )
    for flag, name, kind, text in GENERATION_FLAGS:
        group.add_argument(
            flag, dest=name, type=_checked(name, kind), metavar=kind.__name__.upper(), help=text
        )


def chosen_options(args: argparse.Namespace) -> dict[str, Any]:
    """The generation options given on the command line, by GenerationConfig's names."""
    return {name: value for name in OPTION_NAMES if (value := getattr(args, name)) is not None}


def _checked(name: str, kind: type) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {raw!r}") from None
        from bot.core.errors import InvalidRequestError
        from bot.core.queries import validate_options

        try:
            validate_options({name: value})
        except InvalidRequestError as exc:
            raise argparse.ArgumentTypeError(exc.user_message) from None
        return value

    parse.__name__ = kind.__name__  # what argparse names in "invalid float value"
    return parse


def positive_int(raw: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
