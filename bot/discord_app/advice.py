"""What a Discord user is told about an error: the core's neutral message, plus what they
(or an admin) can do about it with the bot's own commands. The CLI words its own advice."""

from __future__ import annotations

from bot.core.errors import ContextOverflowError, ModelNotFoundError, OllacordError


def explain(error: OllacordError) -> str:
    message = error.user_message
    if isinstance(error, ModelNotFoundError):
        return f"{message} An admin can pull it with `/model pull`."
    if isinstance(error, ContextOverflowError):
        return (
            f"{message} Shorten it, start afresh with `/reset`, or ask an admin for a larger "
            "window (`/settings options num_ctx`)."
        )
    return message
