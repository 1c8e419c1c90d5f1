"""`ollacord chat`: one question through the same request manager and sessions as the bot,
with images, files, a preset and structured output as /ask has them (``question_inputs``)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING, Any

from bot.cli.context import UsageError, open_manager
from bot.cli.options import chosen_options
from bot.cli.output import Console, StatusLine
from bot.cli.question_inputs import PreparedInputs, answer_format, prepare_inputs
from bot.core.config import Settings
from bot.core.documents import question_with_documents
from bot.core.errors import InvalidRequestError
from bot.core.events import FallbackEvent, HostSwitchEvent, QueryEvent, RetryEvent
from bot.core.structured import render_json
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
    structure = answer_format(args)
    inputs = await prepare_inputs(args)
    # A JSON document is only useful whole, so --json never prints text as it streams; nor
    # is a structured answer streamed (it is shown once checked against its format).
    streamable = not args.json and structure is None
    stream = (console.stdout.isatty() if args.stream is None else args.stream) and streamable
    status = StatusLine(console.stderr)

    def on_event(event: QueryEvent) -> None:
        if isinstance(event, RetryEvent):
            # The retry policy can wait several seconds; on a terminal, say why.
            status.show(f"{event.error} Retrying in {event.delay:.1f} s (retry {event.attempt}).")
        elif isinstance(event, HostSwitchEvent) and event.withdrawn:
            status.clear()  # the text printed so far is followed by the whole new answer
            console.note(f"{event.error} The answer starts again on another server.")
        elif isinstance(event, HostSwitchEvent):
            status.show(f"{event.error} Asking another server.")
        elif isinstance(event, FallbackEvent):
            status.clear()
            console.note(f"the model `{event.requested}` is not available; using `{event.model}`")

    query: dict[str, Any] = {
        "prompt": question_with_documents(prompt, inputs.documents),
        "model": args.model,
        "system_prompt": args.system,
        "session_id": args.session,
        "format": structure,
        "preset": args.preset,
        "images": inputs.images or None,
        "on_event": on_event,
        **chosen_options(args),
    }
    async with open_manager(settings, persistent=args.session is not None) as manager:
        await _ensure_fits(manager, args, inputs)
        try:
            if stream:
                result = await _stream(manager, query, console, status)
            else:
                result = await manager.query(**query)
        finally:
            status.clear()
    if result.vision_from:
        console.note(
            f"the model `{result.vision_from}` cannot see images; `{result.model}` answered instead"
        )
    if args.json:
        document = result_document(result, args.session, structured=structure is not None)
        console.out(json.dumps(document, ensure_ascii=False))
    elif structure is not None:
        console.out(render_json(result.parsed))
    elif not stream:
        console.out(result.content)
    return 0


async def _ensure_fits(
    manager: OllamaRequestManager, args: argparse.Namespace, inputs: PreparedInputs
) -> None:
    """Files too long for the window are refused naming the file, before asking (as /ask)."""
    if not inputs.documents:
        return
    stored = await manager.get_session_settings(args.session) if args.session else None
    model = args.model or (stored.model if stored else None)
    num_ctx = args.num_ctx or (stored.options.get("num_ctx") if stored else None)
    await manager.ensure_fits(inputs.documents, model, num_ctx, args.num_predict)


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


def result_document(
    result: OllamaQueryResult, session_id: str | None, *, structured: bool = False
) -> dict[str, Any]:
    """What --json prints: the answer and Ollama's figures (durations in seconds); with
    ``structured``, the answer parsed too."""
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
    if structured:
        document["parsed"] = result.parsed
    if result.vision_from:
        document["vision_from"] = result.vision_from
    if result.thinking:
        document["thinking"] = result.thinking
    if result.tool_calls:
        document["tool_calls"] = result.tool_calls
    return document
