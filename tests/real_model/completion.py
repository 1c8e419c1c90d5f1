"""/api/chat and /api/embed of the real-model server: a request becomes a prompt in the
model's template, fitted to its window, then generated and streamed as Ollama streams it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from llama_cpp import LlamaGrammar

from tests.emulators.ollama_answers import NDJSON, ApiError, json_response, ndjson_line
from tests.emulators.ollama_endpoints import NO_EMBEDDINGS, OLLAMA_ENGINE_FAMILIES
from tests.emulators.ollama_text import now_rfc3339, parse_keep_alive, qualified_name
from tests.real_model.decoding import CANCELLED
from tests.real_model.engine import Engine, Loaded, Run, Sampling, grammar_for
from tests.real_model.templates import parse_tool_calls

if TYPE_CHECKING:
    from tests.real_model.server import RealModelServer

DEFAULT_NUM_CTX: Final = 4096  # OLLAMA_CONTEXT_LENGTH's default in Ollama 0.12
TRUNCATE: Final = "truncate"
REFUSE: Final = "refuse"
# The runner's numKeep when it cuts a prompt: the first tokens (BOS, template start) stay.
NUM_KEEP: Final = 4
EMBED_TOO_LONG: Final = "input exceeds maximum context length"


@dataclass
class Generation:
    """One /api/chat answer as the model wrote it, for tests to compare with what users saw."""

    model: str
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    window: int
    prompt: str = ""  # the rendered template, as evaluated (after any cut)
    prompt_tokens: int = 0
    text: str = ""  # everything the model wrote (tool calls included), stop strings not
    content: str = ""  # what the client got as message content
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str = ""
    eval_count: int = 0
    stats: dict[str, int] = field(default_factory=dict)  # the final line's counts, durations
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def cancelled(self) -> bool:
        return self.done_reason == CANCELLED


BODY: Final = web.RequestKey[dict[str, Any] | None]("body")


async def read_body(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON object, read once (by the server's middleware)."""
    if BODY in request:
        return request[BODY]
    body = None
    if request.can_read_body:
        with contextlib.suppress(ValueError):
            parsed = json.loads(await request.read())
            body = parsed if isinstance(parsed, dict) else None
    request[BODY] = body
    return body


async def require_body(request: web.Request) -> dict[str, Any]:
    body = await read_body(request)
    if body is None:
        raise ApiError(400, "missing request body")
    return body


async def send_lines(request: web.Request, lines: Sequence[dict[str, Any]]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": NDJSON})
    await resp.prepare(request)
    for line in lines:
        await resp.write(ndjson_line(line))
    return resp


async def _acquire(engine: Engine, name: str, window: int, embedding: bool) -> tuple[Loaded, float]:
    """The model's runner, waited for in a thread; released again if the client left."""
    waiting = asyncio.to_thread(engine.acquire, name, window, embedding=embedding)
    task = asyncio.ensure_future(waiting)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda t: t.exception() or engine.release(t.result()[0], 0))
        raise


def _ns(seconds: float) -> int:
    return max(int(seconds * 1e9), 1)


@dataclass
class _Job:
    """A chat request ready to generate: its runner is held until the answer ends."""

    gen: Generation
    loaded: Loaded
    tokens: list[int]
    sampling: Sampling
    grammar: LlamaGrammar | None
    started: float
    load_seconds: float
    keep_alive: float
    tool_tag: str  # "": no tool parsing (no tools offered, or a model without them)


