"""The core's errors are neutral; the Discord side adds advice in the bot's own commands."""

from __future__ import annotations

import pytest

from bot.core import errors
from bot.discord_app.advice import explain


def every_error() -> list[errors.OllacordError]:
    return [
        errors.ConfigError(["DISCORD_TOKEN: required"]),
        errors.StorageError(),
        errors.InvalidRequestError("The prompt is empty."),
        errors.OllamaUnavailableError("http://localhost:11434"),
        errors.OllamaConnectionLostError(),
        errors.OllamaTimeoutError(),
        errors.OllamaBusyError(),
        errors.OllamaServerError(),
        errors.OllamaRequestError("refused"),
        errors.ContextOverflowError(tokens=9000, window=4096),
        errors.ModelLoadError("out of memory"),
        errors.ModelNotFoundError("ghost"),
        errors.ShuttingDownError(),
    ]


@pytest.mark.parametrize("error", every_error(), ids=lambda e: type(e).__name__)
def test_the_core_names_no_front_end_command(error: errors.OllacordError) -> None:
    assert "`/" not in error.user_message and "ollacord " not in error.user_message
    assert explain(error).startswith(error.user_message)


def test_a_missing_model_is_explained_with_the_pull_command() -> None:
    error = errors.ModelNotFoundError("ghost")
    assert error.model == "ghost"
    assert explain(error) == (
        "The model `ghost` is not available on the server. An admin can pull it with `/model pull`."
    )


def test_a_context_overflow_suggests_reset_and_a_larger_window() -> None:
    text = explain(errors.ContextOverflowError(tokens=9000, window=4096))
    assert "9,000" in text and "4,096" in text
    assert "`/reset`" in text and "num_ctx" in text


def test_the_servers_own_overflow_refusal_gets_the_advice_once() -> None:
    import ollama

    from bot.core.ollama_client import _from_response_error

    refusal = ollama.ResponseError("Requested tokens (9000) exceed context window of 4096", 500)
    error = _from_response_error(refusal, "llama3.2")
    assert isinstance(error, errors.ContextOverflowError)
    assert explain(error).count("Shorten") == 1


def test_a_quota_refusal_shows_the_refill_as_a_discord_timestamp() -> None:
    from datetime import UTC, datetime

    refills = datetime(2026, 12, 1, 11, tzinfo=UTC)
    error = errors.QuotaExceededError("hour", 20_000, refills)
    when = int(refills.timestamp())
    assert explain(error) == (
        f"You've used your 20,000 tokens for this hour; it refills <t:{when}:R>."
    )
    assert "11:00 UTC" in error.user_message  # the CLI's neutral wording


def test_an_answer_cut_by_a_shutdown_says_to_ask_again() -> None:
    assert explain(errors.ShuttingDownError()) == (
        "Closed before this answer was complete. The bot is restarting or shutting down; "
        "please ask again in a minute."
    )
