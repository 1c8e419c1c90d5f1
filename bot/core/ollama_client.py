"""The one place that calls ``ollama.AsyncClient`` and translates its errors into ours."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import ollama
from pydantic import ValidationError

from bot.core.errors import (
    ContextOverflowError,
    ModelLoadError,
    ModelNotFoundError,
    OllacordError,
    OllamaBusyError,
    OllamaConnectionLostError,
    OllamaError,
    OllamaRequestError,
    OllamaServerError,
    OllamaTimeoutError,
    OllamaUnavailableError,
    ShuttingDownError,
)
from bot.core.hosts.spec import redact_url
from bot.core.types import ModelDetails, ModelInfo, PullProgress

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
SPARE_CONNECTIONS = 4
IDLE_CONNECTIONS = 8
PULL_CONNECTION_LOST = "the connection to the model server was lost during the download."


# The figures of an answer's final chunk (all of them add up over the rounds of an answer).
STAT_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def normalize_model_name(name: str) -> str:
    """Ollama treats a name without a tag as ``:latest``."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class OllamaClient:
    """A pooled ``ollama.AsyncClient`` with an explicit timeout (the library's default is none)."""

    def __init__(
        self,
        host: str,
        *,
        timeout: float,
        connect_timeout: float = CONNECT_TIMEOUT,
        max_streams: int = 4,
    ) -> None:
        self.host = host
        self.label = redact_url(host)  # what logs and errors name: never the password
        # As many connections as answers can stream at once, plus a few for model lists and
        # health checks. Few of them are kept idle: httpcore scans every connection of the
        # pool, and polls each idle one, whenever a response ends, so when fifty answers end
        # together a large idle pool costs more than reconnecting to Ollama does
        # (bench.streaming at N=100: last token -> final p95 ~275 ms with 104 kept, ~90 with 8).
        pool = max_streams + SPARE_CONNECTIONS
        self._client = ollama.AsyncClient(
            host=host,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=pool, max_keepalive_connections=min(pool, IDLE_CONNECTIONS)
            ),
            auth=_basic_auth(host),
        )
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        await self._client.close()

    @contextlib.contextmanager
    def _translate(self, model: str | None = None) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            ours = self._our_error(exc, model)
            if ours is None:
                raise
            raise ours from exc

    def _our_error(self, exc: Exception, model: str | None) -> OllacordError | None:
        """The library's error as ours; None for an error that is not the library's."""
        if self._closed and isinstance(exc, httpx.HTTPError | RuntimeError):
            # Closed under a request: its stream was cut, or it came after (a retry, a
            # question still planning) and httpx refused it with a RuntimeError.
            return ShuttingDownError()
        if isinstance(exc, ollama.ResponseError):
            return _from_response_error(exc, model)
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return OllamaUnavailableError(self.label)
        if isinstance(exc, httpx.TimeoutException):
            return OllamaTimeoutError()
        if isinstance(exc, httpx.TransportError):
            log.debug("transport error from %s: %r", self.label, exc)
            return OllamaConnectionLostError()
        if isinstance(exc, json.JSONDecodeError | ValidationError):
            log.warning("malformed answer from %s: %s", self.label, exc)
            return OllamaServerError("The model server sent a malformed answer.")
        return None

    def translating(self, model: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Translate the library's errors, raised inside this block, into ours."""
        return self._translate(model)

    async def open_chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any] | None = None,
        format: str | dict[str, Any] | None = None,
        keep_alive: str | float | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | str | None = None,
    ) -> AsyncIterator[ollama.ChatResponse]:
        """Start a streamed chat; call it and iterate inside ``translating(model)``.

        The library's own parts are handed out, not converted: bot.core.generation reads
        ``part.message.content`` in its hot loop, and one conversion call per token cost as
        much as the rest of our per-token work. ``tool_calls`` and ``final_stats`` below
        convert the rare parts.
        """
        return await self._client.chat(
            model=model,
            messages=messages,
            options=options,
            format=format,
            keep_alive=keep_alive,
            tools=tools or None,
            think=think,
            stream=True,
        )

    async def list_models(self) -> list[ModelInfo]:
        with self._translate():
            response = await self._client.list()
        return [_model_info(m) for m in response.models]

    async def show(self, model: str) -> ModelDetails:
        with self._translate(model):
            r = await self._client.show(model)
        details = r.details
        info = dict(r.modelinfo or {})
        arch = info.get("general.architecture")
        context = info.get(f"{arch}.context_length") if arch else None
        return ModelDetails(
            name=model,
            family=details.family if details else None,
            parameter_size=details.parameter_size if details else None,
            quantization_level=details.quantization_level if details else None,
            context_length=int(context) if context else None,
            capabilities=tuple(r.capabilities or ()),
            parameters=r.parameters,
            license=r.license,
        )

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        try:
            with self._translate(model):
                try:
                    async for p in await self._client.pull(model, stream=True):
                        yield PullProgress(p.status or "", completed=p.completed, total=p.total)
                except ollama.ResponseError as exc:
                    if exc.status_code == -1 or exc.status_code >= 500:
                        # An unknown name fails inside the stream ("file does not exist").
                        message = f"The pull of `{model}` failed: {exc.error}"
                        raise OllamaServerError(message) from exc
                    raise
        except OllamaConnectionLostError as exc:
            # Still a lost connection (the host's breaker counts it), but no answer broke off.
            exc.user_message = f"The pull of `{model}` failed: {PULL_CONNECTION_LOST}"
            raise

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        with self._translate(model):
            r = await self._client.embed(model=model, input=list(texts))
        return [list(v) for v in r.embeddings]

    async def running(self) -> dict[str, datetime | None]:
        """The models loaded now (``/api/ps``), normalized, with when each will be unloaded."""
        with self._translate():
            response = await self._client.ps()
        return {
            normalize_model_name(m.model or m.name or ""): m.expires_at
            for m in response.models
            if m.model or m.name
        }

    async def version(self) -> str:
        with self._translate():
            r = await self._client._request_raw("GET", "/api/version")
        return str(r.json().get("version", "unknown"))


