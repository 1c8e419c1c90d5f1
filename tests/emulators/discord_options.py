"""Slash command data as Discord builds it from what the user typed: option values
checked against the registered definitions, ``resolved`` entities (users, members,
channels, roles, attachments), and files a test uploads through an option."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .discord_attachments import Attachment, Upload, store_upload
from .discord_state import Channel, User, has_permission
from .discord_world import World

OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_ROLE = 8
OPTION_MENTIONABLE = 9
OPTION_ATTACHMENT = 11

# Raw option dicts, or {name: value} where a value may also be a User, Channel,
# Attachment or Upload.
Options = Sequence[dict[str, Any]] | dict[str, Any] | None


class CommandOptions:
    """Mixed into the interaction driver."""

    world: World

    def _attachment(self, value: Attachment | Upload) -> Attachment:
        """A file given to a slash option. Discord keeps such uploads apart from
        messages: under /ephemeral-attachments/{application_id}/, marked ephemeral."""
        if isinstance(value, Attachment):
            return value
        folder = f"ephemeral-attachments/{self.world.application_id}"
        return store_upload(self.world, value, folder=folder, ephemeral=True)

    def _command(self, name: str, guild_id: int | None, ctype: int = 1) -> dict[str, Any]:
        cmd = self.world.find_command(name, guild_id, ctype)
        if cmd is None:
            known = {
                scope: [c["name"] for c in cmds]
                for scope, cmds in self.world.registered_commands.items()
            }
            raise LookupError(
                f"command {name!r} is not registered for guild {guild_id} (registered: {known})"
            )
        return cmd

    def _build_options(
        self,
        definitions: list[dict[str, Any]],
        options: Options,
        resolved: dict[str, dict[str, Any]],
        guild_id: int | None,
    ) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in definitions}
        raw: list[dict[str, Any]]
        if options is None:
            raw = []
        elif isinstance(options, dict):
            raw = [{"name": k, "value": v} for k, v in options.items()]
        else:
            raw = [dict(o) for o in options]
        out: list[dict[str, Any]] = []
        for opt in raw:
            definition = by_name.get(opt["name"])
            if definition is None:
                raise LookupError(
                    f"option {opt['name']!r} is not defined (defined: {list(by_name)})"
                )
            opt.setdefault("type", definition["type"])
            value = opt.get("value")
            if isinstance(value, Attachment | Upload):
                if opt["type"] != OPTION_ATTACHMENT:
                    raise TypeError(f"option {opt['name']!r} (type {opt['type']}) takes no file")
                value = self._attachment(value)
            if isinstance(value, Attachment | User | Channel):
                value = value.id
            if opt["type"] in (
                OPTION_USER,
                OPTION_CHANNEL,
                OPTION_ROLE,
                OPTION_ATTACHMENT,
                OPTION_MENTIONABLE,
            ):
                value = str(value)
                self._resolve(opt["type"], int(value), resolved, guild_id)
            if value is not None:
                opt["value"] = value
            out.append(opt)
        return out

    def _resolve(
        self, otype: int, oid: int, resolved: dict[str, dict[str, Any]], guild_id: int | None
    ) -> None:
        world = self.world
        if otype == OPTION_ATTACHMENT:
            resolved.setdefault("attachments", {})[str(oid)] = world.attachment_payload(
                world.attachments[oid]
            )
        elif otype == OPTION_CHANNEL:
            ch = world.channels[oid]
            entry = world.channel_payload(ch)
            entry["permissions"] = str(world.bot_permissions(ch))
            resolved.setdefault("channels", {})[str(oid)] = entry
        elif otype == OPTION_ROLE or (otype == OPTION_MENTIONABLE and oid in world.roles):
            resolved.setdefault("roles", {})[str(oid)] = world.role_payload(world.roles[oid])
        else:
            resolved.setdefault("users", {})[str(oid)] = world.user_payload(world.users[oid])
            if guild_id is not None and oid in world.guilds[guild_id].members:
                member = world.guilds[guild_id].members[oid]
                entry = world.member_payload(
                    member, with_user=False, permissions=member.permissions
                )
                resolved.setdefault("members", {})[str(oid)] = entry

    def _command_data(
        self,
        name: str,
        guild_id: int | None,
        options: Options,
        subcommand: str | None,
        attachments: Sequence[Attachment | Upload] | None,
        *,
        permissions: int | None,
        user_id: int,
    ) -> dict[str, Any]:
        cmd = self._command(name, guild_id)
        contexts = cmd.get("contexts")
        context = 0 if guild_id is not None else 1
        if contexts is not None and context not in contexts:
            raise PermissionError(
                f"/{name} is not available in context {context} (contexts={contexts})"
            )
        required = cmd.get("default_member_permissions")
        if guild_id is not None and required is not None:
            perms = (
                permissions
                if permissions is not None
                else self.world.member_permissions(guild_id, user_id)
            )
            if not has_permission(perms, int(required)):
                raise PermissionError(
                    f"Discord hides /{name} from this member "
                    f"(default_member_permissions={required})"
                )
        definitions: list[dict[str, Any]] = cmd.get("options") or []
        path = subcommand.split() if subcommand else []
        chain: list[dict[str, Any]] = []
        for part in path:
            node = next(
                (
                    d
                    for d in definitions
                    if d["name"] == part
                    and d["type"] in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)
                ),
                None,
            )
            if node is None:
                raise LookupError(f"/{name} has no subcommand {part!r}")
            chain.append(node)
            definitions = node.get("options") or []
        resolved: dict[str, dict[str, Any]] = {}
        built = self._build_options(definitions, options, resolved, guild_id)
        if attachments:
            given = {o["name"] for o in built}
            slots = [
                d for d in definitions if d["type"] == OPTION_ATTACHMENT and d["name"] not in given
            ]
            if len(attachments) > len(slots):
                free = [d["name"] for d in slots]
                raise LookupError(f"{len(attachments)} files for the free file options {free}")
            for given_file, slot in zip(attachments, slots, strict=False):
                att = self._attachment(given_file)
                built.append(
                    {"name": slot["name"], "type": OPTION_ATTACHMENT, "value": str(att.id)}
                )
                self._resolve(OPTION_ATTACHMENT, att.id, resolved, guild_id)
        for node in reversed(chain):
            built = [{"name": node["name"], "type": node["type"], "options": built}]
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        return data
