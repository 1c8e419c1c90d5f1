"""`ollacord`: parse, load settings, run one command, turn every failure into one line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator

from bot.cli.context import UsageError, error_message
from bot.cli.output import Console
from bot.cli.parser import build_parser, usage_error
from bot.core.config import Settings
from bot.core.errors import ConfigError, OllacordError
from bot.ops.logging_setup import QUIET_LOGGERS, setup_logging
from bot.ops.process import limit_blas_threads

log = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]) and return the exit code."""
    limit_blas_threads()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's usage error (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else EXIT_USAGE
    console = Console.current()
    with _restored_logging():
        if args.command in (None, "run"):
            # Exactly `python -m bot`; discord.py loads only for this command.
            from bot.__main__ import main as run_bot

            return _interruptible(run_bot)
        try:
            settings = Settings.load(require_discord=False)
        except ConfigError as exc:
            console.note(str(exc))  # the very line `python -m bot` prints
            return EXIT_USAGE
        _configure_logging(args.verbose, settings.secrets)
        return _interruptible(lambda: _execute(args, settings, console))


def _execute(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    import asyncio  # not at the top: --help has no use for it

    try:
        return asyncio.run(args.handler(args, settings, console))
    except UsageError as exc:
        # What argparse's own error() prints, without its sys.exit().
        console.stderr.write(usage_error(args.subparser, str(exc)))
        return EXIT_USAGE
    except OllacordError as exc:
        log.debug("command failed", exc_info=True)
        console.note(error_message(exc, settings))
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`ollacord sessions list | head`): nothing left to say to it.
        # Point stdout at devnull so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:
        # A bug, not a user error: still one line, with the traceback one -v away.
        log.error("unexpected error", exc_info=True)
        hint = "" if args.verbose else " (run with -v for details)"
        console.note(f"unexpected error: {type(exc).__name__}: {exc}{hint}")
        return EXIT_FAILURE


def _interruptible(command: Callable[[], int]) -> int:
    try:
        return command()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _configure_logging(verbosity: int, secrets: Iterable[str | None]) -> None:
    # Quiet by default: every failure that matters reaches the user as its one-line error,
    # and log lines around it would bury that line.
    level = {0: "CRITICAL", 1: "INFO"}.get(verbosity, "DEBUG")
    setup_logging(level, secrets=secrets)


@contextlib.contextmanager
def _restored_logging() -> Iterator[None]:
    """Leave the logging configuration as it was: main() is also called in-process (tests)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_quiet.items():
            logging.getLogger(name).setLevel(level)