# A 500 (or an error line inside a stream) says only "it failed", so whether another attempt
# can succeed is read from the error's text. These failures are about the request or the
# model, not a passing state of the server: the same request fails again, so the user is
# told at once instead of after three retries. Anything else (a runner that crashed or
# stopped, a dropped connection, EOF) is retried. Lowercase substrings.
CONTEXT_OVERFLOW_ERRORS = (
    "exceed context window",  # llama.cpp: "Requested tokens (N) exceed context window of M"
    "exceeds the available context size",  # llama.cpp's server
    "exceeds the context length",  # Ollama with truncate off: "the input length exceeds ..."
    "context length exceeded",
    "context_length_exceeded",
    "maximum context length",
)
INVALID_REQUEST_ERRORS = (
    "must be of type",  # Ollama: `option "temperature" must be of type float32` is a 500
    "must be of an array",
    "invalid option",
    "invalid format",  # Ollama 0.12: a format that is neither "json" nor a schema is a 500
    "does not support embeddings",  # a chat model on Ollama's own engine, asked to embed
)
MODEL_LOAD_ERRORS = (
    "requires more system memory",  # Ollama: the model does not fit in RAM
    "out of memory",
    "unable to allocate",
)


def _from_response_error(exc: ollama.ResponseError, model: str | None) -> OllamaError:
    status, detail = exc.status_code, str(exc.error)
    text = detail.lower()
    if status == 404 and model is not None:
        return ModelNotFoundError(model)
    if any(pattern in text for pattern in CONTEXT_OVERFLOW_ERRORS):
        return ContextOverflowError(
            f"The model server refused the request: it does not fit the context window ({detail})."
        )
    if status == 400 or any(pattern in text for pattern in INVALID_REQUEST_ERRORS):
        return OllamaRequestError(f"The model server refused the request: {detail}")
    if any(pattern in text for pattern in MODEL_LOAD_ERRORS):
        return ModelLoadError(f"The model server cannot run this model: {detail}")
    if status in (429, 503):
        return OllamaBusyError()
    if status == -1:
        # An {"error": ...} line inside a 200 stream: the runner died mid-answer.
        return OllamaServerError(f"The model stopped with an error: {detail}")
    if status >= 500:
        return OllamaServerError(f"The model server failed: {detail}")
    return OllamaError(f"The model server answered {status}: {detail}")


def _basic_auth(host: str) -> httpx.BasicAuth | None:
    """The user and password of ``http://user:pass@host`` (the library drops them from the
    URL it connects to), sent as HTTP basic authentication."""
    parts = urlsplit(host)
    if parts.username is None:
        return None
    return httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))


def tool_calls(message: ollama.Message) -> list[dict[str, Any]]:
    return [
        {"function": {"name": c.function.name, "arguments": dict(c.function.arguments or {})}}
        for c in (message.tool_calls or ())
    ]


def final_stats(part: ollama.ChatResponse) -> dict[str, int | None]:
    return {name: getattr(part, name) for name in STAT_FIELDS}


def _model_info(m: Any) -> ModelInfo:
    details = m.details
    return ModelInfo(
        name=m.model or "",
        size=int(m.size or 0),
        modified_at=m.modified_at,
        digest=m.digest or "",
        family=details.family if details else None,
        parameter_size=details.parameter_size if details else None,
        quantization_level=details.quantization_level if details else None,
    )
