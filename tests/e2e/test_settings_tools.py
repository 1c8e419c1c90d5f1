"""/settings tools end to end: the panel an admin chooses with, who may use it, and the tools
the next question offers Ollama."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.tools.registry import Tool, ToolContext
from tests.e2e.conftest import (
    World,
    open_command_to_everyone,
    private_notes,
    wait_private_note,
    world,
)
from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    InteractionRecord,
    Message,
    Permission,
    User,
)
from tests.emulators.discord_state import iter_components
from tests.emulators.ollama_models import EmulatedModel, default_models

DEFAULTS = ["calculator", "get_current_time", "search_conversation"]
SELECT, BUTTON = 3, 2


async def offered_tools(w: World, prompt: str = "hello") -> list[str]:
    """Ask and wait for the answer; the names of the tools its request offered Ollama."""
    before = len(w.ollama.requests)
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": prompt}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)
    (chat,) = [r for r in w.ollama.requests[before:] if r.path == "/api/chat"]
    return chat.tool_names


async def open_panel(
    w: World, user: User | None = None, names: str | None = None
) -> InteractionRecord:
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand="tools",
        user_id=(user or w.admin).id,
        **w.where,
        options={"names": names} if names is not None else None,
    )
    await wait_private_note(rec)
    return rec


def components(message: Message, kind: int) -> list[dict[str, Any]]:
    return [c for c in iter_components(message.components) if c["type"] == kind]


def preselected(message: Message) -> list[str]:
    (select,) = components(message, SELECT)
    return [o["value"] for o in select["options"] if o.get("default")]


async def choose(
    w: World, panel: InteractionRecord, values: list[str], user: User | None = None, **kw: Any
) -> InteractionRecord:
    assert panel.original is not None
    rec = await w.discord.choose_select(
        panel.original.id, 0, values, user_id=(user or w.admin).id, **kw
    )
    return await rec.wait_done()


async def press_reset(
    w: World, panel: InteractionRecord, user: User | None = None, **kw: Any
) -> InteractionRecord:
    assert panel.original is not None
    rec = await w.discord.press_button(panel.original.id, 0, user_id=(user or w.admin).id, **kw)
    return await rec.wait_done()


async def stored_tools(w: World) -> tuple[str, ...] | None:
    return (await w.bot.manager.get_session_settings(f"channel:{w.channel.id}")).tools


def extra_tool(name: str, source: str = "builtin") -> Tool:
    async def handler(_arguments: dict[str, Any], _context: ToolContext) -> str:
        return "ok"

    parameters = {"type": "object", "properties": {}}
    return Tool(name, f"The {name} tool", parameters, handler, source=source)


async def test_the_panel_shows_the_defaults_preselected(w: World) -> None:
    panel = await open_panel(w)
    assert panel.ephemeral
    text = panel.original.content
    assert "**Allowed here** (the defaults): `calculator`, `get_current_time`" in text
    assert "Off unless chosen: `read_channel` and every MCP server's tools" in text
    assert "`remember` joins where the server keeps members' notes" in text
    assert preselected(panel.original) == DEFAULTS
    (select,) = components(panel.original, SELECT)
    names = ["calculator", "get_current_time", "read_channel", "remember", "search_conversation"]
    assert [o["value"] for o in select["options"]] == names
    assert select["min_values"] == 0
    assert [b["label"] for b in components(panel.original, BUTTON)] == ["Reset to defaults"]


async def test_an_admin_chooses_tools_and_the_next_question_offers_exactly_those(
    w: World,
) -> None:
    assert await offered_tools(w) == DEFAULTS
    panel = await open_panel(w)
    chose = await choose(w, panel, ["calculator", "read_channel"])
    assert chose.ack_type == 7  # the panel itself shows the new choice
    assert "Saved." in panel.original.content
    assert "(this channel): `calculator`, `read_channel`" in panel.original.content
    assert preselected(panel.original) == ["calculator", "read_channel"]
    assert await stored_tools(w) == ("calculator", "read_channel")
    assert await offered_tools(w) == ["calculator", "read_channel"]


async def test_choosing_nothing_offers_no_tools(w: World) -> None:
    panel = await open_panel(w)
    await choose(w, panel, [])
    assert await stored_tools(w) == ()
    assert await offered_tools(w) == []


async def test_reset_to_defaults(w: World) -> None:
    panel = await open_panel(w)
    await choose(w, panel, ["read_channel"])
    assert await offered_tools(w) == ["read_channel"]
    await press_reset(w, panel)
    assert await stored_tools(w) is None
    assert "(the defaults)" in panel.original.content
    assert preselected(panel.original) == DEFAULTS
    assert await offered_tools(w) == DEFAULTS


async def test_a_member_is_refused_the_command(w: World) -> None:
    open_command_to_everyone(w.discord, "settings")
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand="tools",
        user_id=w.alice.id,
        **w.where,
        permissions=DEFAULT_PERMISSIONS,
    )
    note = await wait_private_note(rec)
    assert "Manage Server" in note
    assert rec.original is not None and rec.original.components == []


async def test_the_panel_refuses_anyone_but_its_admin(w: World) -> None:
    # The panel is ephemeral, so Discord shows it to its admin only; these interactions are
    # crafted with its ids, as a client could. Each callback checks for itself.
    panel = await open_panel(w)
    await choose(w, panel, ["calculator"])
    other_admin = w.discord.add_user("other admin")
    w.discord.add_member(
        w.guild.id, other_admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
    )
    attempts = [
        (w.alice, DEFAULT_PERMISSIONS, "Only the admin who opened this panel"),
        (other_admin, None, "Only the admin who opened this panel"),
        (w.admin, DEFAULT_PERMISSIONS, "Manage Server"),  # lost it since opening the panel
    ]
    for user, permissions, refusal in attempts:
        rec = await choose(w, panel, ["read_channel"], user, permissions=permissions)
        assert rec.ephemeral and refusal in "\n".join(private_notes(rec)), user
        rec = await press_reset(w, panel, user, permissions=permissions)
        assert rec.ephemeral and refusal in "\n".join(private_notes(rec)), user
    assert await stored_tools(w) == ("calculator",)
    assert preselected(panel.original) == ["calculator"]
    assert await offered_tools(w) == ["calculator"]


async def test_tools_chosen_by_name(w: World) -> None:
    panel = await open_panel(w, names="read_channel, calculator, read_channel")
    assert panel.original.content.startswith("Saved.")
    assert await offered_tools(w) == ["read_channel", "calculator"]
    await open_panel(w, names="none")
    assert await offered_tools(w) == []
    await open_panel(w, names="default")
    assert await offered_tools(w) == DEFAULTS


async def test_an_unknown_tool_name_is_refused_politely(w: World) -> None:
    await open_panel(w, names="calculator")
    rec = await open_panel(w, names="calculator, teleport")
    note = "\n".join(private_notes(rec))
    assert "There is no tool named teleport." in note
    tools = "calculator, get_current_time, read_channel, remember, search_conversation"
    assert f"The tools are: {tools}" in note
    assert "Traceback" not in note and rec.original.components == []
    assert await stored_tools(w) == ("calculator",)


async def test_past_25_tools_they_are_chosen_by_name(w: World) -> None:
    for number in range(30):
        w.bot.manager.tools.add(extra_tool(f"extra_{number:02}"))
    panel = await open_panel(w)
    assert components(panel.original, SELECT) == []
    assert [b["label"] for b in components(panel.original, BUTTON)] == ["Reset to defaults"]
    assert "More than 25 tools: name them with `/settings tools names:`" in panel.original.content
    rec = await w.discord.invoke_autocomplete(
        "settings",
        subcommand="tools",
        user_id=w.admin.id,
        **w.where,
        focused="names",
        value="calculator, extra_2",
    )
    await rec.wait_done()
    suggested = [c["value"] for c in rec.autocomplete_choices or []]
    assert suggested[:2] == ["calculator, extra_20", "calculator, extra_21"]
    assert len(suggested) == 10
    await open_panel(w, names="calculator, extra_27")
    assert await offered_tools(w) == ["calculator", "extra_27"]


async def test_a_down_servers_tools_stay_chosen_and_are_shown_unavailable(w: World) -> None:
    registry = w.bot.manager.tools
    registry.replace_source("weather", [extra_tool("weather.forecast", source="weather")])
    panel = await open_panel(w, names="weather.forecast, calculator")
    assert await offered_tools(w) == ["weather.forecast", "calculator"]
    registry.mark_unavailable("weather", "the server stopped answering")
    panel = await open_panel(w)
    text = panel.original.content
    assert "Chosen but missing now: `weather.forecast`" in text
    assert "Servers unavailable now: `weather`: the server stopped answering" in text
    assert "weather.forecast" not in [
        o["value"] for o in components(panel.original, SELECT)[0]["options"]
    ]
    await choose(w, panel, ["get_current_time"])
    # Not in the select, so not deselected: it comes back with its server.
    assert await stored_tools(w) == ("get_current_time", "weather.forecast")
    assert await offered_tools(w) == ["get_current_time"]
    rec = await open_panel(w, names="weather.alerts")
    assert "`weather` is unavailable now (the server stopped answering)" in rec.original.content


async def test_show_warns_when_the_channels_model_cannot_call_tools(tmp_path: Path) -> None:
    plain = EmulatedModel("plain:latest", capabilities=("completion",))
    async with world(tmp_path, ollama_options={"models": [*default_models(), plain]}) as w:
        await w.bot.manager.update_session_settings(f"channel:{w.channel.id}", model="plain")
        rec = await w.discord.invoke_slash(
            "settings", subcommand="show", user_id=w.admin.id, **w.where
        )
        await rec.wait_done()
        fields = {f["name"]: f["value"] for f in rec.original.embeds[0]["fields"]}
        assert fields["Tools"].endswith("`plain` cannot call tools: its answers use none.")
        assert await offered_tools(w) == []
