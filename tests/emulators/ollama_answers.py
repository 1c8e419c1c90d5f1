"""What one /api/chat or /api/generate answer contains, and how it goes out on the wire.

The answer is decided in full when the request arrives (text, thinking, tool calls, faults),
so that scripted replies are consumed in arrival order even when requests wait in the queue;
it is then paced token by token, with its faults applied, as NDJSON or as one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from . import ollama_images as images
from .ollama_faults import DROP, Fault, StreamFaults
from .ollama_models import EmulatedModel
from .ollama_schema import go_quote
from .ollama_text import now_rfc3339, qualified_name, tokenize
from .ollama_toolparse import route

NDJSON: Final = "application/x-ndjson"
# What a chat template adds: role markers and an end-of-turn token around every message, and
# the beginning-of-sequence token in front of the whole prompt.
MESSAGE_TEMPLATE_TOKENS: Final = 4
BOS_TOKENS: Final = 1
# sched.go (v0.12.6): "multimodal models require at least 2048 context".
VISION_MIN_CTX: Final = 2048
THINK_LEVELS: Final = ("high", "medium", "low")
_THINK_CHOICES: Final = '"high", "medium", "low", true, or false'

Rate = Callable[[], float | None]


class ApiError(Exception):
    """An error answer: the JSON body `{"error": message}` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def dumps(obj: object) -> str:
    # Go's encoder writes compact JSON and raw UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def ndjson_line(obj: object) -> bytes:
    return f"{dumps(obj)}\n".encode()


def json_response(obj: object, status: int = 200) -> web.Response:
    text = dumps(obj)
    return web.Response(status=status, text=text, content_type="application/json", charset="utf-8")


Step = tuple[str, Any] | None  # (field, value) of one streamed line, None: nothing sent


@dataclass
class Answer:
    model: EmulatedModel
    thinking: list[str]
    # One per generated token of the text: what goes out for it. With tools, the server's
    # parser holds tokens back (None) and turns finished calls into ("tool_calls", calls).
    steps: list[Step]
    tail: str  # the content of the last line: what the tool parser had left over
    done_reason: str
    prompt_tokens: int
    context: list[int]
    faults: StreamFaults
    started: float
    loaded: float = 0.0
    first: float = 0.0

    @property
    def chunks(self) -> list[Step]:
        """What each generated token sends, thinking first."""
        return [*(("thinking", t) for t in self.thinking), *self.steps]

    @property
    def eval_count(self) -> int:
        # Like a real model, every generated token counts: thinking and tool calls too.
        return len(self.thinking) + len(self.steps)

    @property
    def content(self) -> str:
        return "".join(v for k, v in filter(None, self.steps) if k == "content") + self.tail

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [c for k, v in filter(None, self.steps) if k == "tool_calls" for c in v]


def bind(body: dict[str, Any], chat: bool) -> list[bytes]:
    """What Go's JSON binding refuses (400) before the handler even looks at the model:
    a bad `think`, an image that is not base64. Returns the decoded images."""
    think = body.get("think")
    if think is not None and not isinstance(think, bool):
        if not isinstance(think, str):
            raise ApiError(400, f"think must be a boolean or string ({_THINK_CHOICES})")
        if think not in THINK_LEVELS:
            choices = f"(must be {_THINK_CHOICES})"
            raise ApiError(400, f"invalid think value: {go_quote(think)} {choices}")
    try:
        return images.decode_request(body, chat)
    except images.ImageError as exc:
        raise ApiError(400, str(exc)) from None


def validate(body: dict[str, Any], name: str, model: EmulatedModel, chat: bool) -> bool:
    """Whether to think, or the 400 a real server answers for what the model cannot do,
    checked in ChatHandler's and GenerateHandler's order (server/routes.go, v0.12.6)."""
    think = body.get("think")
    thinking = think is True or isinstance(think, str)
    # Think levels are for gpt-oss (its "harmony" parser) only; generate checks it first.
    level_refused = isinstance(think, str) and model.family not in ("gptoss", "gpt-oss")
    if level_refused and not chat:
        raise ApiError(400, f"think value {go_quote(think)} is not supported for this model")
    if thinking and "thinking" not in model.capabilities:
        raise ApiError(400, f'"{name}" does not support thinking')
    if "completion" not in model.capabilities:
        raise ApiError(400, f'"{name}" does not support {"chat" if chat else "generate"}')
    # scheduleRunner's CheckCapabilities, with the model's full name in front.
    if chat and body.get("tools") and "tools" not in model.capabilities:
        raise ApiError(400, f"{qualified_name(name)} does not support tools")
    if not chat and body.get("suffix") and "insert" not in model.capabilities:
        raise ApiError(400, f"{qualified_name(name)} does not support insert")
    if level_refused:
        raise ApiError(400, f"think value {go_quote(think)} is not supported for this model")
    return thinking


