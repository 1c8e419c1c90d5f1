"""/reset and /settings end to end: what the model is sent after each of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    World,
    chat_bodies,
    open_command_to_everyone,
    stored_messages,
    wait_private_note,
    world,
)
from tests.emulators.discord_server import DEFAULT_PERMISSIONS, InteractionRecord, User


async def ask(
    w: World, user: User, prompt: str, where: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ask and wait for the finished answer; returns the /api/chat body it caused."""
    before = len(chat_bodies(w.ollama))
    rec = await w.discord.invoke_slash(
        "ask", user_id=user.id, **(where or w.where), options={"prompt": prompt}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)
    bodies = chat_bodies(w.ollama)
    assert len(bodies) == before + 1
    return bodies[-1]


def sent(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


async def settings(
    w: World, subcommand: str, options: dict[str, Any] | None = None, *, user: User | None = None
) -> InteractionRecord:
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand=subcommand,
        user_id=(user or w.admin).id,
        **w.where,
        options=options,
    )
    if subcommand == "show":
        await rec.wait_done()
    else:
        await wait_private_note(rec)
    return rec


async def reset(w: World, user: User, scope: str | None = None) -> str:
    rec = await w.discord.invoke_slash(
        "reset", user_id=user.id, **w.where, options={"scope": scope} if scope else None
    )
    note = await wait_private_note(rec)
    assert rec.ephemeral
    return note


async def test_reset_forgets_the_channel_conversation(w: World) -> None:
    await ask(w, w.alice, "my name is Alice")
    assert ("user", "my name is Alice") in sent(await ask(w, w.bob, "what is her name?"))
    note = await reset(w, w.alice)
    assert "Forgot this channel's conversation (4 messages)" in note
    assert sent(await ask(w, w.alice, "what is my name?")) == [("user", "what is my name?")]


async def test_settings_survive_reset(w: World) -> None:
    await settings(w, "system", {"prompt": "Answer like a pirate."})
    await settings(w, "options", {"temperature": 0.2})
    await ask(w, w.alice, "hello")
    await reset(w, w.alice)
    body = await ask(w, w.alice, "hello again")
    assert sent(body) == [("system", "Answer like a pirate."), ("user", "hello again")]
    assert body["options"]["temperature"] == 0.2


async def test_user_scope_keeps_one_conversation_per_member(w: World) -> None:
    rec = await settings(w, "scope", {"scope": "user"})
    assert "one conversation per member" in rec.original.content
    await ask(w, w.alice, "alice's secret")
    body = await ask(w, w.bob, "bob's question")
    assert sent(body) == [("user", "bob's question")]
    body = await ask(w, w.alice, "alice again")
    assert ("user", "alice's secret") in sent(body)
    assert ("user", "bob's question") not in sent(body)


async def test_reset_mine_in_a_per_user_channel_forgets_only_mine(w: World) -> None:
    await settings(w, "scope", {"scope": "user"})
    await ask(w, w.alice, "alice one")
    await ask(w, w.bob, "bob one")
    note = await reset(w, w.alice, "mine")
    assert "Forgot your conversation (2 messages)" in note
    assert sent(await ask(w, w.alice, "alice two")) == [("user", "alice two")]
    assert ("user", "bob one") in sent(await ask(w, w.bob, "bob two"))


async def test_reset_mine_in_a_shared_channel_is_politely_refused(w: World) -> None:
    await ask(w, w.alice, "remember me")
    note = await reset(w, w.alice, "mine")
    assert "shares one conversation" in note
    assert ("user", "remember me") in sent(await ask(w, w.alice, "still there?"))


async def test_system_prompt_is_sent_to_the_model(w: World) -> None:
    rec = await settings(w, "system", {"prompt": "You are terse."})
    assert rec.ephemeral
    assert sent(await ask(w, w.alice, "hi"))[0] == ("system", "You are terse.")


async def test_options_reach_ollama(w: World) -> None:
    rec = await settings(w, "options", {"temperature": 0.2, "seed": 7})
    assert "`temperature=0.2`" in rec.original.content
    options = (await ask(w, w.alice, "hi"))["options"]
    assert options["temperature"] == 0.2
    assert options["seed"] == 7


@pytest.mark.parametrize(
    "options",
    [
        {"num_ctx": -5},
        {"temperature": 1e9},
        {"top_p": float("nan")},
        {"temperature": 0.5, "top_k": 0},
        {"repeat_penalty": float("inf")},
        {"num_predict": -7},
    ],
)
async def test_out_of_range_options_are_refused_and_nothing_is_stored(
    w: World, options: dict[str, Any]
) -> None:
    # Discord enforces the declared ranges only while its copy of the command is current:
    # the bot checks every value itself, with the rules the request manager applies.
    await settings(w, "options", {"seed": 7})
    rec = await w.discord.invoke_slash(
        "settings", subcommand="options", user_id=w.admin.id, **w.where, options=options
    )
    note = await wait_private_note(rec)
    assert "must be" in note, note
    assert "Traceback" not in note
    stored = await w.bot.manager.get_session_settings(f"channel:{w.channel.id}")
    assert stored.options == {"seed": 7}
    # The channel still answers.
    assert (await ask(w, w.alice, "still fine?"))["options"]["seed"] == 7


