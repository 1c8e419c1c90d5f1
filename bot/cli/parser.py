"""The argument parser: every command, option and its help text."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from bot.cli.kb_args import add_kb
from bot.cli.options import add_generation_options, positive_int
from bot.cli.question_inputs import add_question_inputs
from bot.cli.runner_args import add_runner

# A command's handler is imported when it runs: `--help` must not pay for the whole stack.
Handler = Callable[[argparse.Namespace, Any, Any], Awaitable[int]]

DESCRIPTION = """\
ollacord: a Discord bot for chatting with local LLMs served by Ollama.

Without a command, runs the bot (like `python -m bot`). The other commands need only
Ollama, not Discord: try the whole chat path in a terminal with `ollacord chat "hello"`.
Settings come from the environment and .env in the current directory, as for the bot
(OLLAMA_HOST, DEFAULT_MODEL, DATABASE_URL, ...; see .env.example)."""

EPILOG = """\
exit codes: 0 success, 1 failure (Ollama unreachable, unknown model or session,
unhealthy), 2 invalid settings or arguments, 130 interrupted (Ctrl-C)."""

CHAT_DESCRIPTION = """\
Ask a model one question through the bot's own request manager: the same retries,
fallback models (FALLBACK_MODELS) and timeouts.

With --session the question joins that stored conversation (its history, model, system
prompt and options apply; the question and answer are saved). Session ids are free-form;
the bot's own look like channel:<id>. Without --session the question is one-off: no
history is read or stored, and the database is not touched."""


def _version() -> str:
    from importlib import metadata  # scans every installed package: only for --version

    try:
        return metadata.version("ollacord")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """argparse's "version" action, with the version looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        sys.stdout.write(f"{parser.prog} {_version()}\n")  # on stdout, as argparse's own
        parser.exit()


def handler(module: str, name: str) -> Handler:
    """``bot.cli.<module>.<name>``, imported on the call."""

    def run(*args: Any) -> Awaitable[int]:
        function = getattr(importlib.import_module(f"bot.cli.{module}"), name)
        return function(*args)  # type: ignore[no-any-return]

    return run


class CliParser(argparse.ArgumentParser):
    """argparse, except that a bad value is one line: a usage block would bury it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, usage_error(self, message))


def usage_error(parser: argparse.ArgumentParser, message: str) -> str:
    """What a usage error prints (exit 2): one line for a bad value ("argument --x: ..."),
    argparse's usage then the line for anything else (a missing or unknown argument)."""
    line = f"{parser.prog}: error: {message}\n"
    return line if message.startswith("argument ") else parser.format_usage() + line


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="ollacord",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show program's version number and exit"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr: -v for info, -vv for debug (`run` follows LOG_LEVEL instead)",
    )
    commands = parser.add_subparsers(
        dest="command",
        title="commands",
        metavar="COMMAND",
        help="`ollacord COMMAND --help` tells more",
    )

    commands.add_parser(
        "run",
        help="run the Discord bot (the default; needs DISCORD_TOKEN)",
        description="Run the Discord bot, exactly like `python -m bot`.",
    )
    _add_chat(commands)
    _add_models(commands)
    _add_sessions(commands)
    add_kb(commands, handler)
    add_runner(commands, handler)
    health = commands.add_parser(
        "health",
        help="check the database and Ollama (exit 0 healthy, 1 degraded)",
        description="Check that the database opens and is migrated, and that Ollama answers "
        "(version, latency, default model present). Exit 0 when healthy, 1 when degraded. "
        "Discord is not checked: the running bot reports it on /healthz (HTTP_PORT).",
    )
    health.set_defaults(handler=handler("admin", "health"))
    migrate = commands.add_parser(
        "migrate",
        help="upgrade the database to the latest schema",
        description="Run the Alembic migrations on DATABASE_URL up to head and print the "
        "revision reached. (The bot also does this on start.)",
    )
    migrate.set_defaults(handler=handler("admin", "migrate"))
    _add_migrate_data(commands)
    return parser


