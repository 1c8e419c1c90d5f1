"""Where a Discord message's conversation lives, and which settings apply to it.

Session ids: ``guild:<id>`` holds a server's defaults, ``channel:<id>`` a channel's
conversation and settings, ``channel:<id>:user:<id>`` one member's conversation when the
channel is per-user, ``dm:<id>`` a direct-message conversation. Settings resolve
channel over guild; the manager's defaults fill the rest. Options in their order of
precedence: the server's preset, the server's options, the channel's preset, the channel's
options (a preset is a choice made at its level, so it beats the options of the level below).

A persona (``bot.core.personas``: the one chosen for a question, else the channel's) is a
level above the channel: its model, system prompt and options win over the channel's and the
server's, and its preset outranks their options. Its tools replace the channel's list (of
them, those the bot has now: ``ToolRegistry.select`` drops the rest). A question's own
choices (``/ask`` model, preset, temperature) win over the persona's, in ``AnswerRun.ask``.
A channel whose persona was deleted answers with its own settings again. So, strongest
first: the question, the persona, the channel, the server, the bot's defaults.

A thread (``Place.parent_id`` set) is a conversation of its own, ``channel:<thread id>``,
always one for everyone in it (its channel's per-member scope does not split it), and it has
no settings of its own: its channel's apply (model, system prompt, preset, options,
keep-alive, tools, knowledge and the documents allowed there, persona), read when each
question is asked, so a change to the channel reaches its threads at once. Settings commands
used in a thread change its channel's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.errors import InvalidRequestError
from bot.core.manager import OllamaRequestManager
from bot.core.memory.notes import DM_SCOPE
from bot.core.personas import NO_PERSONA, Persona, PersonaService
from bot.core.presets import get_preset
from bot.core.quotas import Member
from bot.core.types import ChatTarget, GenerationConfig, Scope
from bot.storage import SessionSettings

MAX_SYSTEM_PROMPT_CHARS = 4000
MAX_NAMES_SHOWN_CHARS = 1500  # of the list of tools in a refusal (a message holds 2000)
UNCHANGED: Any = object()  # a keyword left out


@dataclass(frozen=True, slots=True)
class Place:
    """Where a request comes from, without any discord.py type."""

    channel_id: int
    user_id: int
    guild_id: int | None = None
    # The member's roles in the server (@everyone's id, the server's, included) and whether
    # they can manage it: for quotas (bot.core.quotas).
    role_ids: tuple[int, ...] = ()
    manages_server: bool = False
    # In a thread: the channel it belongs to, whose settings it uses (None elsewhere).
    parent_id: int | None = None

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None

    @property
    def settings_channel_id(self) -> int:
        """The channel whose settings apply here: a thread's parent, else the channel."""
        return self.parent_id if self.parent_id is not None else self.channel_id

    @property
    def member(self) -> Member:
        """Who asks, for quotas and the per-member queue cap."""
        scope = DM_SCOPE if self.guild_id is None else guild_key(self.guild_id)
        return Member(scope, self.user_id, self.role_ids, self.manages_server)


def guild_key(guild_id: int) -> str:
    return f"guild:{guild_id}"


def channel_key(channel_id: int) -> str:
    return f"channel:{channel_id}"


def member_key(channel_id: int, user_id: int) -> str:
    return f"channel:{channel_id}:user:{user_id}"


def dm_key(user_id: int) -> str:
    return f"dm:{user_id}"


def _first_set(*values: bool | None, default: bool) -> bool:
    for value in values:
        if value is not None:
            return value
    return default


def _bounded_list(names: Sequence[str]) -> str:
    text = ", ".join(names) or "none"
    if len(text) > MAX_NAMES_SHOWN_CHARS:
        text = text[:MAX_NAMES_SHOWN_CHARS].rsplit(", ", 1)[0] + ", …"
    return text


