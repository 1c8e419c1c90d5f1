"""Named personas of a server (seed 003's assistants): a system prompt, and optionally a model,
a preset, options and tools of their own, chosen for a channel or for one question.

Everything a persona holds is checked when it is written, the way a channel's settings are
(``bot.core.queries.checked_settings``): a persona is sent with every later question, so
what Ollama would refuse then is refused now. How a persona's values rank against the
channel's and the server's is the router's (``bot.discord_app.routing``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot.core.errors import InvalidRequestError
from bot.core.presets import get_preset
from bot.core.queries import validate_options
from bot.core.tools.registry import ToolRegistry
from bot.core.types import GenerationConfig
from bot.storage.personas import PersonaNameTaken, PersonaRecord

if TYPE_CHECKING:
    from bot.storage.personas import PersonaStore

log = logging.getLogger(__name__)

Persona = PersonaRecord  # what the service returns: a plain, frozen value
MAX_PERSONAS = 25  # a server's; Discord's autocomplete shows at most 25 choices
MAX_NAME_CHARS = 40  # personas.name
MAX_DESCRIPTION_CHARS = 100  # personas.description, and a Discord choice's name
NO_PERSONA = "none"  # the choice that clears a channel's persona, so no persona has the name
# Lower-case letters, digits, '-' and '_': a name typed in a slash command, shown in a footer.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
UNCHANGED: Any = object()  # a field left out of an edit


def persona_scope(guild_id: int) -> str:
    return f"guild:{guild_id}"


def checked_name(name: str) -> str:
    """A persona's name, lower-cased; refused unless 1-40 letters, digits, '-' or '_'."""
    cleaned = name.strip().lower()
    if not NAME_PATTERN.fullmatch(cleaned) or len(cleaned) > MAX_NAME_CHARS:
        raise InvalidRequestError(
            f"A persona's name is 1 to {MAX_NAME_CHARS} lower-case letters, digits, '-' or "
            "'_', starting with a letter or digit."
        )
    if cleaned == NO_PERSONA:
        raise InvalidRequestError(f"`{NO_PERSONA}` means no persona, so no persona can be it.")
    return cleaned