def _fit(server: RealModelServer, job: _Job, tools: list[dict[str, Any]]) -> list[int]:
    """The prompt's tokens within the window, as Ollama's chatPrompt and runner fit them."""
    gen, engine = job.gen, server.engine
    template = engine.specs[gen.model].template
    messages = list(gen.messages)
    gen.prompt = template.render(messages, tools)
    tokens = engine.tokenize(job.loaded.llama, gen.prompt)
    if len(tokens) < gen.window:
        return tokens
    if server.context_overflow == REFUSE:
        # llama.cpp's words; a 500, as its server has no better status for it.
        raise ApiError(
            500, f"Requested tokens ({len(tokens)}) exceed context window of {gen.window}"
        )
    server.truncations.append((len(tokens), gen.window))
    while len(tokens) >= gen.window:
        droppable = [i for i, m in enumerate(messages[:-1]) if m.get("role") != "system"]
        if not droppable:
            keep = gen.window - 1  # the runner cuts the oldest tokens after the first few
            return tokens[:NUM_KEEP] + tokens[len(tokens) - (keep - NUM_KEEP) :]
        del messages[droppable[0]]
        gen.prompt = template.render(messages, tools)
        tokens = engine.tokenize(job.loaded.llama, gen.prompt)
    return tokens


def _check(server: RealModelServer, name: str, body: dict[str, Any]) -> None:
    """The 400s Ollama answers before loading anything (server/routes.go's order)."""
    think = body.get("think")
    if think is True or isinstance(think, str):
        raise ApiError(400, f'"{body.get("model")}" does not support thinking')
    if body.get("tools") and "tools" not in server.engine.specs[name].capabilities:
        raise ApiError(400, f"{qualified_name(name)} does not support tools")


async def _load_only(
    server: RealModelServer, body: dict[str, Any], name: str, keep: float
) -> web.Response:
    """An empty chat only loads (or with keep_alive 0, unloads) the model."""
    if keep == 0:
        server.engine.unload(name)
    else:
        window = server.window(name, dict(body.get("options") or {}))
        loaded, _ = await _acquire(server.engine, name, window, False)
        server.engine.release(loaded, keep)
    head = {"model": body["model"], "created_at": now_rfc3339()}
    message = {"role": "assistant", "content": ""}
    reason = "unload" if keep == 0 else "load"
    return json_response({**head, "message": message, "done": True, "done_reason": reason})


async def chat(server: RealModelServer, request: web.Request) -> web.StreamResponse:
    started = time.monotonic()
    body = await require_body(request)
    name = server.lookup(body)
    _check(server, name, body)
    keep = parse_keep_alive(body.get("keep_alive"))
    messages = [dict(m) for m in body.get("messages") or []]
    if not messages:
        return await _load_only(server, body, name, keep)
    try:
        grammar = grammar_for(body.get("format"))
    except (ValueError, RuntimeError) as exc:
        raise ApiError(500, str(exc)) from None
    spec, options = server.engine.specs[name], dict(body.get("options") or {})
    tools = list(body.get("tools") or []) if spec.template.tool_tag else []
    gen = Generation(name, messages, options, server.window(name, options))
    loaded, load_seconds = await _acquire(server.engine, name, gen.window, False)
    sampling = Sampling.from_options(options, spec.template.stops)
    job = _Job(gen, loaded, [], sampling, grammar, started, load_seconds, keep,
               spec.template.tool_tag or "" if tools else "")  # fmt: skip
    try:
        job.tokens = _fit(server, job, tools)
    except BaseException:
        server.engine.release(loaded, keep)
        raise
    gen.prompt_tokens = len(job.tokens)
    server.generations.append(gen)
    return await _answer(server, request, body, job)


def _holding(held: str, tag: str) -> bool:
    """Ollama's tool parser holds text back while it could still begin a call."""
    start = held.lstrip()
    return start.startswith(tag) or tag.startswith(start)