def last_user_text(body: dict[str, Any]) -> str:
    messages: list[dict[str, Any]] = body.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"] or messages
    return str((users[-1].get("content") if users else body.get("prompt")) or "")


def count_tokens(text: str, model: EmulatedModel) -> int:
    """What the model's tokenizer would make of ``text``, at its family's average density."""
    return math.ceil(len(text) / model.chars_per_token)


def prompt_tokens(body: dict[str, Any], model: EmulatedModel) -> int:
    """The prompt's tokens once the chat template wrapped each message: prompt_eval_count.
    Images: a vision model counts tokens_per_image for each, any other model reads the
    `[img-N]` tags chatPrompt writes in front of the message as text."""
    messages: list[dict[str, Any]] = body.get("messages") or []
    vision = "vision" in model.capabilities
    count, seen = BOS_TOKENS, 0
    for message, pictures in zip(messages, images.per_message(body, True), strict=True):
        text = str(message.get("content") or "")
        if pictures and vision:
            count += pictures * model.tokens_per_image
        elif pictures:
            text = images.tag_text(seen, pictures) + text
        seen += pictures
        count += MESSAGE_TEMPLATE_TOKENS + count_tokens(text, model)
    count += sum(count_tokens(str(body.get(k) or ""), model) for k in ("system", "prompt"))
    if not messages and (pictures := len(body.get("images") or [])):
        count += (
            pictures * model.tokens_per_image
            if vision
            else count_tokens(images.tag_text(0, pictures), model)
        )
    if body.get("tools"):
        count += count_tokens(json.dumps(body["tools"]), model)
    return count + len(body.get("context") or [])


def context_window(body: dict[str, Any], model: EmulatedModel, server_default: int) -> int:
    """The window the model runs with: the request's num_ctx, else the server's default
    (OLLAMA_CONTEXT_LENGTH), never more than the trained maximum (Ollama caps it too)."""
    requested = (body.get("options") or {}).get("num_ctx")
    window = requested if isinstance(requested, int) and requested > 0 else server_default
    window = min(window, model.context_length)
    return max(window, VISION_MIN_CTX) if "vision" in model.capabilities else window


def truncate(body: dict[str, Any], model: EmulatedModel, window: int) -> dict[str, Any]:
    """What Ollama does, silently, with a chat longer than its window: the oldest messages
    go, system messages and the last one stay (the runner then cuts what still overflows)."""
    messages: list[dict[str, Any]] = list(body.get("messages") or [])
    body = {**body, "messages": messages}
    while prompt_tokens(body, model) > window:
        droppable = [i for i, m in enumerate(messages[:-1]) if m.get("role") != "system"]
        if not droppable:
            break
        del messages[droppable[0]]
    return body


def plan(
    body: dict[str, Any],
    model: EmulatedModel,
    *,
    text: str,
    tools: list[str] | None,
    thinking: str | None,
    faults: StreamFaults,
    started: float,
    window: int,
) -> Answer:
    """Apply stop and num_predict to the model's raw text (as the runner does), then, for a
    chat that offers `tools`, the server's tool parser."""
    options: dict[str, Any] = body.get("options") or {}
    stops = options.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    text = text[:cut] if cut >= 0 else text
    thoughts = tokenize(thinking) if thinking is not None else []
    content, reason = tokenize(text), "stop"
    limit = options.get("num_predict")
    # num_predict counts every generated token, so thinking eats into the budget first.
    if isinstance(limit, int) and 0 < limit < len(thoughts) + len(content):
        thoughts, content = thoughts[:limit], content[: max(0, limit - len(thoughts))]
        reason = "length"
    steps: list[Step] = [("content", t) for t in content]
    tail = ""
    if tools is not None:
        steps, tail = route(content, model.tool_call_tag, tools)
    prompt = [str(m.get("content") or "") for m in body.get("messages") or []]
    prompt += [str(body.get(k) or "") for k in ("system", "prompt")]
    prompt_text = "\n".join(prompt) + (json.dumps(body["tools"]) if body.get("tools") else "")
    return Answer(
        model=model,
        thinking=thoughts,
        steps=steps,
        tail=tail,
        done_reason=reason,
        prompt_tokens=min(prompt_tokens(body, model), window),
        context=[zlib.crc32(t.encode()) % 128_256 for t in tokenize(prompt_text) + content],
        faults=faults,
        started=started,
    )


