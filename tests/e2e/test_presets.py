"""A channel's preset and keep-alive end to end: the options and keep_alive Ollama receives,
each layer's precedence, and what /settings show says of them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import World, chat_bodies, private_notes, wait_private_note
from tests.emulators.discord_server import InteractionRecord

CREATIVE = {"temperature": 0.9, "top_p": 0.95, "num_predict": 1024}
PRECISE = {"temperature": 0.3, "top_p": 0.7, "num_predict": 2048}


async def ask(w: World, **options: Any) -> dict[str, Any]:
    """Ask and wait for the finished answer; returns the /api/chat body it caused."""
    before = len(chat_bodies(w.ollama))
    rec = await w.discord.invoke_slash(
        "ask", user_id=w.alice.id, **w.where, options={"prompt": "hello", **options}
    )
    await rec.wait_done(lambda r: r.original is not None and "-# " in r.original.content)
    bodies = chat_bodies(w.ollama)
    assert len(bodies) == before + 1
    return bodies[-1]


def sampling(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body["options"].items() if k != "num_ctx"}


async def settings(w: World, subcommand: str, **options: Any) -> InteractionRecord:
    rec = await w.discord.invoke_slash(
        "settings", subcommand=subcommand, user_id=w.admin.id, **w.where, options=options
    )
    if subcommand == "show":
        return await rec.wait_done()
    await wait_private_note(rec)
    return rec


async def shown(w: World) -> dict[str, str]:
    rec = await settings(w, "show")
    assert rec.ephemeral
    (embed,) = rec.original.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


async def test_a_channel_preset_reaches_ollama(w: World) -> None:
    rec = await settings(w, "preset", name="creative")
    assert rec.ephemeral and "preset is now `creative`" in rec.original.content
    assert sampling(await ask(w)) == CREATIVE
    rec = await settings(w, "preset", name="none")
    assert "no preset of its own" in rec.original.content
    assert sampling(await ask(w)) == {}


async def test_channel_options_beat_the_channel_preset(w: World) -> None:
    await settings(w, "preset", name="creative")
    await settings(w, "options", temperature=0.2)
    assert sampling(await ask(w)) == {**CREATIVE, "temperature": 0.2}


async def test_a_question_preset_beats_the_channel_options(w: World) -> None:
    await settings(w, "preset", name="creative")
    await settings(w, "options", temperature=0.2, seed=7)
    assert sampling(await ask(w, preset="precise")) == {**PRECISE, "seed": 7}


async def test_an_explicit_temperature_beats_the_question_preset(w: World) -> None:
    await settings(w, "options", temperature=0.2)
    assert sampling(await ask(w, preset="precise", temperature=1.5)) == {
        **PRECISE,
        "temperature": 1.5,
    }


async def test_the_channel_preset_beats_the_servers_options(w: World) -> None:
    await w.bot.manager.update_session_settings(
        f"guild:{w.guild.id}", options={"temperature": 0.1, "seed": 3}
    )
    assert sampling(await ask(w)) == {"temperature": 0.1, "seed": 3}
    await settings(w, "preset", name="creative")
    assert sampling(await ask(w)) == {**CREATIVE, "seed": 3}
    fields = await shown(w)
    assert fields["Options"].splitlines()[:4] == [
        "`temperature=0.9` (channel preset creative)",
        "`seed=3` (server)",
        "`top_p=0.95` (channel preset creative)",
        "`num_predict=1024` (channel preset creative)",
    ]


async def test_a_server_preset_gives_way_to_the_servers_options(w: World) -> None:
    await w.bot.manager.update_session_settings(
        f"guild:{w.guild.id}", preset="precise", options={"temperature": 0.1}
    )
    assert sampling(await ask(w)) == {**PRECISE, "temperature": 0.1}
    fields = await shown(w)
    assert fields["Preset"] == "`precise` (server)"
    assert "`temperature=0.1` (server)" in fields["Options"]
    assert "`top_p=0.7` (server preset precise)" in fields["Options"]


async def test_show_lists_each_setting_and_its_source(w: World) -> None:
    fields = await shown(w)
    assert fields["Preset"] == "none"
    assert fields["Keep-alive"] == "`5m` (the bot's default)"
    assert fields["Model"] == "`llama3.2` (the bot's default)"
    assert fields["Options"].startswith("none chosen: the model's own defaults")
    await settings(w, "preset", name="creative")
    await settings(w, "options", temperature=0.2)
    await settings(w, "keep_alive", value="-1")
    await settings(w, "tools", names="calculator")
    fields = await shown(w)
    assert fields["Preset"] == "`creative` (this channel)"
    assert fields["Keep-alive"] == "`-1` (this channel)"
    assert fields["Tools"].startswith("**Allowed here** (this channel): `calculator`")
    assert fields["Options"] == (
        "`temperature=0.2` (channel)\n"
        "`top_p=0.95` (channel preset creative)\n"
        "`num_predict=1024` (channel preset creative)\n"
        "Context window: `num_ctx` 8192 (DEFAULT_NUM_CTX)"
    )


async def test_show_says_which_tools_are_unavailable_now(w: World) -> None:
    await w.bot.manager.update_session_settings(
        f"channel:{w.channel.id}", tools=["calculator", "weather.forecast"]
    )
    w.bot.manager.tools.mark_unavailable("weather", "connection refused")
    tools = (await shown(w))["Tools"]
    assert "`calculator`, `weather.forecast`" in tools
    assert "Chosen but missing now: `weather.forecast`" in tools
    assert "Servers unavailable now: `weather`: connection refused" in tools


@pytest.mark.parametrize(
    ("value", "sent"),
    [("-1", -1), ("0", 0), ("300", 300), ("1h30m", "1h30m"), ("30s", "30s")],
)
async def test_a_channel_keep_alive_reaches_ollama(w: World, value: str, sent: object) -> None:
    assert (await ask(w))["keep_alive"] == "5m"
    await settings(w, "keep_alive", value=value)
    body = await ask(w)
    assert body["keep_alive"] == sent
    # "-1" as a string is no Go duration: Ollama would refuse it.
    assert isinstance(body["keep_alive"], str) == isinstance(sent, str)


async def test_an_empty_keep_alive_brings_back_the_default(w: World) -> None:
    await settings(w, "keep_alive", value="1h")
    rec = await settings(w, "keep_alive")
    assert "default keep-alive" in rec.original.content
    assert (await ask(w))["keep_alive"] == "5m"


@pytest.mark.parametrize("value", ["soon", "5 minutes", "1d", "5mins", "--1"])
async def test_a_bad_keep_alive_is_refused(w: World, value: str) -> None:
    await settings(w, "keep_alive", value="1h")
    rec = await w.discord.invoke_slash(
        "settings",
        subcommand="keep_alive",
        user_id=w.admin.id,
        **w.where,
        options={"value": value},
    )
    note = await wait_private_note(rec)
    assert rec.ephemeral and private_notes(rec) == [note]
    assert "not a keep-alive" in note and "Traceback" not in note
    stored = await w.bot.manager.get_session_settings(f"channel:{w.channel.id}")
    assert stored.keep_alive == "1h"
    assert (await ask(w))["keep_alive"] == "1h"