def _with_persona(
    options: dict[str, Any], preset: str | None, persona: Persona
) -> tuple[dict[str, Any], str | None]:
    """The options and preset of a target once ``persona`` joins it: its preset outranks
    the options below it, as a channel's outranks the server's."""
    if persona.preset:
        preset_sets = get_preset(persona.preset).options
        options = {k: v for k, v in options.items() if k not in preset_sets}
        preset = persona.preset
    return {**options, **persona.options}, preset


class ConversationRouter:
    def __init__(self, manager: OllamaRequestManager) -> None:
        self._manager = manager
        self._personas: PersonaService | None = None

    @property
    def personas(self) -> PersonaService:
        """The servers' personas (needs the database: built at first use, once)."""
        if self._personas is None:
            from bot.storage.engine import create_sessionmaker
            from bot.storage.personas import PersonaStore

            store = PersonaStore(create_sessionmaker(self._manager.services.engine))
            self._personas = PersonaService(
                store,
                self._manager.tools,
                max_system_prompt_chars=MAX_SYSTEM_PROMPT_CHARS,
                model_available=self._manager.is_model_available,
            )
        return self._personas

    async def _persona(
        self, place: Place, channel: SessionSettings, chosen: str | None
    ) -> Persona | None:
        """The persona a question answers as: ``chosen`` for it (refused if the server has
        none of that name), else the channel's (None once deleted: the channel's own
        settings apply again)."""
        if chosen is not None and place.guild_id is None:
            raise InvalidRequestError("Personas belong to servers, not direct messages.")
        name = chosen or channel.persona
        if not name or place.guild_id is None:
            return None
        scope = guild_key(place.guild_id)
        if chosen is not None:
            return await self.personas.find(scope, chosen)
        return await self.personas.get(scope, name)

    async def _settings(self, place: Place) -> tuple[SessionSettings, SessionSettings]:
        """(guild settings, channel settings) for a place; empty ones where none are stored."""
        if place.is_dm:
            found = await self._manager.store.settings_of([dm_key(place.user_id)])
            return SessionSettings(), found.get(dm_key(place.user_id), SessionSettings())
        keys = [guild_key(place.guild_id or 0), channel_key(place.settings_channel_id)]
        found = await self._manager.store.settings_of(keys)
        return found.get(keys[0], SessionSettings()), found.get(keys[1], SessionSettings())

    async def target(self, place: Place, *, persona: str | None = None) -> ChatTarget:
        """The conversation and settings of a question at ``place``; ``persona``: the one
        it answers as, instead of the channel's."""
        guild, channel = await self._settings(place)
        chosen = await self._persona(place, channel, persona)
        scope = Scope(channel.scope or Scope.CHANNEL)
        if place.parent_id is not None:
            scope = Scope.CHANNEL  # a thread is one conversation, whatever its channel's scope
        if place.is_dm:
            session_id = dm_key(place.user_id)
        elif scope is Scope.USER:
            session_id = member_key(place.channel_id, place.user_id)
        else:
            session_id = channel_key(place.channel_id)
        server_options = guild.options
        if channel.preset:
            # The channel's preset outranks the server's options it sets (the answer layers
            # a target's preset under all of its options).
            preset_sets = get_preset(channel.preset).options
            server_options = {k: v for k, v in guild.options.items() if k not in preset_sets}
        knowledge = _first_set(channel.knowledge, guild.knowledge, default=True)
        model = channel.model or guild.model
        system_prompt = channel.system_prompt or guild.system_prompt
        options = {**server_options, **channel.options}
        preset = channel.preset or guild.preset
        tools = channel.tools if channel.tools is not None else guild.tools
        if chosen is not None:
            model = chosen.model or model
            system_prompt = chosen.system_prompt or system_prompt
            options, preset = _with_persona(options, preset, chosen)
            tools = chosen.tools if chosen.tools is not None else tools
        return ChatTarget(
            session_id=session_id,
            scope=scope,
            model=model,
            system_prompt=system_prompt,
            options=options,
            preset=preset,
            keep_alive=channel.keep_alive or guild.keep_alive,
            tools=tools,
            knowledge_scope=None if place.guild_id is None else guild_key(place.guild_id),
            knowledge=knowledge and not place.is_dm,
            knowledge_passages=channel.knowledge_passages or guild.knowledge_passages,
            channel_id=place.settings_channel_id,  # documents allowed there are in its threads
            member_id=place.user_id,
            member_scope=DM_SCOPE if place.is_dm else guild_key(place.guild_id or 0),
            # Opted in on the server's settings only: a channel cannot opt its server in.
            member_notes=bool(guild.member_notes) and not place.is_dm,
            persona=None if chosen is None else chosen.name,
        )

    def settings_key(self, place: Place) -> str:
        return dm_key(place.user_id) if place.is_dm else channel_key(place.settings_channel_id)

    async def channel_settings(self, place: Place) -> tuple[SessionSettings, SessionSettings]:
        return await self._settings(place)

    async def set_scope(self, place: Place, scope: Scope) -> None:
        if place.is_dm:
            raise InvalidRequestError("Direct messages are always one conversation per user.")
        await self._manager.update_session_settings(self.settings_key(place), scope=scope)

    async def set_model(self, place: Place, model: str | None, *, guild_default: bool) -> None:
        if guild_default:
            if place.guild_id is None:
                raise InvalidRequestError("A server default can only be set in a server.")
            await self._manager.update_session_settings(guild_key(place.guild_id), model=model)
        else:
            await self._manager.update_session_settings(self.settings_key(place), model=model)

    async def set_system_prompt(self, place: Place, prompt: str | None) -> None:
        if prompt is not None and len(prompt) > MAX_SYSTEM_PROMPT_CHARS:
            raise InvalidRequestError(
                f"The system prompt is too long (at most {MAX_SYSTEM_PROMPT_CHARS} characters)."
            )
        await self._manager.update_session_settings(
            self.settings_key(place), system_prompt=prompt or None
        )

    async def set_options(self, place: Place, options: dict[str, Any]) -> dict[str, Any]:
        """Merge generation options into the channel's; a None value removes that option."""
        unknown = set(options) - set(GenerationConfig.field_names())
        if unknown:
            raise InvalidRequestError(f"Unknown options: {', '.join(sorted(unknown))}.")
        _, current = await self._settings(place)
        merged = {**current.options, **options}
        merged = {k: v for k, v in merged.items() if v is not None}
        settings = await self._manager.update_session_settings(
            self.settings_key(place), options=merged
        )
        return settings.options

    async def set_preset(self, place: Place, name: str | None) -> str | None:
        """The channel's preset (None: none); an unknown name is refused."""
        settings = await self._manager.update_session_settings(
            self.settings_key(place), preset=name
        )
        return settings.preset

    async def set_keep_alive(self, place: Place, value: str | None) -> str | None:
        """How long the model stays loaded after an answer here (None or empty: the server's
        or the bot's default); a value Ollama would not read is refused."""
        settings = await self._manager.update_session_settings(
            self.settings_key(place), keep_alive=value.strip() if value and value.strip() else None
        )
        return settings.keep_alive

    async def set_tools(self, place: Place, names: Sequence[str] | None) -> tuple[str, ...] | None:
        """The tools the model may use here (None: the default ones; empty: none).

        A name must be a tool the bot has now, or one already chosen here: an MCP server's
        tools are gone while it is down, and keeping them chosen brings them back with it.
        """
        if names is None:
            await self._manager.update_session_settings(self.settings_key(place), tools=None)
            return None
        chosen = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
        _, current = await self._settings(place)
        registry = self._manager.tools
        unknown = [n for n in chosen if n not in registry and n not in (current.tools or ())]
        if unknown:
            down = registry.unavailable
            why = [
                f" `{source}` is unavailable now ({reason})."
                for source, reason in down.items()
                if any(name.startswith(f"{source}.") for name in unknown)
            ]
            raise InvalidRequestError(
                f"There is no tool named {_bounded_list(unknown)}.{''.join(why)} "
                f"The tools are: {_bounded_list(registry.names())}."
            )
        await self._manager.update_session_settings(self.settings_key(place), tools=chosen)
        return chosen

    async def set_persona(self, place: Place, name: str | None) -> Persona | None:
        """The persona this channel answers as (None or ``none``: its own settings)."""
        if place.guild_id is None:
            raise InvalidRequestError("Personas belong to servers, not direct messages.")
        persona = None
        if name is not None and name.strip().lower() != NO_PERSONA:
            persona = await self.personas.find(guild_key(place.guild_id), name)
        await self._manager.update_session_settings(
            self.settings_key(place), persona=None if persona is None else persona.name
        )
        return persona

    async def drop_persona(self, channel_ids: Sequence[int], name: str) -> list[int]:
        """The channels among ``channel_ids`` that answered as ``name``, set back to their
        own settings (the persona was deleted)."""
        keys = [channel_key(c) for c in channel_ids]
        found = await self._manager.store.settings_of(keys)
        using = [c for c, key in zip(channel_ids, keys, strict=True)
                 if key in found and found[key].persona == name]  # fmt: skip
        for channel_id in using:
            await self._manager.update_session_settings(channel_key(channel_id), persona=None)
        return using

    async def set_knowledge(
        self, place: Place, *, enabled: bool | None = UNCHANGED, passages: int | None = UNCHANGED
    ) -> SessionSettings:
        """This channel's knowledge switch and passages per question (None: back to the
        server's or the bot's default; left out: unchanged)."""
        if place.is_dm:
            raise InvalidRequestError("Knowledge bases belong to servers, not direct messages.")
        changes: dict[str, Any] = {}
        if enabled is not UNCHANGED:
            changes["knowledge"] = enabled
        if passages is not UNCHANGED:
            changes["knowledge_passages"] = passages
        return await self._manager.update_session_settings(self.settings_key(place), **changes)

    async def reset_settings(self, place: Place) -> None:
        await self._manager.update_session_settings(
            self.settings_key(place),
            model=None,
            system_prompt=None,
            options={},
            scope=None,
            preset=None,
            keep_alive=None,
            tools=None,
            knowledge=None,
            knowledge_passages=None,
            persona=None,
            threads=None,
        )

    async def set_threads(self, place: Place, always: bool | None) -> bool:
        """Whether questions in this channel are always answered in threads of their own
        (None: the default, no); returns the switch now in effect."""
        if place.is_dm:
            raise InvalidRequestError("Threads exist only in server channels.")
        settings = await self._manager.update_session_settings(
            self.settings_key(place), threads=always
        )
        return bool(settings.threads)

    async def answers_in_threads(self, place: Place) -> bool:
        """Whether a question at ``place`` gets a thread of its own by its channel's choice
        (never in a direct message, nor in a thread: it is one already)."""
        if place.is_dm or place.parent_id is not None:
            return False
        _, channel = await self._settings(place)
        return bool(channel.threads)

    async def forget(self, place: Place, *, only_mine: bool) -> int:
        """Forget a conversation; returns how many messages were dropped.

        ``only_mine`` forgets the caller's own session of a per-user channel; otherwise the
        whole channel forgets, every member's session included. Settings are kept.
        """
        target = await self.target(place)
        store = self._manager.store
        if place.is_dm:
            return await store.clear_messages(target.session_id)
        if only_mine:
            if target.scope is not Scope.USER:
                raise InvalidRequestError(
                    "This channel shares one conversation, so there is no session of your own "
                    "to reset: use `/reset` with the scope `channel`."
                )
            return await store.clear_messages(target.session_id)
        channel = channel_key(place.channel_id)
        return await store.clear_messages(channel) + await store.clear_messages_prefix(
            f"{channel}:user:"
        )
