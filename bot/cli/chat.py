"""`ollacord chat`: one question through the same request manager and sessions as the bot."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING, Any

from bot.cli.context import UsageError, open_manager
from bot.cli.options import chosen_options
from bot.cli.output import Console, StatusLine
from bot.core.config import Settings
from bot.core.errors import InvalidRequestError
from bot.core.events import FallbackEvent, QueryEvent, RetryEvent
from bot.core.types import NANOSECONDS, OllamaQueryResult

if TYPE_CHECKING:
    from bot.core.manager import OllamaRequestManager

log = logging.getLogger(__name__)


def read_prompt(args: argparse.Namespace, console: Console) -> str:
    """The prompt argument, or stdin when it is "-" or absent and stdin is piped."""
    prompt: str | None = args.prompt
    if prompt == "-" or (prompt is None and not console.stdin.isatty()):
        prompt = console.stdin.read()
    elif prompt is None:
        raise UsageError('give a prompt, or "-" to read it from stdin')
    prompt = prompt.strip()
    if not prompt:
        raise InvalidRequestError("The prompt is empty.")
    return prompt


async def chat(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    prompt = read_prompt(args, console)
    # A JSON document is only useful whole, so --json never prints text as it streams.
    stream = (console.stdout.isatty() if args.stream is None else args.stream) and not args.json
    status = StatusLine(console.stderr)

    def on_event(event: QueryEvent) -> None:
        if isinstance(event, RetryEvent):
            # The retry policy can wait several seconds; on a terminal, say why.
            status.show(f"{event.error} Retrying in {event.delay:.1f} s (retry {event.attempt}).")
        elif isinstance(event, FallbackEvent):
            status.clear()
            console.note(f"the model `{event.requested}` is not available; using `{event.model}`")

    query: dict[str, Any] = {
        "prompt": prompt,
        "model": args.model,
        "system_prompt": args.system,
        "session_id": args.session,
        "format": args.format,
        "on_event": on_event,
        **chosen_options(args),
    }
    async with open_manager(settings, persistent=args.session is not None) as manager:
        try:
            if stream:
                result = await _stream(manager, query, console, status)
            else:
                result = await manager.query(**query)
        finally:
            status.clear()
    if args.json:
        console.out(json.dumps(result_document(result, args.session), ensure_ascii=False))
    elif not stream:
        console.out(result.content)
    return 0


async def _stream(
    manager: OllamaRequestManager, query: dict[str, Any], console: Console, status: StatusLine
) -> OllamaQueryResult:
    answer = await manager.query(stream=True, **query)
    written = False
    try:
        async with answer:
            async for chunk in answer:
                status.clear()
                console.write(chunk)
                written = written or bool(chunk)
    except BaseException:
        # End the partial line, so the error (on stderr) does not stick to the text.
        if written:
            console.out()
        raise
    console.out()
    assert answer.result is not None
    return answer.result


def _seconds(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / NANOSECONDS


def result_document(result: OllamaQueryResult, session_id: str | None) -> dict[str, Any]:
    """What --json prints: the answer and Ollama's figures (durations in seconds)."""
    document: dict[str, Any] = {
        "content": result.content,
        "model": result.model,
        "session_id": session_id,
        "done_reason": result.done_reason,
        "fallback_from": result.fallback_from,
        "tokens": {
            "prompt": result.prompt_eval_count,
            "completion": result.eval_count,
            "per_second": result.tokens_per_second,
        },
        "durations": {
            "total": _seconds(result.total_duration),
            "load": _seconds(result.load_duration),
            "prompt_eval": _seconds(result.prompt_eval_duration),
            "eval": _seconds(result.eval_duration),
        },
    }
    if result.thinking:
        document["thinking"] = result.thinking
    if result.tool_calls:
        document["tool_calls"] = result.tool_calls
    return document
