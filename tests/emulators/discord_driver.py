"""Driving the bot the way users do: slash commands, autocomplete, buttons,
selects and modals, each dispatched as INTERACTION_CREATE."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from typing import Any

from .discord_attachments import Attachment, Upload
from .discord_gateway import Gateway
from .discord_interactions import interaction_payload
from .discord_options import CommandOptions, Options
from .discord_state import InteractionRecord, Message, iter_components
from .discord_world import World


class InteractionDriver(CommandOptions):
    """Mixed into DiscordEmulator; building command data is CommandOptions' part."""

    world: World
    gateway: Gateway

    def _dispatch_interaction(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        permissions: int | None,
        message: Message | None = None,
        name: str | None = None,
        custom_id: str | None = None,
    ) -> InteractionRecord:
        world = self.world
        if not self.gateway.live_sessions():
            raise RuntimeError("no bot is connected to the gateway")
        channel = world.channels[channel_id]
        if channel.guild_id != guild_id:
            raise ValueError(
                f"channel {channel_id} belongs to guild {channel.guild_id}, not {guild_id}"
            )
        if not self.gateway.serves(guild_id):
            # Discord would hold the event for a shard nobody connected: the test waits in vain.
            raise RuntimeError(f"no connected session serves the shard of guild {guild_id}")
        if guild_id is not None:
            if user_id not in world.guilds[guild_id].members:
                raise LookupError(
                    f"user {user_id} is not a member of guild {guild_id}: add_member first"
                )
            perms = (
                permissions
                if permissions is not None
                else world.member_permissions(guild_id, user_id)
            )
        else:
            perms = permissions if permissions is not None else world.bot_permissions(channel)
        iid = world.ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload = interaction_payload(
            world,
            interaction_id=iid,
            token=token,
            itype=itype,
            data=data,
            user_id=user_id,
            channel=channel,
            permissions=perms,
            message=message,
        )
        rec = InteractionRecord(
            id=iid,
            token=token,
            type=itype,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            payload=payload,
            dispatched_at=time.monotonic(),
            notifier=world.notifier,
            name=name,
            custom_id=custom_id,
            message_id=message.id if message is not None else None,
        )
        world.interactions[iid] = rec
        world.interactions_by_token[token] = rec
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        world.notifier.notify()
        return rec

    async def invoke_slash(
        self,
        name: str,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        options: Options = None,
        subcommand: str | None = None,
        permissions: int | None = None,
        attachments: Sequence[Attachment | Upload] | None = None,
    ) -> InteractionRecord:
        """A user runs a registered slash command. ``options`` is a list of raw option
        dicts (``type`` filled from the registered command when missing) or a
        ``{name: value}`` dict; ``subcommand`` may be ``"sub"`` or ``"group sub"``.
        A file option takes an ``Upload`` (stored as Discord stores slash uploads) or an
        ``Attachment`` made earlier; ``attachments`` fills the file options not named in
        ``options``, in their registered order."""
        data = self._command_data(
            name,
            guild_id,
            options,
            subcommand,
            attachments,
            permissions=permissions,
            user_id=user_id,
        )
        return await self._run_command(2, name, data, user_id, channel_id, guild_id, permissions)

    async def invoke_autocomplete(
        self,
        name: str,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        focused: str,
        value: str = "",
        options: Options = None,
        subcommand: str | None = None,
        permissions: int | None = None,
    ) -> InteractionRecord:
        """The user is typing ``value`` into option ``focused``; the bot's answer
        (callback type 8) lands in ``record.autocomplete_choices``."""
        raw: list[dict[str, Any]]
        if isinstance(options, dict):
            raw = [{"name": k, "value": v} for k, v in options.items()]
        else:
            raw = [dict(o) for o in options or []]
        raw.append({"name": focused, "value": value, "focused": True})
        data = self._command_data(
            name, guild_id, raw, subcommand, None, permissions=permissions, user_id=user_id
        )
        return await self._run_command(4, name, data, user_id, channel_id, guild_id, permissions)

    async def _run_command(
        self,
        kind: int,
        name: str,
        data: dict[str, Any],
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        permissions: int | None,
    ) -> InteractionRecord:
        """Dispatch a command interaction (2) or an autocomplete one (4), then yield once
        so the gateway writes it before the caller goes on."""
        rec = self._dispatch_interaction(
            kind,
            data,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            permissions=permissions,
            name=name,
        )
        await asyncio.sleep(0)
        return rec

    def _component(self, msg: Message, custom_id: int | str, component_type: int) -> dict[str, Any]:
        comps = [c for c in iter_components(msg.components) if c.get("type") == component_type]
        if isinstance(custom_id, int):
            if not 0 <= custom_id < len(comps):
                raise LookupError(
                    f"message {msg.id} has {len(comps)} components of type {component_type}"
                )
            comp = comps[custom_id]
        else:
            found = next((c for c in comps if c.get("custom_id") == custom_id), None)
            if found is None:
                ids = [c.get("custom_id") for c in comps]
                raise LookupError(f"message {msg.id} has no component {custom_id!r} (has {ids})")
            comp = found
        if comp.get("disabled"):
            raise PermissionError(f"component {comp.get('custom_id')!r} is disabled")
        if "custom_id" not in comp:
            raise ValueError("link buttons do not send interactions")
        return comp

    async def press_button(
        self,
        message_id: int,
        custom_id: int | str,
        *,
        user_id: int,
        channel_id: int | None = None,
        guild_id: int | None = None,
        permissions: int | None = None,
    ) -> InteractionRecord:
        """A user clicks a button (by custom_id, or by index among the message's buttons)."""
        msg = self.world.messages[message_id]
        comp = self._component(msg, custom_id, 2)
        return await self._component_interaction(
            msg, comp, {}, user_id, channel_id, guild_id, permissions
        )

    async def choose_select(
        self,
        message_id: int,
        custom_id: int | str,
        values: list[str],
        *,
        user_id: int,
        permissions: int | None = None,
    ) -> InteractionRecord:
        msg = self.world.messages[message_id]
        comp = self._component(msg, custom_id, 3)
        return await self._component_interaction(
            msg, comp, {"values": values}, user_id, None, None, permissions
        )

    async def _component_interaction(
        self,
        msg: Message,
        comp: dict[str, Any],
        extra: dict[str, Any],
        user_id: int,
        channel_id: int | None,
        guild_id: int | None,
        permissions: int | None,
    ) -> InteractionRecord:
        if channel_id is not None and channel_id != msg.channel_id:
            raise ValueError(f"message {msg.id} is in channel {msg.channel_id}, not {channel_id}")
        data = {"custom_id": comp["custom_id"], "component_type": comp["type"], **extra}
        rec = self._dispatch_interaction(
            3,
            data,
            user_id=user_id,
            channel_id=msg.channel_id,
            guild_id=msg.guild_id if guild_id is None else guild_id,
            permissions=permissions,
            message=msg,
            custom_id=comp["custom_id"],
        )
        await asyncio.sleep(0)
        return rec

    async def submit_modal(
        self, shown_by: InteractionRecord, values: dict[str, str]
    ) -> InteractionRecord:
        """The user fills in the modal the bot showed in answer to ``shown_by``."""
        modal = shown_by.modal
        if modal is None:
            raise LookupError(f"interaction {shown_by.id} did not answer with a modal")

        def answer(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for comp in components:
                entry: dict[str, Any] = {"type": comp["type"]}
                if "id" in comp:
                    entry["id"] = comp["id"]
                if comp["type"] == 4:
                    entry.update(
                        custom_id=comp["custom_id"], value=values.get(comp["custom_id"], "")
                    )
                elif comp["type"] in (3, 5, 6, 7, 8):
                    raw = values.get(comp["custom_id"], [])
                    entry.update(
                        custom_id=comp["custom_id"], values=raw if isinstance(raw, list) else [raw]
                    )
                if comp.get("components"):
                    entry["components"] = answer(comp["components"])
                if isinstance(comp.get("component"), dict):
                    entry["component"] = answer([comp["component"]])[0]
                out.append(entry)
            return out

        data = {
            "custom_id": modal["custom_id"],
            "components": answer(modal.get("components") or []),
        }
        message = self.world.messages.get(shown_by.message_id or 0)
        rec = self._dispatch_interaction(
            5,
            data,
            user_id=shown_by.user_id,
            channel_id=shown_by.channel_id,
            guild_id=shown_by.guild_id,
            permissions=None,
            message=message,
            custom_id=modal["custom_id"],
        )
        await asyncio.sleep(0)
        return rec
