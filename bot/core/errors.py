"""Our typed errors: library errors are translated into these once, at the boundary
(``bot.core.ollama_client`` for Ollama, ``bot.storage`` for the database), keeping the cause
(``raise ... from exc``).

Each carries its data (the model, the host, the window...) and ``user_message``, a neutral
sentence about what happened. Advice naming a front end's commands is added by that front
end: ``bot.discord_app.advice`` for Discord, ``bot.cli.context.error_message`` for the CLI.

    OllacordError
    ├── ConfigError                   settings missing or invalid (every bad key named)
    ├── StorageError                  the database failed
    ├── InvalidRequestError           refused before asking anyone (bad option, empty prompt)
    │   ├── AttachmentError           an attached image or file cannot be used (filename)
    │   ├── VisionUnavailableError    images for a model that cannot see, and no VISION_MODEL
    │   ├── QuotaExceededError        the member used their tokens (window, limit, refills_at)
    │   └── MemberQueueFullError      the member has MAX_QUEUED_PER_MEMBER questions waiting
    ├── StructuredOutputError         the answer did not match its format or schema (errors)
    └── OllamaError                   talking to Ollama failed; partial_content, retryable
        ├── OllamaUnavailableError    cannot connect (retried)
        ├── OllamaConnectionLostError the stream broke mid-answer (retried)
        ├── OllamaTimeoutError        first token, silence or the whole answer too slow (retried)
        ├── OllamaBusyError           429/503: the server's queue is full (retried)
        ├── OllamaServerError         5xx or an error inside the stream (retried)
        ├── OllamaRequestError        the server refused the request itself (not retried)
        │   └── ContextOverflowError  the prompt does not fit the window
        ├── ModelLoadError            the model cannot be loaded (memory; not retried)
        └── ModelNotFoundError        no such model (the fallbacks are tried)
"""

from __future__ import annotations

from datetime import datetime


class OllacordError(Exception):
    """Base of every error ollacord raises on purpose."""

    user_message: str = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.user_message)
        if message:
            self.user_message = message


class ConfigError(OllacordError):
    """Settings are missing or invalid; ``problems`` names every bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid configuration: " + "; ".join(problems))


class StorageError(OllacordError):
    """The database failed (locked for too long, disk full, unreachable)."""

    user_message = "The bot's database is not answering right now; please try again shortly."


class InvalidRequestError(OllacordError):
    """The caller asked for something we refuse before contacting Ollama."""


class AttachmentError(InvalidRequestError):
    """An attached image or file cannot be used (too large, unreadable, of a kind we refuse).

    ``reason`` is one of the ``AttachmentError.*`` constants, for front ends that word their
    own advice; ``user_message`` says it neutrally, naming the file.
    """

    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    UNREADABLE = "unreadable"
    TOO_LONG = "too_long"  # its text does not fit the model's context window

    def __init__(self, filename: str, reason: str, message: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(message)


class VisionUnavailableError(InvalidRequestError):
    """Images were attached for a model that cannot see them, and no vision model can stand in.

    ``vision_model`` is the configured stand-in (None when unset, else it is not available).
    """

    def __init__(self, model: str, vision_model: str | None) -> None:
        self.model = model
        self.vision_model = vision_model
        if vision_model is None:
            message = f"The model `{model}` cannot see images, and no vision model is set."
        else:
            message = (
                f"The model `{model}` cannot see images, and the vision model "
                f"`{vision_model}` is not available on the server."
            )
        super().__init__(message)


class QuotaExceededError(InvalidRequestError):
    """The member used up a server's quota for this ``window`` ("hour" or "day"): ``limit``
    tokens; it refills at ``refills_at`` (aware, UTC)."""

    HOUR = "hour"
    DAY = "day"

    def __init__(self, window: str, limit: int, refills_at: datetime) -> None:
        self.window = window
        self.limit = limit
        self.refills_at = refills_at
        super().__init__(
            f"You've used your {limit:,} tokens for this {window}; it refills at "
            f"{refills_at:%H:%M} UTC."
        )


class MemberQueueFullError(InvalidRequestError):
    """The member already has ``waiting`` questions waiting or being answered (the cap)."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        noun = "question" if waiting == 1 else "questions"
        super().__init__(
            f"You already have {waiting} {noun} waiting; ask again when one is answered."
        )


class ShuttingDownError(OllacordError):
    """The request manager closed before this question's answer was complete: a question
    still waiting is refused, and one cut off past the close's grace ends with this."""

    user_message = "Closed before this answer was complete."


class StructuredOutputError(OllacordError):
    """The model's answer did not match the requested format or schema, even on a retry.

    ``errors`` lists what failed (at most a few lines); ``content`` is the last answer.
    """

    def __init__(self, errors: list[str], content: str) -> None:
        self.errors = errors
        self.content = content
        super().__init__(
            "The model's answer did not match the requested format: " + "; ".join(errors)
        )


class OllamaError(OllacordError):
    """Base for failures talking to Ollama.

    ``partial_content`` holds the text already produced when a stream failed midway, so the
    caller can still show it; ``retryable`` tells the manager whether another attempt may help.
    """

    retryable = False
    user_message = "The model server returned an error."

    def __init__(self, message: str | None = None, *, partial_content: str = "") -> None:
        super().__init__(message)
        self.partial_content = partial_content


class OllamaUnavailableError(OllamaError):
    retryable = True

    def __init__(self, host: str, *, partial_content: str = "") -> None:
        self.host = host
        super().__init__(
            f"Cannot reach the model server at {host}. Is Ollama running?",
            partial_content=partial_content,
        )


class OllamaConnectionLostError(OllamaError):
    retryable = True
    user_message = "The connection to the model server was lost mid-answer."
    # The same, when no text had come yet (a question still in the server's own queue).
    BEFORE_ANSWER = "The connection to the model server was lost before the answer began."


class OllamaTimeoutError(OllamaError):
    retryable = True
    user_message = "The model took too long to answer."


class OllamaBusyError(OllamaError):
    retryable = True
    user_message = "The model server is busy; please try again in a moment."


class OllamaServerError(OllamaError):
    retryable = True
    user_message = "The model server failed while answering."


class OllamaRequestError(OllamaError):
    """Ollama refused the request as invalid (HTTP 400): retrying cannot help."""


class ContextOverflowError(OllamaRequestError):
    """The prompt does not fit the context window: the same request would fail again.

    ``tokens`` (estimated or counted by the server) and ``window`` are None when unknown.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        tokens: int | None = None,
        window: int | None = None,
        partial_content: str = "",
    ) -> None:
        self.tokens = tokens
        self.window = window
        if message is None:
            size = f"about {tokens:,} tokens" if tokens else "too many tokens"
            limit = f"; the window is {window:,}" if window else ""
            message = f"The request is too long for the model's context window ({size}{limit})."
        super().__init__(message, partial_content=partial_content)


class ModelLoadError(OllamaError):
    """The server cannot run the model at all (not enough memory): retrying cannot help."""


class ModelNotFoundError(OllamaError):
    def __init__(self, model: str, *, partial_content: str = "") -> None:
        self.model = model
        super().__init__(
            f"The model `{model}` is not available on the server.",
            partial_content=partial_content,
        )
