"""The Discord emulator, exercised by the unmodified discord.py client: login, the gateway,
command sync and interactions. Rate limits, resuming, channels and messages:
test_discord_server_traffic.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import discord
import discord.http
import pytest
import yarl
from discord import app_commands

from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    DiscordEmulator,
)
from tests.emulators.discord_server_harness import EmuBot, Harness, bot_channel, harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


# ----- login, gateway, sync ----------------------------------------------------


async def test_login_ready_and_guild_cache(h: Harness) -> None:
    assert h.bot.user is not None and h.bot.user.id == h.emu.bot_user_id
    assert h.bot.application_id == h.emu.application_id
    guild = h.bot.get_guild(h.guild.id)
    assert guild is not None and guild.name == "Test Guild"
    assert guild.me is not None and guild.me.id == h.emu.bot_user_id
    channel = await bot_channel(h)
    assert channel.name == "general"
    assert channel.permissions_for(guild.me).send_messages
    assert h.emu.identifies == 1
    routes = [(c.method, c.route) for c in h.emu.calls[:2]]
    assert routes == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    # Nothing but the emulator was contacted, and the patch survived login.
    assert h.bot.requested_urls
    hosts = {yarl.URL(url).host_port_subcomponent for url in h.bot.requested_urls}
    assert hosts == {yarl.URL(h.emu.base_url).host_port_subcomponent}
    assert h.emu.api_base == discord.http.Route.BASE
    identify = next(f for f in h.emu.gateway.received if f["op"] == 2)
    assert identify["d"]["intents"] == h.bot.intents.value


async def test_command_sync_is_recorded_with_ids(h: Harness) -> None:
    assert len(h.emu.command_syncs) == 1
    sync = h.emu.command_syncs[0]
    assert sync.route == "/applications/{application_id}/guilds/{guild_id}/commands"
    names = {c["name"] for c in h.emu.registered_commands[h.guild.id]}
    assert {"stream", "secret", "admin", "pick", "buttons"} <= names
    assert None not in h.emu.registered_commands  # nothing synced globally
    ids = {c.name: c.id for c in h.bot.synced}
    assert ids == {c["name"]: int(c["id"]) for c in h.emu.registered_commands[h.guild.id]}


async def test_json_responses_and_auth() -> None:
    async with DiscordEmulator() as emu, aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bot {emu.token}"}
        async with session.get(f"{emu.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            for name in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
                assert f"X-RateLimit-{name}" in resp.headers
        async with session.get(
            f"{emu.api_base}/users/@me", headers={"Authorization": "Bot nope"}
        ) as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}


async def test_wrong_token_fails_login() -> None:
    async with DiscordEmulator() as emu:
        bot = EmuBot(0)
        with emu.patch_discord():
            with pytest.raises(discord.LoginFailure):
                await bot.login("wrong-token")
            await bot.close()
        assert [c.status for c in emu.calls] == [401]


# ----- interactions --------------------------------------------------------------


async def test_slash_defer_edits_and_followup(h: Harness) -> None:
    rec = await h.emu.invoke_slash("stream", user_id=h.alice.id, **h.where, options={"edits": 3})
    await rec.wait_done(lambda r: len(r.followups) == 1)
    assert rec.ack_type == 5 and not rec.ephemeral
    assert rec.original is not None
    assert [content for _, content in rec.original.edits] == ["", "part 0", "part 1", "part 2"]
    assert not rec.original.loading
    times = [t for t, _ in rec.original.edits]
    assert times == sorted(times)
    assert rec.followups[0].content == "follow-up"
    assert rec.errors == []
    callback = next(c for c in h.emu.calls if c.route.endswith("/callback"))
    assert callback.response["interaction"]["response_message_loading"] is True
    assert callback.response["resource"]["type"] == 5
    interaction = rec.payload
    assert interaction["data"]["options"] == [{"name": "edits", "type": 4, "value": 3}]


async def test_first_followup_after_defer_fills_the_thinking_message(h: Harness) -> None:
    rec = await h.emu.invoke_slash("deferfollow", user_id=h.alice.id, **h.where)
    await rec.wait_done()
    assert rec.original is not None and rec.original.content == "answer"
    assert rec.followups == []


async def test_ephemeral_responses(h: Harness) -> None:
    rec = await h.emu.invoke_slash("secret", user_id=h.alice.id, **h.where)
    await rec.wait_done()
    assert rec.ack_type == 4 and rec.ephemeral
    assert rec.original is not None and rec.original.content == "hush"
    assert rec.original.flags & 64
    quiet = await h.emu.invoke_slash("quiet", user_id=h.alice.id, **h.where)
    await quiet.wait_done()
    assert quiet.ack_type == 5 and quiet.ephemeral
    assert quiet.original is not None and quiet.original.content == "private answer"
    assert quiet.original.ephemeral
    # Ephemeral messages are not part of the channel's history.
    history = [m async for m in (await bot_channel(h)).history(limit=10)]
    assert history == []


async def test_public_interaction_replies_can_be_edited_through_the_channel(h: Harness) -> None:
    """As on Discord: the way to edit them once the interaction's token expired. Ephemeral
    ones are not in the channel ("Unknown Message")."""
    rec = await h.emu.invoke_slash("stream", user_id=h.alice.id, **h.where, options={"edits": 1})
    await rec.wait_done(lambda r: len(r.followups) == 1)
    assert rec.original is not None
    channel = await bot_channel(h)
    message = await channel.fetch_message(rec.original.id)
    await message.edit(content="edited later")
    assert rec.original.content == "edited later"
    quiet = await h.emu.invoke_slash("quiet", user_id=h.alice.id, **h.where)
    await quiet.wait_done()
    assert quiet.original is not None
    with pytest.raises(discord.NotFound):
        await channel.get_partial_message(quiet.original.id).edit(content="edited later")


async def test_permission_check_refuses_member_without_manage_server(h: Harness) -> None:
    refused = await h.emu.invoke_slash("admin", user_id=h.alice.id, **h.where)
    await refused.wait_done()
    assert refused.original is not None and refused.original.content == "You need Manage Server"
    assert refused.ephemeral
    assert isinstance(h.bot.errors[0], app_commands.MissingPermissions)
    assert int(refused.payload["member"]["permissions"]) == DEFAULT_PERMISSIONS
    allowed = await h.emu.invoke_slash("admin", user_id=h.admin.id, **h.where)
    await allowed.wait_done()
    assert allowed.original is not None and allowed.original.content == "admin ok"


async def test_late_ack_is_unknown_interaction() -> None:
    async with harness(ack_deadline=0.2) as h:
        rec = await h.emu.invoke_slash("slowack", user_id=h.alice.id, **h.where)
        await h.emu.wait_for(lambda: bool(h.bot.errors))
        error = h.bot.errors[0]
        assert isinstance(error, discord.NotFound)
        assert error.code == 10062
        assert not rec.acked
        assert rec.errors == [{"message": "Unknown interaction", "code": 10062}]


async def test_second_ack_is_rejected(h: Harness) -> None:
    rec = await h.emu.invoke_slash("doubleack", user_id=h.alice.id, **h.where)
    await h.emu.wait_for(lambda: bool(h.bot.errors))
    error = h.bot.errors[0]
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (400, 40060)
    assert rec.ack_type == 4 and rec.original is not None and rec.original.content == "first"


async def test_content_over_2000_is_invalid_form_body(h: Harness) -> None:
    rec = await h.emu.invoke_slash("toolong", user_id=h.alice.id, **h.where)
    await h.emu.wait_for(lambda: bool(h.bot.errors))
    error = h.bot.errors[0]
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (400, 50035)
    assert not rec.acked
    assert (
        rec.errors[0]["errors"]["data"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    )


async def test_autocomplete_choices_are_recorded(h: Harness) -> None:
    rec = await h.emu.invoke_autocomplete(
        "pick", user_id=h.alice.id, **h.where, focused="fruit", value="ap"
    )
    await rec.wait_done()
    assert rec.ack_type == 8
    assert rec.autocomplete_choices == [
        {"name": "apple", "value": "apple"},
        {"name": "apricot", "value": "apricot"},
    ]


async def test_button_press_reaches_the_view(h: Harness) -> None:
    rec = await h.emu.invoke_slash("buttons", user_id=h.alice.id, **h.where)
    await rec.wait_done()
    assert rec.original is not None
    message = rec.original
    assert message.components[0]["components"][0]["custom_id"] == "yes"
    press = await h.emu.press_button(message.id, "yes", user_id=h.alice.id, **h.where)
    await press.wait_done()
    assert press.ack_type == 7
    assert h.bot.button_presses == [h.alice.id]
    assert message.content == "confirmed" and message.components == []


async def test_attachment_option_is_downloadable(h: Harness) -> None:
    att = h.emu.add_attachment("notes.txt", b"hello world")
    rec = await h.emu.invoke_slash("upload", user_id=h.alice.id, **h.where, attachments=[att])
    await rec.wait_done()
    assert rec.original is not None and rec.original.content == "notes.txt:11:hello world"
    assert h.emu.rest.cdn_downloads == 1


async def test_files_are_parsed_from_multipart(h: Harness) -> None:
    rec = await h.emu.invoke_slash("withfile", user_id=h.alice.id, **h.where)
    await rec.wait_done(lambda r: bool(r.followups) and r.followups[0].content == "more, edited")
    assert rec.original is not None and rec.original.content == "see file"
    [report] = rec.original.attachments
    assert (report.filename, report.data) == ("report.txt", b"abc")
    [notes] = rec.followups[0].attachments
    assert (notes.filename, notes.data, notes.content_type) == (
        "notes.md",
        b"# notes",
        "text/markdown",
    )
    uploads = [c for c in h.emu.calls if c.files]
    assert [c.files for c in uploads] == [
        [("files[0]", "report.txt", 3)],
        [("files[0]", "notes.md", 7)],
    ]
    async with aiohttp.ClientSession() as session, session.get(report.url) as resp:
        assert await resp.read() == b"abc"


async def test_modal_round_trip(h: Harness) -> None:
    shown = await h.emu.invoke_slash("prompt", user_id=h.alice.id, **h.where)
    await shown.wait_done()
    assert shown.ack_type == 9 and shown.modal is not None
    assert shown.modal["title"] == "System prompt"
    submitted = await h.emu.submit_modal(shown, {"prompt": "be brief"})
    await submitted.wait_done()
    assert submitted.original is not None and submitted.original.content == "prompt set: be brief"
    assert submitted.ephemeral


async def test_interaction_token_rules() -> None:
    async with harness(token_ttl=0.3) as h, aiohttp.ClientSession() as session:
        rec = await h.emu.invoke_slash("secret", user_id=h.alice.id, **h.where)
        await rec.wait_done()
        callback = next(c for c in h.emu.calls if c.route.endswith("/callback"))
        assert callback.query == {"with_response": "1"}
        assert callback.response["interaction"]["response_message_ephemeral"] is True
        assert "X-RateLimit-Bucket" in callback.headers
        original = (
            f"{h.emu.api_base}/webhooks/{h.emu.application_id}/{rec.token}/messages/@original"
        )
        async with session.get(original) as resp:  # no Authorization needed
            assert resp.status == 200
            assert (await resp.json())["content"] == "hush"
        async with session.get(original.replace(rec.token, "bogus")) as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, 10015)
        await asyncio.sleep(0.35)
        async with session.patch(original, json={"content": "late"}) as resp:
            assert (resp.status, (await resp.json())["code"]) == (401, 50027)
