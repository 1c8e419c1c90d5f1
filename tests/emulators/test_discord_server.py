"""The Discord emulator, exercised by the unmodified discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import discord.http
import pytest
import yarl
from discord import app_commands

from tests.emulators.discord_server import (
    DEFAULT_PERMISSIONS,
    Channel,
    DiscordEmulator,
    Guild,
    Permission,
    User,
)
from tests.emulators.discord_testbot import GuildTestBot, bot_running_on

FRUITS = ["apple", "apricot", "banana", "cherry"]


class ConfirmView(discord.ui.View):
    def __init__(self, presses: list[int]) -> None:
        super().__init__(timeout=30)
        self.presses = presses

    @discord.ui.button(label="Yes", custom_id="yes", style=discord.ButtonStyle.green)
    async def yes(
        self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]
    ) -> None:
        self.presses.append(interaction.user.id)
        await interaction.response.edit_message(content="confirmed", view=None)


class PromptModal(discord.ui.Modal, title="System prompt"):
    text: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"prompt set: {self.text.value}", ephemeral=True)


class EmuBot(GuildTestBot):
    """A minimal bot: just enough app commands to drive every emulator path."""

    def __init__(self, guild_id: int, *, intents: discord.Intents | None = None) -> None:
        self.requested_urls: list[str] = []
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._trace_request)
        super().__init__(guild_id, intents=intents, http_trace=trace)
        self.errors: list[BaseException] = []
        self.button_presses: list[int] = []
        self.tree.on_error = self.on_tree_error  # type: ignore[method-assign]
        self._add_commands()

    async def _trace_request(
        self,
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.requested_urls.append(str(params.url))

    def _add_commands(self) -> None:
        tree = self.tree

        @tree.command(description="Defer, edit the reply several times, then follow up")
        async def stream(interaction: discord.Interaction, edits: int = 3) -> None:
            await interaction.response.defer()
            for i in range(edits):
                await interaction.edit_original_response(content=f"part {i}")
            await interaction.followup.send("follow-up")

        @tree.command(description="Answer only the caller")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("hush", ephemeral=True)

        @tree.command(description="Think privately, then answer")
        async def quiet(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.edit_original_response(content="private answer")

        @tree.command(description="Needs Manage Server")
        @app_commands.checks.has_permissions(manage_guild=True)
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("admin ok")

        @tree.command(description="Acknowledges too late")
        async def slowack(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.4)
            await interaction.response.defer()

        @tree.command(description="Acknowledges twice")
        async def doubleack(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            # discord.py refuses a second ack locally; forget the first so the
            # server is the one to refuse.
            interaction.response._response_type = None
            await interaction.response.defer()

        @tree.command(description="Answers with 2001 characters")
        async def toolong(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("x" * 2001)

        @tree.command(description="Edits the reply 20 times as fast as it can")
        async def burst(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            for i in range(20):
                await interaction.edit_original_response(content=f"edit {i}")

        @tree.command(description="Defers, then answers with a follow-up only")
        async def deferfollow(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await interaction.followup.send("answer")

        async def fruit_choices(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=f, value=f) for f in FRUITS if f.startswith(current)]

        @tree.command(description="Pick a fruit")
        @app_commands.autocomplete(fruit=fruit_choices)
        async def pick(interaction: discord.Interaction, fruit: str) -> None:
            await interaction.response.send_message(f"picked {fruit}")

        @tree.command(description="Ask for confirmation")
        async def buttons(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("choose", view=ConfirmView(self.button_presses))

        @tree.command(description="Mention the caller")
        async def mention(interaction: discord.Interaction, safe: bool) -> None:
            allowed = discord.AllowedMentions.none() if safe else discord.utils.MISSING
            await interaction.response.send_message(
                f"<@{interaction.user.id}> hi", allowed_mentions=allowed
            )

        @tree.command(description="Answer with files")
        async def withfile(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            report = discord.File(io.BytesIO(b"abc"), "report.txt")
            await interaction.edit_original_response(content="see file", attachments=[report])
            notes = discord.File(io.BytesIO(b"# notes"), "notes.md")
            followup = await interaction.followup.send("more", file=notes, wait=True)
            await followup.edit(content="more, edited")

        @tree.command(description="Ask for a system prompt")
        async def prompt(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(PromptModal())

        @tree.command(description="Read an attachment")
        async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
            data = await file.read()
            await interaction.response.send_message(f"{file.filename}:{len(data)}:{data.decode()}")

    async def on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(
            error.original if isinstance(error, app_commands.CommandInvokeError) else error
        )
        if (
            isinstance(error, app_commands.MissingPermissions)
            and not interaction.response.is_done()
        ):
            await interaction.response.send_message("You need Manage Server", ephemeral=True)


@dataclass
class Harness:
    emu: DiscordEmulator
    bot: EmuBot
    guild: Guild
    channel: Channel
    alice: User  # an ordinary member
    admin: User  # has Manage Server

    @property
    def where(self) -> dict[str, int]:
        return {"channel_id": self.channel.id, "guild_id": self.guild.id}


@contextlib.asynccontextmanager
async def harness(
    intents: discord.Intents | None = None, **emu_kwargs: Any
) -> AsyncIterator[Harness]:
    async with DiscordEmulator(**emu_kwargs) as emu:
        guild = emu.add_guild("Test Guild")
        channel = emu.add_channel(guild.id, "general")
        alice = emu.add_user("alice")
        emu.add_member(guild.id, alice.id)
        admin = emu.add_user("admin")
        emu.add_member(
            guild.id, admin.id, permissions=DEFAULT_PERMISSIONS | Permission.MANAGE_GUILD
        )
        bot = EmuBot(guild.id, intents=intents)
        async with bot_running_on(emu, bot):
            yield Harness(emu, bot, guild, channel, alice, admin)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


async def bot_channel(h: Harness) -> discord.TextChannel:
    channel = h.bot.get_channel(h.channel.id)
    assert isinstance(channel, discord.TextChannel)
    return channel


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


# ----- rate limits ----------------------------------------------------------------


async def test_forced_429_is_waited_out_and_applied_once(h: Harness) -> None:
    h.emu.force_429(1, retry_after=0.3, route_contains="/messages/@original")
    rec = await h.emu.invoke_slash("stream", user_id=h.alice.id, **h.where, options={"edits": 1})
    await rec.wait_done(lambda r: len(r.followups) == 1)
    assert h.emu.count_429() == 1
    edits = [c for c in h.emu.calls if c.route.endswith("/messages/{message_id}")]
    assert [c.status for c in edits] == [429, 200]
    assert edits[0].headers["Via"] == "1.1 google"
    assert edits[0].response["retry_after"] == 0.3
    assert edits[1].at - edits[0].at >= 0.25  # discord.py slept on retry_after
    assert rec.original is not None
    assert [content for _, content in rec.original.edits] == ["", "part 0"]


async def test_edit_burst_waits_on_headers_without_429() -> None:
    async with harness(edit_limit=5, edit_window=0.5) as h:
        rec = await h.emu.invoke_slash("burst", user_id=h.alice.id, **h.where)
        await rec.wait_done(
            lambda r: r.original is not None and r.original.content == "edit 19", timeout=15
        )
        patches = [c for c in h.emu.calls if c.method == "PATCH"]
        assert len(patches) == 20
        assert h.emu.count_429() == 0
        assert patches[4].headers["X-RateLimit-Remaining"] == "0"
        # 20 edits at 5 per 0.5 s need at least three full windows.
        assert patches[-1].at - patches[0].at >= 1.45
        assert rec.original is not None and len(rec.original.edits) == 21


async def test_the_global_limit_counts_bot_routes_not_webhooks() -> None:
    # 50 requests per second per bot across its routes; interaction webhooks are exempt.
    async with DiscordEmulator() as emu, aiohttp.ClientSession() as session:
        guild = emu.add_guild()
        channel = emu.add_channel(guild.id)
        auth = {"Authorization": f"Bot {emu.token}"}
        statuses, global_flags = [], []
        for _ in range(60):
            async with session.get(f"{emu.api_base}/channels/{channel.id}", headers=auth) as r:
                statuses.append(r.status)
                if r.status == 429:
                    body = await r.json()
                    global_flags.append((body["global"], r.headers.get("X-RateLimit-Global")))
                    assert r.headers["X-RateLimit-Scope"] == "global"
        assert statuses.count(200) == 50
        assert statuses.count(429) == 10
        assert set(global_flags) == {(True, "true")}
        # A webhook route is not held back by the spent global limit.
        async with session.get(f"{emu.api_base}/webhooks/1/nope") as r:
            assert r.status != 429


async def test_the_global_limit_can_be_lifted() -> None:
    async with DiscordEmulator(global_limit=None) as emu, aiohttp.ClientSession() as session:
        channel = emu.add_channel(emu.add_guild().id)
        auth = {"Authorization": f"Bot {emu.token}"}
        # 60 requests over two routes: within each route's bucket, over the global limit.
        for route in ("/users/@me", f"/channels/{channel.id}") * 30:
            async with session.get(f"{emu.api_base}{route}", headers=auth) as r:
                assert r.status == 200


# ----- gateway resume ---------------------------------------------------------------


async def test_op7_reconnect_resumes_and_replays(h: Harness) -> None:
    await h.emu.request_reconnect(wait=False)
    # Dispatched while the client is away: must be replayed after RESUME.
    await h.emu.send_user_message(h.channel.id, h.alice.id, "while away")
    await h.emu.wait_resumed(1)
    assert h.emu.identifies == 1
    resume = next(f for f in h.emu.gateway.received if f["op"] == 6)
    assert resume["d"]["session_id"] in h.emu.gateway.sessions
    await h.emu.wait_for(lambda: any(m.content == "while away" for m in h.bot.seen_messages))
    rec = await h.emu.invoke_slash("secret", user_id=h.alice.id, **h.where)
    await rec.wait_done()
    assert rec.original is not None and rec.original.content == "hush"


# ----- channels, messages, mentions ------------------------------------------------


async def test_channel_history_newest_first_and_permissions(h: Harness) -> None:
    for text in ("one", "two", "three"):
        h.emu.add_message(h.channel.id, h.alice.id, text)
    channel = await bot_channel(h)
    assert [m.content async for m in channel.history(limit=10)] == ["three", "two", "one"]
    assert [m.content async for m in channel.history(limit=2)] == ["three", "two"]
    everything = DEFAULT_PERMISSIONS | Permission.MENTION_EVERYONE
    h.emu.set_bot_permissions(h.channel.id, everything & ~Permission.READ_MESSAGE_HISTORY)
    assert [
        m async for m in channel.history(limit=10)
    ] == []  # as documented: no error, no messages
    h.emu.set_bot_permissions(h.channel.id, everything & ~Permission.VIEW_CHANNEL)
    with pytest.raises(discord.Forbidden) as excinfo:
        [m async for m in channel.history(limit=10)]
    assert excinfo.value.code == 50001
    await h.emu.wait_for(lambda: not channel.permissions_for(channel.guild.me).view_channel)


async def test_message_create_reaches_on_message(h: Harness) -> None:
    sent = await h.emu.send_user_message(
        h.channel.id, h.alice.id, "hello", mentions=[h.emu.bot_user_id]
    )
    await h.emu.wait_for(lambda: bool(h.bot.seen_messages))
    seen = h.bot.seen_messages[0]
    assert seen.id == sent.id
    assert seen.content == f"<@{h.emu.bot_user_id}> hello"
    assert h.bot.user in seen.mentions
    assert seen.author.id == h.alice.id


async def test_message_content_needs_the_intent_unless_mentioned() -> None:
    intents = discord.Intents.default()
    intents.message_content = False
    async with harness(intents=intents) as h:
        await h.emu.send_user_message(h.channel.id, h.alice.id, "plain")
        await h.emu.send_user_message(
            h.channel.id, h.alice.id, "ping", mentions=[h.emu.bot_user_id]
        )
        await h.emu.wait_for(lambda: len(h.bot.seen_messages) == 2)
        assert [m.content for m in h.bot.seen_messages] == ["", f"<@{h.emu.bot_user_id}> ping"]


async def test_allowed_mentions_recorded_and_pings_computed(h: Harness) -> None:
    safe = await h.emu.invoke_slash(
        "mention", user_id=h.alice.id, **h.where, options={"safe": True}
    )
    await safe.wait_done()
    assert safe.original is not None
    assert safe.original.allowed_mentions == {"parse": []}
    assert not safe.original.pinged
    unsafe = await h.emu.invoke_slash(
        "mention", user_id=h.alice.id, **h.where, options={"safe": False}
    )
    await unsafe.wait_done()
    assert unsafe.original is not None
    assert unsafe.original.allowed_mentions is None
    assert unsafe.original.pinged and unsafe.original.notified.users == {h.alice.id}
    channel = await bot_channel(h)
    loud = await channel.send("@everyone look")
    quiet = await channel.send("@everyone look", allowed_mentions=discord.AllowedMentions.none())
    assert h.emu.message(loud.id).mentions.everyone
    assert not h.emu.message(quiet.id).pinged
    # An edit without allowed_mentions parses afresh: Discord does not keep them.
    await quiet.edit(content=f"<@{h.alice.id}> edited")
    assert h.emu.message(quiet.id).pinged


async def test_message_limits(h: Harness) -> None:
    channel = await bot_channel(h)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send(embed=discord.Embed(description="d" * 4097))
    assert too_long.value.code == 50035
    fields = discord.Embed(title="t")
    for i in range(26):
        fields.add_field(name=f"n{i}", value="v")
    with pytest.raises(discord.HTTPException) as too_many:
        await channel.send(embed=fields)
    assert too_many.value.code == 50035
    big = [discord.Embed(description="d" * 4000) for _ in range(2)]
    with pytest.raises(discord.HTTPException) as too_big:
        await channel.send(embeds=big)
    assert too_big.value.code == 50035
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send()
    assert (empty.value.status, empty.value.code) == (400, 50006)
    reply_to = h.emu.add_message(h.channel.id, h.alice.id, "question")
    sent = await channel.send("answer", reference=channel.get_partial_message(reply_to.id))
    stored = h.emu.message(sent.id)
    assert stored.reference is not None and stored.reference["message_id"] == str(reply_to.id)
    assert stored.notified.users == {h.alice.id}  # replies ping their author by default
    started = time.monotonic()
    async with channel.typing():
        pass
    assert h.emu.typing and h.emu.typing[-1][0] >= started