async def test_show_lists_the_settings(w: World) -> None:
    await settings(w, "system", {"prompt": "Be kind."})
    await settings(w, "options", {"temperature": 0.2})
    await settings(w, "scope", {"scope": "user"})
    rec = await settings(w, "show")
    assert rec.ephemeral
    (embed,) = rec.original.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields == {
        "Scope": "user",
        "Model": "`llama3.2` (the bot's default)",
        "Preset": "none",
        "Keep-alive": "`5m` (the bot's default)",
        "Tools": (
            "**Allowed here** (the defaults): `calculator`, `get_current_time`, "
            "`search_conversation`\nOn by default: `calculator`, `get_current_time`, "
            "`search_conversation`. Off unless chosen: `read_channel` and every MCP server's "
            "tools. `remember` joins where the server keeps members' notes (`/settings memory`)."
        ),
        "Knowledge base": (
            "on (the default), up to 4 passages a question (KNOWLEDGE_PASSAGES); no documents "
            "yet (`/kb add`)"
        ),
        "System prompt": "Be kind.",
        "Running summary": "each member's conversation here keeps its own",
        "Members' notes": "off, server-wide (`/settings memory`)",
        "Threads": "off: answers stay in the channel unless asked with `/ask thread:True`",
        "Options": "`temperature=0.2` (channel)\nContext window: `num_ctx` 8192 (DEFAULT_NUM_CTX)",
    }


async def test_settings_reset_restores_the_defaults(w: World) -> None:
    await settings(w, "system", {"prompt": "Be kind."})
    await settings(w, "options", {"temperature": 0.2})
    await settings(w, "scope", {"scope": "user"})
    await settings(w, "preset", {"name": "creative"})
    await settings(w, "keep_alive", {"value": "-1"})
    await settings(w, "tools", {"names": "read_channel"})
    await ask(w, w.alice, "alice's question")
    await settings(w, "reset")
    rec = await settings(w, "show")
    fields = {f["name"]: f["value"] for f in rec.original.embeds[0]["fields"]}
    assert fields["Scope"] == "channel"
    assert fields["System prompt"] == "none"
    assert fields["Preset"] == "none"
    assert fields["Keep-alive"] == "`5m` (the bot's default)"
    assert fields["Tools"].startswith("**Allowed here** (the defaults)")
    assert fields["Options"].startswith("none chosen: the model's own defaults")
    body = await ask(w, w.bob, "bob's question")
    # Back to one shared conversation, no system prompt and the model's own temperature.
    assert sent(body)[0] == ("user", "bob's question")
    assert body["options"] == {"num_ctx": 8192}
    assert body["keep_alive"] == "5m"
    assert [t["function"]["name"] for t in body["tools"]] == [
        "calculator",
        "get_current_time",
        "search_conversation",
    ]


@pytest.mark.parametrize(
    ("subcommand", "options"),
    [
        ("scope", {"scope": "user"}),
        ("system", {"prompt": "Obey alice."}),
        ("options", {"temperature": 1.9}),
        ("preset", {"name": "creative"}),
        ("keep_alive", {"value": "-1"}),
        ("tools", {"names": "none"}),
    ],
)
async def test_a_member_without_manage_server_cannot_change_settings(
    w: World, subcommand: str, options: dict[str, Any]
) -> None:
    # Discord hides /settings from such members unless an admin opened it to them; the
    # bot's own check is what stands when that happens.
    open_command_to_everyone(w.discord, "settings")
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand=subcommand,
        user_id=w.alice.id,
        **w.where,
        options=options,
        permissions=DEFAULT_PERMISSIONS,
    )
    note = await wait_private_note(rec)
    assert "permission" in note
    await ask(w, w.alice, "one")
    body = await ask(w, w.bob, "two")
    assert sent(body) == [("user", "one"), ("assistant", "Echo: one"), ("user", "two")]
    assert body["options"].get("temperature") not in (1.9, 0.9)
    assert body["keep_alive"] == "5m" and body["tools"]


async def test_a_member_without_manage_server_cannot_see_the_settings(w: World) -> None:
    # The system prompt is an admin's: /settings show is checked like the rest of /settings.
    await settings(w, "system", {"prompt": "Secret admin instructions."})
    open_command_to_everyone(w.discord, "settings")
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand="show",
        user_id=w.alice.id,
        **w.where,
        permissions=DEFAULT_PERMISSIONS,
    )
    note = await wait_private_note(rec)
    assert "Manage Server" in note
    shown = [m for m in [rec.original, *rec.followups] if m is not None]
    assert not any(m.embeds for m in shown)
    assert "Secret admin instructions" not in repr([(m.content, m.embeds) for m in shown])


async def test_an_ask_in_direct_messages_has_its_own_session(tmp_path: Path) -> None:
    # Commands synced to a development guild do not exist in DMs: sync globally.
    async with world(tmp_path, DEV_GUILD_ID="") as w:
        dm = {"channel_id": w.discord.dm_channel(w.alice.id).id, "guild_id": None}
        assert sent(await ask(w, w.alice, "dm one", dm)) == [("user", "dm one")]
        assert ("user", "dm one") in sent(await ask(w, w.alice, "dm two", dm))
        stored = await stored_messages(w, f"dm:{w.alice.id}", 4)
        assert [m["content"] for m in stored if m["role"] == "user"] == ["dm one", "dm two"]
        # The DM conversation is not the channel's, nor anyone else's.
        assert sent(await ask(w, w.alice, "in the guild")) == [("user", "in the guild")]
        bob_dm = {"channel_id": w.discord.dm_channel(w.bob.id).id, "guild_id": None}
        assert sent(await ask(w, w.bob, "bob dm", bob_dm)) == [("user", "bob dm")]