def _add_migrate_data(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    move = commands.add_parser(
        "migrate-data",
        help="copy everything to another database (e.g. SQLite to PostgreSQL)",
        description="Copy every table (conversations, settings, knowledge bases, members' "
        "notes) from one database to another: the target is migrated first and must hold no "
        "data; each table's rows are counted on both sides afterwards. Stop the bot first. "
        "DATABASE_URL is not used: name both databases.",
    )
    move.add_argument(
        "--from", dest="source", metavar="URL", required=True,
        help="the database to copy (left unchanged), e.g. sqlite+aiosqlite:///data/ollacord.db",
    )  # fmt: skip
    move.add_argument(
        "--to", dest="target", metavar="URL", required=True,
        help="the empty database to fill, e.g. postgresql+asyncpg://user:pass@host/db",
    )  # fmt: skip
    move.set_defaults(handler=handler("migrate", "migrate_data"))


def _add_chat(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat_parser = commands.add_parser(
        "chat",
        help="ask a model a question (no Discord needed)",
        description=CHAT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat_parser.add_argument(
        "prompt",
        nargs="?",
        help='the question; "-" or leaving it out (with stdin piped) reads it from stdin',
    )
    chat_parser.add_argument(
        "-m", "--model", help="model to ask (default: the session's, else DEFAULT_MODEL)"
    )
    chat_parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the answer as it is written (default: when stdout is a terminal)",
    )
    chat_parser.add_argument(
        "-s",
        "--session",
        metavar="ID",
        help="continue (or start) this stored conversation and save the turn",
    )
    chat_parser.add_argument(
        "--system",
        metavar="TEXT",
        help="system prompt for this question, over the session's and SYSTEM_PROMPT (not saved)",
    )
    chat_parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (content, model, tokens, durations in seconds, "
        "done_reason, fallback_from; parsed, with --format or --schema) instead of the text",
    )
    add_question_inputs(chat_parser)
    add_generation_options(chat_parser, default_note="else the session's, else the model's own")
    chat_parser.set_defaults(handler=handler("chat", "chat"), subparser=chat_parser)


def _add_models(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "models",
        help="list, inspect and download Ollama models",
        description="The models of the Ollama server at OLLAMA_HOST.",
    )
    actions = group.add_subparsers(
        dest="action", title="actions", metavar="ACTION", required=True, help="one of:"
    )
    listing = actions.add_parser(
        "list", help="the server's models with size, age, family and quantization"
    )
    listing.set_defaults(handler=handler("models", "list_models"))
    show = actions.add_parser(
        "show", help="a model's family, parameters, quantization, context length, capabilities"
    )
    show.add_argument("name", help="model name, e.g. llama3.2 or qwen3:8b")
    show.set_defaults(handler=handler("models", "show_model"))
    pull = actions.add_parser(
        "pull",
        help="download a model, with progress on stderr",
        description="Download a model to the Ollama server. Progress goes to stderr: redrawn "
        "in place on a terminal, one line per finished step otherwise.",
    )
    pull.add_argument("name", help="model name, e.g. llama3.2 or qwen3:8b")
    pull.add_argument(
        "--host",
        help="with OLLAMA_HOSTS: only this host (its URL as listed, without credentials); "
        "default: every host, one after the other",
    )
    pull.set_defaults(handler=handler("models", "pull_model"))


def _add_sessions(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "sessions",
        help="list, show, change, export and delete stored conversations",
        description="The conversations stored in DATABASE_URL, by the bot and by "
        "`ollacord chat --session`.",
    )
    actions = group.add_subparsers(
        dest="action", title="actions", metavar="ACTION", required=True, help="one of:"
    )
    listing = actions.add_parser("list", help="sessions, most recently updated first")
    listing.add_argument(
        "--limit", type=positive_int, default=100, help="show at most this many (default 100)"
    )
    listing.set_defaults(handler=handler("sessions", "list_sessions"))
    export = actions.add_parser("export", help="print a session's whole conversation")
    export.add_argument("session_id", metavar="ID", help="the session's id")
    export.add_argument(
        "--format",
        choices=("md", "json"),
        default="md",
        help="md: a readable transcript (default); json: every message and the settings",
    )
    export.set_defaults(handler=handler("sessions", "export_session"))
    delete = actions.add_parser("delete", help="delete a session, its messages and settings")
    delete.add_argument("session_id", metavar="ID", help="the session's id")
    delete.set_defaults(handler=handler("sessions", "delete_session"))
    show = actions.add_parser("show", help="a session's settings (model, system prompt, options)")
    show.add_argument("session_id", metavar="ID", help="the session's id")
    show.set_defaults(handler=handler("sessions", "show_session"))
    _add_sessions_set(actions)


def _add_sessions_set(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    change = actions.add_parser(
        "set",
        help="change a session's model, system prompt or generation options",
        description="Change the settings a stored conversation keeps for every later question "
        "(in Discord as with /settings, and with `ollacord chat --session`). Only what is given "
        "changes; the session is created when it does not exist yet.",
    )
    change.add_argument("session_id", metavar="ID", help="the session's id")
    change.add_argument("-m", "--model", help="model for this session, over DEFAULT_MODEL")
    change.add_argument(
        "--system", metavar="TEXT", help="system prompt for this session, over SYSTEM_PROMPT"
    )
    change.add_argument(
        "--unset",
        metavar="NAME",
        action="append",
        default=[],
        help="back to the default: model, system or an option (temperature, top_p, ...); "
        "repeatable",
    )
    change.add_argument(
        "--clear-options",
        action="store_true",
        help="drop every stored generation option first (then apply the ones given)",
    )
    add_generation_options(change, default_note="stored with the session")
    change.set_defaults(handler=handler("sessions", "set_session"), subparser=change)