async def _answer(
    server: RealModelServer, request: web.Request, body: dict[str, Any], job: _Job
) -> web.StreamResponse:
    loop, gen = asyncio.get_running_loop(), job.gen
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    cancelled = threading.Event()

    def emit(text: str) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, text)

    def run() -> Run:
        try:
            return server.engine.generate(
                job.loaded, job.tokens, job.sampling, job.grammar, cancelled, emit
            )
        finally:
            loop.call_soon_threadsafe(pieces.put_nowait, None)

    worker = asyncio.ensure_future(asyncio.to_thread(run))
    head = {"model": body["model"]}
    resp = web.StreamResponse(headers={"Content-Type": NDJSON})
    streaming = body.get("stream") is not False
    sent, held, holding = "", "", bool(job.tool_tag)
    try:
        if streaming:
            await resp.prepare(request)
        while (piece := await pieces.get()) is not None:
            if holding:
                held += piece
                if _holding(held, job.tool_tag):
                    continue
                piece, held, holding = held, "", False
            sent += piece
            if streaming:
                message = {"role": "assistant", "content": piece}
                line = {**head, "created_at": now_rfc3339(), "message": message, "done": False}
                await resp.write(ndjson_line(line))
    except BaseException:
        cancelled.set()  # the client hung up (or this failed): the runner stops at once
        raise
    finally:
        result = await asyncio.shield(worker)
        server.engine.release(job.loaded, job.keep_alive)
        gen.text, gen.eval_count = result.text, result.eval_count
        gen.done_reason, gen.content = result.done_reason, sent
        gen.finished.set()
    calls, rest = parse_tool_calls(held) if held else ([], "")
    gen.tool_calls, gen.content = calls, sent + rest
    message = {"role": "assistant", "content": rest if streaming else gen.content}
    if calls:
        message["tool_calls"] = calls
    end = time.monotonic()
    stats = {
        "total_duration": _ns(end - job.started),
        "load_duration": _ns(job.load_seconds),
        "prompt_eval_count": gen.prompt_tokens,
        "prompt_eval_duration": _ns(result.first_token - result.started),
        "eval_count": result.eval_count,
        "eval_duration": _ns(result.ended - result.first_token),
    }
    gen.stats = {k: v for k, v in stats.items() if v}
    last = {**head, "created_at": now_rfc3339(), "message": message, "done": True}
    # Go's omitempty: zero counts are left out.
    last |= {"done_reason": result.done_reason, **gen.stats}
    if not streaming:
        return json_response(last)
    with contextlib.suppress(ConnectionError):
        await resp.write(ndjson_line(last))
    return resp


async def embed(server: RealModelServer, request: web.Request) -> web.Response:
    """EmbedHandler: each text cut to the window unless truncate is false (then a 400);
    gemma3 runs on Ollama's own engine, which refuses to embed with a chat model."""
    started = time.monotonic()
    body = await require_body(request)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) and raw else raw if isinstance(raw, list) else []
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "invalid input type")
    name = server.lookup(body)
    window = server.window(name, dict(body.get("options") or {}))
    loaded, load_seconds = await _acquire(server.engine, name, window, True)
    try:
        if not texts:
            return json_response({"model": body["model"], "embeddings": []})
        if server.engine.architecture(name) in OLLAMA_ENGINE_FAMILIES:
            raise ApiError(500, NO_EMBEDDINGS)
        counted = [server.engine.tokenize(loaded.llama, t) for t in texts]
        if any(len(t) > window for t in counted):
            if body.get("truncate") is False:
                raise ApiError(400, EMBED_TOO_LONG)
            # Cut to the window, less the BOS and EOS the runner adds.
            texts = [
                _text(loaded, t[1 : window - 1]) if len(t) > window else s
                for t, s in zip(counted, texts, strict=True)
            ]
        vectors = await asyncio.to_thread(server.engine.embed, loaded, texts)
    finally:
        server.engine.release(loaded, parse_keep_alive(body.get("keep_alive")))
    return json_response(
        {
            "model": body["model"],
            "embeddings": vectors,
            "total_duration": _ns(time.monotonic() - started),
            "load_duration": _ns(load_seconds),
            "prompt_eval_count": sum(min(len(t), window) for t in counted),
        }
    )


def _text(loaded: Loaded, tokens: list[int]) -> str:
    return loaded.llama.detokenize(tokens).decode(errors="replace")
