"""Every admin command and HTTP route is refused to those who may not use it, and none can be
forgotten: the tests enumerate what the bot registered (its synced commands, its HTTP
router) and fail on anything this file does not classify.

``default_member_permissions`` only hides a command: a server admin can open it to everyone
in Server Settings > Integrations. The bot's own check is what stands then, for every
subcommand, reading ones included; this supersedes tests/e2e/test_permissions.py.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    World,
    open_command_to_everyone,
    stored_messages,
    wait_private_note,
)
from tests.emulators.discord_server import DEFAULT_PERMISSIONS, Upload
from tests.support.databases import fetch_all

# Every command that needs Manage Server, with the options it needs to be invoked at all
# ("@everyone" stands for the server's id). /model set, pull and bench share their group
# with /model list, /memory purge with /memory show, /kb add with /kb search and /persona
# create with /persona list, which everyone may use, so Discord does not hide them: the
# bot's check is all there is.
ADMIN_COMMANDS: dict[str, dict[str, Any]] = {
    "stats": {},
    "memory purge": {},
    "model set": {"name": "llama3.2"},
    "model pull": {"name": "llama3.2"},
    "model bench": {},
    "kb add": {"file": Upload("leak.txt", b"Planted by a member.")},
    "kb remove": {"name": "rules.txt"},
    "kb reembed": {},
    "persona create": {"name": "pirate", "system_prompt": "Obey alice."},
    "persona edit": {"name": "helper", "system_prompt": "Obey alice."},
    "persona delete": {"name": "helper"},
    "persona use": {"name": "helper"},
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
    "quota role": {"role": "@everyone", "exempt": True},
    "quota show": {},
    "quota off": {},
}
# Open to every member; what each shows depends on who asks where that matters:
# /session export of a shared conversation needs Manage Server (tested below), /reset
# forgets only the member's own conversation in a per-member channel, /persona list shows
# prompts only to admins, /kb search and retrieval honour a document's channels
# (tests/security/test_channel_isolation.py).
PUBLIC_COMMANDS = {
    "ask",
    "summarize",
    "reset",
    "usage",
    "session export",
    "model list",
    "model info",
    "model compare",
    "kb list",
    "kb search",
    "memory show",
    "memory forget",
    "persona list",
}
# Tables an admin command changes: a refused one leaves each exactly as it was.
GUARDED_TABLES = (
    "sessions",
    "kb_documents",
    "kb_chunks",
    "personas",
    "quota_policies",
    "bench_runs",
    "member_notes",
)


def registered_commands(w: World) -> dict[str, dict[str, Any]]:
    """Every invocable command the bot synced, by qualified name ("group sub")."""
    found: dict[str, dict[str, Any]] = {}
    for commands in w.discord.registered_commands.values():
        for command in commands:
            if command.get("type", 1) != 1:  # a context-menu command: invoked by its name
                found[command["name"]] = command
                continue
            options = command.get("options", [])
            subs = [o for o in options if o.get("type") == 1]
            groups = [o for o in options if o.get("type") == 2]
            for sub in subs:
                found[f"{command['name']} {sub['name']}"] = command
            for group in groups:
                for sub in group.get("options", []):
                    found[f"{command['name']} {group['name']} {sub['name']}"] = command
            if not subs and not groups:
                found[command["name"]] = command
    return found


async def test_every_registered_command_is_classified(w: World) -> None:
    registered = registered_commands(w)
    unclassified = set(registered) - set(ADMIN_COMMANDS) - PUBLIC_COMMANDS
    assert not unclassified, f"classify these in {__name__}: admin or public? {unclassified}"
    gone = (set(ADMIN_COMMANDS) | PUBLIC_COMMANDS) - set(registered)
    assert not gone, f"no longer registered, remove them here: {gone}"
    assert not set(ADMIN_COMMANDS) & PUBLIC_COMMANDS
    # What Discord hides from members is at least as much as the bot refuses them.
    hidden = {
        n for n, c in registered.items() if c.get("default_member_permissions") not in (None, "0")
    }
    assert hidden <= set(ADMIN_COMMANDS), hidden - set(ADMIN_COMMANDS)


def public_messages(w: World) -> int:
    return sum(1 for m in w.discord.channel_messages(w.channel.id) if not m.ephemeral)


def table_contents(w: World) -> dict[str, list[tuple[Any, ...]]]:
    url = w.settings.database_url
    return {t: sorted(map(repr, fetch_all(url, f"SELECT * FROM {t}"))) for t in GUARDED_TABLES}


async def admin_setup(w: World) -> None:
    """What a member's admin command could damage: a prompt, a document, a persona."""
    await w.bot.manager.update_session_settings(
        f"channel:{w.channel.id}", system_prompt="Secret admin instructions."
    )
    for name, options in (
        ("kb add", {"file": Upload("rules.txt", b"Be kind to each other.")}),
        ("persona create", {"name": "helper", "system_prompt": "Be helpful."}),
    ):
        group, _, sub = name.partition(" ")
        rec = await w.discord.invoke_slash(
            group, subcommand=sub, user_id=w.admin.id, **w.where, options=options
        )
        await wait_private_note(rec)


async def test_every_admin_command_is_refused_to_a_member_without_side_effects(w: World) -> None:
    await admin_setup(w)
    for command in {name.split()[0] for name in ADMIN_COMMANDS}:
        open_command_to_everyone(w.discord, command)
    before = table_contents(w)
    assert before["kb_documents"] and before["personas"]  # something to damage
    ollama_before = len(w.ollama.requests)
    channel_before = public_messages(w)
    for qualified, options in ADMIN_COMMANDS.items():
        name, _, sub = qualified.partition(" ")
        rec = await w.discord.invoke_slash(
            name,
            subcommand=sub or None,
            user_id=w.alice.id,
            **w.where,
            options={k: w.guild.id if v == "@everyone" else v for k, v in options.items()},
            permissions=DEFAULT_PERMISSIONS,
        )
        note = await wait_private_note(rec)
        assert "Manage Server" in note, (qualified, note)
        shown = [m for m in [rec.original, *rec.followups] if m is not None]
        assert not any(m.embeds or m.attachments for m in shown), qualified
    assert table_contents(w) == before
    settings = await w.bot.manager.get_session_settings(f"channel:{w.channel.id}")
    assert settings.system_prompt == "Secret admin instructions."
    # No model pulled, benchmarked or asked; nothing posted where others see it.
    assert [r.path for r in w.ollama.requests[ollama_before:]] == []
    assert public_messages(w) == channel_before


async def test_a_shared_conversation_is_exported_only_to_an_admin(w: World) -> None:
    await w.bot.manager.update_session_settings(
        f"channel:{w.channel.id}", system_prompt="Secret admin instructions."
    )
    w.ollama.set_reply("A private answer for bob.")
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.bob.id, **w.where, options={"prompt": "hi", "private": True}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)
    await stored_messages(w, f"channel:{w.channel.id}", 2)
    member = await w.discord.invoke_slash(
        "session", subcommand="export", user_id=w.alice.id, **w.where
    )
    assert "Manage Server" in await wait_private_note(member)
    assert not any(m.attachments for m in [member.original, *member.followups] if m)
    admin = await w.discord.invoke_slash(
        "session", subcommand="export", user_id=w.admin.id, **w.where
    )
    await admin.wait_done(lambda r: r.original is not None and bool(r.original.attachments))
    assert admin.original is not None
    assert "A private answer for bob." in admin.original.attachments[0].data.decode()
