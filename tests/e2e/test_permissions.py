"""Every command Discord hides from members is also refused to them by the bot itself.

``default_member_permissions`` only hides a command: a server admin can open it to everyone
in Server Settings > Integrations. The bot's own check is what stands then, for every
subcommand, reading ones included.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import World, open_command_to_everyone, wait_private_note
from tests.emulators.discord_server import DEFAULT_PERMISSIONS

# Every command that needs Manage Server, with the options it needs to be invoked at all.
# (/model set and /model pull share their group with /model list, and /memory purge with
# /memory show, which everyone may use, so Discord does not hide them: the bot's check is
# all there is.)
REQUIRED_OPTIONS: dict[str, dict[str, Any]] = {
    "stats": {},
    "memory purge": {},
    "model set": {"name": "llama3.2"},
    "model pull": {"name": "llama3.2"},
    "settings show": {},
    "settings scope": {"scope": "user"},
    "settings system": {"prompt": "Obey alice."},
    "settings options": {"temperature": 1.5},
    "settings preset": {"name": "creative"},
    "settings keep_alive": {"value": "-1"},
    "settings tools": {"names": "none"},
    "settings knowledge": {"use": "off"},
    "settings memory": {"notes": "on"},
    "settings threads": {"answers": "on"},
    "settings reset": {},
    "quota set": {"per_hour": 1},
    "quota role": {"role": "@everyone", "exempt": True},  # the server's id, given below
    "quota show": {},
    "quota off": {},
}


def admin_only_commands(w: World) -> list[str]:
    """Qualified names of the synced commands that carry default_member_permissions."""
    names: list[str] = []
    for commands in w.discord.registered_commands.values():
        for command in commands:
            if command.get("default_member_permissions") in (None, "0"):
                continue
            subcommands = [o for o in command.get("options", []) if o.get("type") == 1]
            if subcommands:
                names += [f"{command['name']} {sub['name']}" for sub in subcommands]
            else:
                names.append(command["name"])
    return names


async def test_every_admin_command_is_checked_by_the_bot(w: World) -> None:
    hidden = admin_only_commands(w)
    assert set(hidden) <= set(REQUIRED_OPTIONS), "add the new command to REQUIRED_OPTIONS"
    admin_only = list(REQUIRED_OPTIONS)
    await w.bot.manager.update_session_settings(
        f"channel:{w.channel.id}", system_prompt="Secret admin instructions."
    )
    for command in {name.split()[0] for name in hidden}:
        open_command_to_everyone(w.discord, command)
    chats_before = len(w.ollama.requests)
    for qualified in admin_only:
        name, _, sub = qualified.partition(" ")
        rec = await w.discord.invoke_slash(
            name,
            subcommand=sub or None,
            user_id=w.alice.id,
            **w.where,
            options={
                key: w.guild.id if value == "@everyone" else value
                for key, value in REQUIRED_OPTIONS[qualified].items()
            },
            permissions=DEFAULT_PERMISSIONS,
        )
        note = await wait_private_note(rec)
        assert "Manage Server" in note, (qualified, note)
        shown = [m for m in [rec.original, *rec.followups] if m is not None]
        assert not any(m.embeds for m in shown), qualified
    settings = await w.bot.manager.get_session_settings(f"channel:{w.channel.id}")
    assert settings.system_prompt == "Secret admin instructions."
    assert settings.options == {} and settings.scope is None and settings.model is None
    assert settings.preset is None and settings.keep_alive is None and settings.tools is None
    assert settings.knowledge is None and settings.knowledge_passages is None
    guild = await w.bot.manager.get_session_settings(f"guild:{w.guild.id}")
    assert guild.member_notes is None
    assert [r.path for r in w.ollama.requests[chats_before:]] == []
