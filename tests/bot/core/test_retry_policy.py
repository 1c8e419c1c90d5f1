"""Only failures that another attempt can cure are retried: decided by status and error text."""

from __future__ import annotations

import pytest

from bot import OllamaRequestManager
from bot.core.errors import (
    ContextOverflowError,
    ModelLoadError,
    OllamaError,
    OllamaRequestError,
)
from bot.core.events import QueryEvent, RetryEvent
from tests.conftest import ManagerFactory
from tests.emulators.ollama_server import OllamaEmulator


def chat_count(emu: OllamaEmulator) -> int:
    return sum(1 for r in emu.requests if r.path == "/api/chat")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("Requested tokens (9000) exceed context window of 4096", ContextOverflowError),
        ("the request exceeds the available context size, try increasing it", ContextOverflowError),
        ("the input length exceeds the context length", ContextOverflowError),
        ('option "temperature" must be of type float32', OllamaRequestError),
        (
            'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object',
            OllamaRequestError,
        ),
        (
            "model requires more system memory (12.0 GiB) than is available (7.6 GiB)",
            ModelLoadError,
        ),
        ("cudaMalloc failed: out of memory", ModelLoadError),
    ],
)
async def test_a_500_that_can_only_repeat_is_not_retried(
    manager: OllamaRequestManager,
    ollama_emu: OllamaEmulator,
    error: str,
    expected: type[OllamaError],
) -> None:
    ollama_emu.fail_next(1, status=500, error=error)
    events: list[QueryEvent] = []
    with pytest.raises(expected) as caught:
        await manager.query(prompt="hi", on_event=events.append)
    assert not caught.value.retryable
    assert chat_count(ollama_emu) == 1
    assert not [e for e in events if isinstance(e, RetryEvent)]


async def test_a_context_overflow_inside_a_stream_is_not_retried(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator
) -> None:
    ollama_emu.error_mid_stream(0, error="Requested tokens (9000) exceed context window of 4096")
    with pytest.raises(ContextOverflowError):
        await manager.query(prompt="hi")
    assert chat_count(ollama_emu) == 1


@pytest.mark.parametrize(
    "error",
    [
        "model runner has unexpectedly stopped, this may be due to resource limitations",
        'Post "http://127.0.0.1:40139/completion": dial tcp 127.0.0.1:40139: connect: '
        "connection refused",
        "an error was encountered while running the model: unexpected EOF",
    ],
)
async def test_a_crashed_runner_is_retried(
    manager: OllamaRequestManager, ollama_emu: OllamaEmulator, error: str
) -> None:
    ollama_emu.fail_next(1, status=500, error=error)
    events: list[QueryEvent] = []
    result = await manager.query(prompt="hi", on_event=events.append)
    assert result.content == "Echo: hi"
    assert chat_count(ollama_emu) == 2
    assert [e.attempt for e in events if isinstance(e, RetryEvent)] == [1]


async def test_a_question_longer_than_the_window_is_refused_before_sending(
    make_manager: ManagerFactory, ollama_emu: OllamaEmulator
) -> None:
    manager = make_manager(default_num_ctx=1024)
    await manager.start()
    with pytest.raises(ContextOverflowError) as caught:
        await manager.query(prompt="word " * 2000)
    assert caught.value.window == 1024
    assert caught.value.tokens is not None and caught.value.tokens > 1024
    assert "context window" in caught.value.user_message
    assert chat_count(ollama_emu) == 0
