"""Attachments in the Discord emulator: slash-command files, files on members' messages,
and the CDN that serves them, exercised by the unmodified discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp
import discord
import pytest

from tests.emulators.discord_server import (
    Channel,
    DiscordEmulator,
    Guild,
    Upload,
    User,
    png_bytes,
)
from tests.emulators.discord_testbot import GuildTestBot, bot_running_on

MB = 1024 * 1024


class FileBot(GuildTestBot):
    """Commands that take files."""

    def __init__(self, guild_id: int, *, intents: discord.Intents | None = None) -> None:
        super().__init__(guild_id, intents=intents)
        self.seen_files: list[discord.Attachment] = []
        tree = self.tree

        @tree.command(description="Ask, with an optional image")
        async def ask(
            interaction: discord.Interaction, prompt: str, image: discord.Attachment | None = None
        ) -> None:
            if image is not None:
                self.seen_files.append(image)
            name = image.filename if image is not None else "-"
            await interaction.response.send_message(f"{prompt}: {name}")

        @tree.command(description="Download a file unless it is over the limit")
        async def fetch(
            interaction: discord.Interaction,
            file: discord.Attachment,
            limit: int = MB,
            wait: float = 2.0,
        ) -> None:
            # Refuse on the declared size before downloading anything, as a bot should.
            if file.size > limit:
                await interaction.response.send_message(f"refused: {file.size} bytes")
                return
            await interaction.response.defer()
            try:
                data = await asyncio.wait_for(file.read(), wait)
            except (discord.HTTPException, TimeoutError) as exc:
                await interaction.edit_original_response(content=f"failed: {type(exc).__name__}")
                return
            await interaction.edit_original_response(content=f"read {len(data)}: {data[:12]!r}")


@dataclass
class Harness:
    emu: DiscordEmulator
    bot: FileBot
    guild: Guild
    channel: Channel
    alice: User

    @property
    def where(self) -> dict[str, int]:
        return {"user_id": self.alice.id, "channel_id": self.channel.id, "guild_id": self.guild.id}

    async def answer(self, name: str, **options: object) -> str:
        rec = await self.emu.invoke_slash(name, options=options, **self.where)
        await rec.wait_done()
        assert rec.original is not None
        return rec.original.content


@contextlib.asynccontextmanager
async def harness(intents: discord.Intents | None = None) -> AsyncIterator[Harness]:
    async with DiscordEmulator() as emu:
        guild = emu.add_guild()
        channel = emu.add_channel(guild.id)
        alice = emu.add_user("alice")
        emu.add_member(guild.id, alice.id)
        bot = FileBot(guild.id, intents=intents)
        async with bot_running_on(emu, bot):
            yield Harness(emu, bot, guild, channel, alice)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


def signed_query(url: str) -> dict[str, str]:
    query = parse_qs(urlsplit(url).query)
    return {k: v[0] for k, v in query.items()}


# ----- slash commands ------------------------------------------------------------


async def test_sync_accepts_file_options_and_rejects_unknown_types(h: Harness) -> None:
    [ask] = [c for c in h.emu.registered_commands[h.guild.id] if c["name"] == "ask"]
    assert [(o["name"], o["type"]) for o in ask["options"]] == [("prompt", 3), ("image", 11)]
    bad = {"name": "x", "description": "d", "type": 12}
    with pytest.raises(discord.HTTPException) as caught:
        await h.bot.http.bulk_upsert_guild_commands(
            h.emu.application_id,
            h.guild.id,
            [{"name": "bad", "description": "d", "type": 1, "options": [bad]}],
        )
    assert (caught.value.status, caught.value.code) == (400, 50035)
    errors = h.emu.command_syncs[-1].response["errors"]
    assert errors["0"]["options"]["0"]["type"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"


async def test_slash_upload_arrives_as_discord_sends_it(h: Harness) -> None:
    data = png_bytes(3, 2)
    rec = await h.emu.invoke_slash(
        "ask", options={"prompt": "what is this", "image": Upload("cat.png", data)}, **h.where
    )
    await rec.wait_done()
    [option_image] = [o for o in rec.payload["data"]["options"] if o["name"] == "image"]
    aid = option_image["value"]
    assert option_image["type"] == 11
    sent = rec.payload["data"]["resolved"]["attachments"][aid]
    assert sent["id"] == aid
    assert (sent["filename"], sent["size"], sent["content_type"]) == (
        "cat.png",
        len(data),
        "image/png",
    )
    assert (sent["width"], sent["height"], sent["ephemeral"]) == (3, 2, True)
    folder = f"/ephemeral-attachments/{h.emu.application_id}/{aid}/cat.png"
    assert sent["url"].startswith(f"{h.emu.base_url}{folder}?")
    assert sent["proxy_url"].startswith(f"{h.emu.base_url}/media{folder}?")
    query = signed_query(sent["url"])
    assert set(query) == {"ex", "is", "hm"}
    assert int(query["ex"], 16) > time.time() + 23 * 3600

    [file] = h.bot.seen_files
    assert (file.id, file.width, file.height, file.ephemeral) == (int(aid), 3, 2, True)
    assert await file.read() == data
    assert await file.read(use_cached=True) == data
    fetches = h.emu.cdn_fetches_of(file.id)
    assert [(f.via, f.status, f.bytes_sent, f.complete) for f in fetches] == [
        ("url", 200, len(data), True),
        ("proxy_url", 200, len(data), True),
    ]
    assert h.emu.attachments_of(rec)[0].data == data


async def test_files_list_fills_the_free_file_options(h: Harness) -> None:
    rec = await h.emu.invoke_slash(
        "ask",
        options={"prompt": "p"},
        attachments=[Upload("a.gif", b"GIF89a\x10\x00\x08\x00")],
        **h.where,
    )
    await rec.wait_done()
    assert rec.original is not None and rec.original.content == "p: a.gif"
    assert (h.bot.seen_files[0].width, h.bot.seen_files[0].height) == (16, 8)
    with pytest.raises(LookupError):
        await h.emu.invoke_slash(
            "ask",
            options={"prompt": "p"},
            attachments=[Upload("a", b""), Upload("b", b"")],
            **h.where,
        )
    with pytest.raises(TypeError):
        await h.emu.invoke_slash("ask", options={"prompt": Upload("a", b"")}, **h.where)


async def test_oversize_claim_is_refused_without_downloading(h: Harness) -> None:
    upload = Upload("huge.txt", b"only a few bytes", size=30 * MB)
    assert await h.answer("fetch", file=upload) == f"refused: {30 * MB} bytes"
    assert h.emu.cdn_fetches == []
    # The CDN serves what is stored, not 30 MB: a bot that ignores size gets the short body.
    assert await h.answer("fetch", file=upload, limit=100 * MB) == "read 16: b'only a few b'"


async def test_mislabelled_and_untyped_files(h: Harness) -> None:
    await h.answer(
        "ask", prompt="p", image=Upload("cat.png", b"not an image", content_type="image/png")
    )
    await h.answer("ask", prompt="p", image=Upload("README", b"plain words"))
    await h.answer("ask", prompt="p", image=Upload("notes.txt", "héllo".encode()))
    liar, untyped, text = h.bot.seen_files
    assert (liar.content_type, liar.width, liar.height) == ("image/png", None, None)
    assert await liar.read() == b"not an image"
    assert untyped.content_type is None
    assert text.content_type == "text/plain; charset=utf-8"
    resolved = h.emu.interactions[-2].payload["data"]["resolved"]["attachments"]
    assert all("content_type" not in a for a in resolved.values())


async def test_expired_or_tampered_links_are_404(h: Harness) -> None:
    assert await h.answer("fetch", file=Upload("old.txt", b"gone", expired=True)) == (
        "failed: NotFound"
    )
    [fetch] = h.emu.cdn_fetches
    assert (fetch.status, fetch.bytes_sent) == (404, 0)
    expired = h.emu.attachments_of(h.emu.interactions[-1])[0]
    assert int(signed_query(expired.url)["ex"], 16) < time.time()

    await h.answer("ask", prompt="p", image=Upload("ok.txt", b"fine"))
    url = h.bot.seen_files[-1].url
    with pytest.raises(discord.NotFound):
        await h.bot.http.get_from_cdn(url.replace("hm=", "hm=0"))
    with pytest.raises(discord.NotFound):
        await h.bot.http.get_from_cdn(url.split("?")[0])
    assert await h.bot.http.get_from_cdn(url) == b"fine"


async def test_forced_status_and_other_body(h: Harness) -> None:
    assert (
        await h.answer("fetch", file=Upload("a.txt", b"x", cdn_status=403)) == "failed: Forbidden"
    )
    assert await h.answer("fetch", file=Upload("b.txt", b"x", cdn_status=500)) == (
        "failed: HTTPException"
    )
    swapped = Upload("c.txt", b"the declared body", cdn_body=b"the decl")
    assert await h.answer("fetch", file=swapped) == "read 8: b'the decl'"


async def test_slow_cdn_delay_and_trickle(h: Harness) -> None:
    started = time.monotonic()
    assert await h.answer("fetch", file=Upload("slow.txt", b"x" * 10, cdn_delay=0.3)) == (
        "read 10: b'xxxxxxxxxx'"
    )
    assert time.monotonic() - started >= 0.3
    late = Upload("late.txt", b"x", cdn_delay=5)
    assert await h.answer("fetch", file=late, wait=0.1) == "failed: TimeoutError"

    body = bytes(range(200))
    trickle = Upload("drip.bin", body, cdn_bytes_per_second=400)
    assert await h.answer("fetch", file=trickle, wait=0.15) == "failed: TimeoutError"
    fetch = h.emu.cdn_fetches[-1]
    await h.emu.wait_for(lambda: fetch.finished_at is not None, timeout=3)
    assert not fetch.complete and 0 < fetch.bytes_sent < len(body)
    assert await h.answer("fetch", file=trickle) == f"read 200: {body[:12]!r}"
    # The client has every byte once Content-Length is reached, a moment before the
    # server's handler returns.
    done = h.emu.cdn_fetches[-1]
    await h.emu.wait_for(lambda: done.finished_at is not None, timeout=3)
    assert done.complete and done.bytes_sent == len(body)


async def test_a_pending_slow_fetch_does_not_hold_shutdown() -> None:
    emu = DiscordEmulator()
    await emu.start()
    att = emu.add_attachment("x.txt", b"x")
    att.cdn.delay = 60
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.get(att.url))
        await emu.wait_for(lambda: bool(emu.cdn_fetches))
        started = time.monotonic()
        await emu.stop()
        # Without waking the delay, cleanup would wait out its 2 s grace period.
        assert time.monotonic() - started < 1.5
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await request


# ----- messages ----------------------------------------------------------------


async def test_message_files_reach_on_message(h: Harness) -> None:
    image = png_bytes(4, 5)
    msg = await h.emu.send_user_message(
        h.channel.id,
        h.alice.id,
        "look",
        attachments=[Upload("notes.txt", b"hello"), Upload("my cat.png", image)],
    )
    await h.emu.wait_for(lambda: len(h.bot.seen_messages) == 1)
    [seen] = h.bot.seen_messages
    notes, cat = seen.attachments
    assert [a.id for a in seen.attachments] == [a.id for a in msg.attachments]
    assert (notes.content_type, notes.ephemeral, notes.width) == (
        "text/plain; charset=utf-8",
        False,
        None,
    )
    assert (cat.filename, cat.content_type, cat.width, cat.height) == (
        "my cat.png",
        "image/png",
        4,
        5,
    )
    assert urlsplit(notes.url).path == f"/attachments/{h.channel.id}/{notes.id}/notes.txt"
    assert urlsplit(cat.url).path == f"/attachments/{h.channel.id}/{cat.id}/my%20cat.png"
    assert await notes.read() == b"hello"
    assert await cat.read() == image
    assert [f.attachment_id for f in h.emu.cdn_fetches] == [notes.id, cat.id]


async def test_a_message_may_be_only_a_file(h: Harness) -> None:
    await h.emu.send_user_message(h.channel.id, h.alice.id, "", attachments=[Upload("a.txt", b"a")])
    await h.emu.wait_for(lambda: len(h.bot.seen_messages) == 1)
    assert h.bot.seen_messages[0].content == ""
    assert h.bot.seen_messages[0].attachments[0].filename == "a.txt"
    old = h.emu.add_message(h.channel.id, h.alice.id, "", attachments=[Upload("b.txt", b"b")])
    channel = h.bot.get_channel(h.channel.id)
    assert isinstance(channel, discord.TextChannel)
    fetched = await channel.fetch_message(old.id)
    assert await fetched.attachments[0].read() == b"b"


async def test_files_are_hidden_without_the_message_content_intent() -> None:
    async with harness(discord.Intents.default()) as h:
        await h.emu.send_user_message(
            h.channel.id, h.alice.id, "look", attachments=[Upload("a.txt", b"a")]
        )
        await h.emu.wait_for(lambda: len(h.bot.seen_messages) == 1)
        assert h.bot.seen_messages[0].attachments == []