class PersonaService:
    """A server's personas, checked before they are stored. ``model_available``: whether
    Ollama has a model (as ``/model set`` asks); None leaves models unchecked."""

    def __init__(
        self,
        store: PersonaStore,
        tools: ToolRegistry,
        *,
        max_system_prompt_chars: int,
        model_available: Callable[[str], Awaitable[bool]] | None = None,
        max_personas: int = MAX_PERSONAS,
    ) -> None:
        self._store = store
        self._tools = tools
        self._max_prompt = max_system_prompt_chars
        self._model_available = model_available
        self.max_personas = max_personas

    # reads ---------------------------------------------------------------------------------
    async def list(self, scope: str) -> list[Persona]:
        return await self._store.list(scope)

    async def get(self, scope: str, name: str) -> Persona | None:
        """The persona called ``name`` (any case), or None."""
        cleaned = name.strip().lower()
        if not NAME_PATTERN.fullmatch(cleaned) or len(cleaned) > MAX_NAME_CHARS:
            return None
        return await self._store.get(scope, cleaned)

    async def find(self, scope: str, name: str) -> Persona:
        """Like ``get``, refusing a name the server has no persona of."""
        persona = await self.get(scope, name)
        if persona is None:
            raise InvalidRequestError(
                f"This server has no persona named `{name.strip()[:MAX_NAME_CHARS]}` "
                "(`/persona list` shows them)."
            )
        return persona

    # writes --------------------------------------------------------------------------------
    async def create(
        self,
        scope: str,
        name: str,
        *,
        system_prompt: str,
        description: str | None = None,
        model: str | None = None,
        preset: str | None = None,
        options: Mapping[str, Any] | None = None,
        tools: Sequence[str] | None = None,
        created_by: int | None = None,
    ) -> Persona:
        cleaned = checked_name(name)
        if not system_prompt.strip():
            raise InvalidRequestError("A persona needs a system prompt.")
        fields = await self._checked(
            system_prompt=system_prompt,
            description=description,
            model=model,
            preset=preset,
            options=options,
            tools=tools,
        )
        try:
            persona = await self._store.create(
                scope, cleaned, created_by=created_by, limit=self.max_personas, **fields
            )
        except PersonaNameTaken as exc:
            raise InvalidRequestError(
                f"This server already has a persona named `{cleaned}` (`/persona edit` it)."
            ) from exc
        if persona is None:
            raise InvalidRequestError(
                f"A server has at most {self.max_personas} personas: delete one first."
            )
        log.info("%s: persona %s created", scope, cleaned)
        return persona

    async def edit(self, scope: str, name: str, **changes: Any) -> Persona:
        """Change the fields given (UNCHANGED or left out: kept; None: removed, except the
        system prompt, which a persona always has)."""
        given = {k: v for k, v in changes.items() if v is not UNCHANGED}
        if "system_prompt" in given and not (given["system_prompt"] or "").strip():
            raise InvalidRequestError("A persona needs a system prompt.")
        current = await self.find(scope, name)
        fields = await self._checked(**given)
        persona = await self._store.update(scope, current.name, **fields)
        if persona is None:  # deleted meanwhile
            raise InvalidRequestError(f"The persona `{current.name}` was just deleted.")
        return persona

    async def delete(self, scope: str, name: str) -> Persona:
        """Delete a persona; returns what it was."""
        persona = await self.find(scope, name)
        if not await self._store.delete(scope, persona.name):
            raise InvalidRequestError(f"The persona `{persona.name}` was just deleted.")
        log.info("%s: persona %s deleted", scope, persona.name)
        return persona

    # checks --------------------------------------------------------------------------------
    async def _checked(self, **fields: Any) -> dict[str, Any]:
        """``fields`` checked and normalised for the store (only those given)."""
        unknown = set(fields) - {"system_prompt", "description", "model", "preset", "options",
                                 "tools"}  # fmt: skip
        if unknown:
            raise InvalidRequestError(f"Unknown persona fields: {', '.join(sorted(unknown))}.")
        checked = dict(fields)
        prompt = fields.get("system_prompt")
        if prompt is not None and len(prompt) > self._max_prompt:
            raise InvalidRequestError(
                f"The system prompt is too long (at most {self._max_prompt} characters)."
            )
        description = fields.get("description")
        if description is not None:
            checked["description"] = description.strip()[:MAX_DESCRIPTION_CHARS] or None
        model = fields.get("model")
        if model is not None:
            checked["model"] = await self._checked_model(model)
        if fields.get("preset") is not None:
            checked["preset"] = get_preset(fields["preset"]).name
        if fields.get("options") is not None:
            checked["options"] = self._checked_options(fields["options"])
        if fields.get("tools") is not None:
            checked["tools"] = self._checked_tools(fields["tools"])
        return checked

    async def _checked_model(self, model: str) -> str:
        name = model.strip()
        if not name:
            raise InvalidRequestError("A model's name cannot be empty.")
        if self._model_available is not None and not await self._model_available(name):
            raise InvalidRequestError(
                f"The server has no model `{name}`. See `/model list`, or `/model pull` it first."
            )
        return name

    @staticmethod
    def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
        """As a channel's options are checked: known options, each in its range."""
        chosen = {k: v for k, v in options.items() if v is not None}
        unknown = set(chosen) - set(GenerationConfig.field_names())
        if unknown:
            raise InvalidRequestError(f"Unknown generation options: {', '.join(sorted(unknown))}.")
        validate_options(chosen)
        return chosen

    def _checked_tools(self, names: Sequence[str]) -> tuple[str, ...]:
        """Tools the bot has now (an empty list: none at all)."""
        if isinstance(names, str):
            raise InvalidRequestError("tools must be a list of tool names.")
        chosen = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
        unknown = [n for n in chosen if n not in self._tools]
        if unknown:
            raise InvalidRequestError(
                f"There is no tool named {', '.join(unknown)}. "
                f"The tools are: {', '.join(self._tools.names()) or 'none'}."
            )
        return chosen
