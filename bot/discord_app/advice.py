"""What a Discord user is told about an error: the core's neutral message, plus what they
(or an admin) can do about it with the bot's own commands. The CLI words its own advice."""

from __future__ import annotations

from bot.core.errors import (
    AttachmentError,
    ContextOverflowError,
    ModelNotFoundError,
    OllacordError,
    QuotaExceededError,
    ShuttingDownError,
    StructuredOutputError,
    VisionUnavailableError,
)


def explain(error: OllacordError) -> str:
    message = error.user_message
    if isinstance(error, QuotaExceededError):
        # Discord shows the time in each reader's own zone, counting down.
        when = f"<t:{int(error.refills_at.timestamp())}:R>"
        used = f"You've used your {error.limit:,} tokens for this {error.window}"
        return f"{used}; it refills {when}."
    if isinstance(error, AttachmentError) and error.reason == AttachmentError.TOO_LONG:
        return (
            f"{message} `/summarize file:` can summarize it instead, or an admin can choose "
            "a model with a larger window."
        )
    if isinstance(error, VisionUnavailableError):
        if error.vision_model is None:
            return (
                f"{message} An admin can choose a vision model for this channel with `/model` "
                "(for example llava or gemma3), or set VISION_MODEL for the whole bot."
            )
        return f"{message} An admin can pull it with `/model pull`."
    if isinstance(error, StructuredOutputError):
        return f"{message} Try again, or simplify the schema."
    if isinstance(error, ShuttingDownError):
        return f"{message} The bot is restarting or shutting down; please ask again in a minute."
    if isinstance(error, ModelNotFoundError):
        return f"{message} An admin can pull it with `/model pull`."
    if isinstance(error, ContextOverflowError):
        return (
            f"{message} Shorten it, start afresh with `/reset`, or ask an admin for a larger "
            "window (`/settings options num_ctx`)."
        )
    return message