def _ns(seconds: float) -> int:
    return max(int(seconds * 1e9), 1)


def chunk_fields(chat: bool, kind: str, value: Any) -> dict[str, Any]:
    """The text-bearing fields of one streamed line (`kind` is a field of Answer.chunks)."""
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        message[kind] = value
        return {"message": message}
    if kind == "thinking":
        return {"response": "", "thinking": value}
    return {"response": value}


def final_fields(answer: Answer, chat: bool) -> dict[str, Any]:
    """done, done_reason, context (generate only) and the metrics of the last line."""
    end = time.monotonic()
    stats = {
        "total_duration": _ns(end - answer.started),
        "load_duration": _ns(answer.loaded - answer.started),
        "prompt_eval_count": answer.prompt_tokens,
        "prompt_eval_duration": _ns(answer.first - answer.loaded),
        "eval_count": answer.eval_count,
        "eval_duration": _ns(end - answer.first) if answer.eval_count else 0,
    }
    extra = {} if chat else {"context": answer.context}
    # Go's `omitempty`: real Ollama leaves zero metrics out.
    metrics = {k: v for k, v in stats.items() if v}
    return {"done": True, "done_reason": answer.done_reason, **extra, **metrics}


def whole_fields(answer: Answer, chat: bool) -> dict[str, Any]:
    """The text-bearing fields of a stream=false answer: the streamed lines summed up."""
    text, thoughts = answer.content, "".join(answer.thinking)
    if not chat:
        return {"response": text, **({"thinking": thoughts} if thoughts else {})}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thoughts:
        message["thinking"] = thoughts
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return {"message": message}


async def play(
    answer: Answer, rate: Rate, emit: Callable[[str, Any], Awaitable[None]] | None
) -> Fault | None:
    """Pace the answer's chunks and apply its faults; returns a fault that ends it early."""
    await asyncio.sleep(answer.faults.stall_before)
    answer.first = time.monotonic()
    chunks = answer.chunks
    for index in range(len(chunks) + 1):
        # A stall lasts its seconds, or until the test ends it (end_stalls).
        if (fault := await answer.faults.due(index, len(chunks))) is not None:
            return fault
        if index < len(chunks):
            # Read the rate per token: tests may change it while a stream runs.
            tokens_per_second = rate()
            await asyncio.sleep(1 / tokens_per_second if tokens_per_second else 0)
            if emit is not None and (step := chunks[index]) is not None:
                await emit(*step)
    return None


async def send_stream(
    request: web.Request, name: str, answer: Answer, chat: bool, rate: Rate
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": NDJSON})

    async def emit(kind: str, value: Any) -> None:
        fields = chunk_fields(chat, kind, value)
        head = {"model": name, "created_at": now_rfc3339()}
        await resp.write(ndjson_line({**head, **fields, "done": False}))

    with contextlib.suppress(ConnectionError):  # the client hung up: just stop generating
        await resp.prepare(request)
        fault = await play(answer, rate, emit)
        if fault is not None and fault.kind == DROP:
            if request.transport is not None:
                request.transport.close()  # unlike abort(), flushes the chunks written so far
        elif fault is not None:
            await resp.write(ndjson_line({"error": fault.error}))
        else:
            head = {"model": name, "created_at": now_rfc3339()}
            tail = chunk_fields(chat, "content", answer.tail)
            last = {**head, **tail, **final_fields(answer, chat)}
            await resp.write(ndjson_line(last))
    return resp


async def send_whole(
    request: web.Request, name: str, answer: Answer, chat: bool, rate: Rate
) -> web.StreamResponse:
    fault = await play(answer, rate, None)
    if fault is not None and fault.kind == DROP:
        if request.transport is not None:
            request.transport.close()
        return web.Response()
    if fault is not None:
        # Without streaming, a runner failure can only be reported as a status.
        raise ApiError(500, fault.error)
    head = {"model": name, "created_at": now_rfc3339()}
    return json_response({**head, **whole_fields(answer, chat), **final_fields(answer, chat)})
