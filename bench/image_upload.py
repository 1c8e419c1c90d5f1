"""From an image attached to /ask to the model's request carrying it.

The real bot (``create_bot``) runs in this process against the Discord and Ollama emulators,
both in a child process (the Ollama one instant, with a vision model as VISION_MODEL). Two
images are made with Pillow: a photo-like 4000x3000 JPEG of about 5 MB (smooth colour
fields, texture and sensor grain) and a screenshot-like 2560x1440 PNG of about 1 MB (a chat
window of text with a picture in it). Each repetition asks /ask with one of them attached,
in a channel of its own (no earlier image in the history), alternating, and measures:

- sent -> download: the interaction dispatched by the emulator -> the bot starts downloading;
- download: the bot's ``download()`` of the attachment from the emulator's CDN;
- prepare: ``prepare_image`` in its thread (decode, downscale, encode), and its CPU time;
- -> request sent: prepared -> the /api/chat request's headers reach the Ollama emulator
  (planning, base64, the request's JSON, HTTP); request body: then until the emulator has
  read and parsed its body (the image, in base64);
- total: sent -> the request received; the bot's CPU for the whole question.

The two bot-side marks come from wrapping ``download`` and ``prepare_image`` where
``bot.discord_app.attachments`` looks them up, for the run only. Then, without the bot,
``prepare_image``'s stages and the request's encoding are timed on their own.

    .venv/bin/python -m bench.image_upload [--reps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import ollama
from PIL import Image, ImageDraw, ImageFont

from bench.streaming_analysis import percentile
from bench.streaming_child import child_process, shows_final
from bench.tool_rounds import serve_commands
from bot.core import images as core_images
from bot.core.config import Settings
from bot.core.images import PreparedImage
from bot.discord_app import attachments
from bot.discord_app.app import create_bot
from bot.discord_app.connection import point_discord_at
from tests.emulators.discord_server import DiscordEmulator, running_client

PROMPT = "What is in this picture?"
PHOTO, SCREENSHOT = "photo.jpg", "screenshot.png"
PHOTO_SIZE, PHOTO_BYTES = (4000, 3000), 5_000_000
SCREEN_SIZE, SCREEN_BYTES = (2560, 1440), 1_000_000
_WORDS = ("the", "bot", "reads", "images", "files", "people", "attach", "answers", "channel")


# -- the images -------------------------------------------------------------------------------
def _noise(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def _smooth(rng: random.Random, cells: tuple[int, int], size: tuple[int, int]) -> Image.Image:
    return _noise(rng, cells).resize(size, Image.Resampling.BICUBIC)


def make_photo(target: int = PHOTO_BYTES) -> bytes:
    """A 4000x3000 JPEG like a phone photo: colour fields, texture, grain; near ``target``."""
    rng = random.Random(PHOTO_SIZE[0])
    scene = Image.blend(
        _smooth(rng, (12, 9), PHOTO_SIZE), _smooth(rng, (160, 120), PHOTO_SIZE), 0.35
    )
    scene = Image.blend(scene, _smooth(rng, (1000, 750), PHOTO_SIZE), 0.25)
    scene = Image.blend(scene, _noise(rng, PHOTO_SIZE), 0.12)
    return _nearest(target, range(75, 97), lambda q: _save(scene, "JPEG", quality=q))


def make_screenshot(target: int = SCREEN_BYTES) -> bytes:
    """A 2560x1440 PNG like a chat app's window: text, side bars and a picture; near
    ``target`` (the picture's size is chosen for it)."""
    rng = random.Random(SCREEN_SIZE[0])
    width, height = SCREEN_SIZE
    window = Image.new("RGB", SCREEN_SIZE, (49, 51, 56))
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, 72, height), fill=(30, 31, 34))
    draw.rectangle((72, 0, 312, height), fill=(43, 45, 49))
    font = ImageFont.load_default(size=15)
    for y in range(20, height - 20, 22):
        draw.text((84, y), " ".join(rng.choices(_WORDS, k=3)), fill=(148, 155, 164), font=font)
    for y in range(30, height - 60, 24):
        line = " ".join(rng.choices(_WORDS, k=rng.randint(4, 22)))
        draw.text((340, y), line, fill=(219, 222, 225), font=font)

    def with_picture(side: int) -> bytes:
        size = (side, side * 3 // 4)
        picture = Image.blend(_smooth(rng, (8, 6), size), _noise(rng, size), 0.15)
        shot = window.copy()
        shot.paste(picture, (width - side - 60, 200))
        return _save(shot, "PNG")

    return _nearest(target, range(300, 1300, 20), with_picture)


def _save(image: Image.Image, fmt: str, **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _nearest(target: int, steps: range, make: Callable[[int], bytes]) -> bytes:
    """``make(step)`` nearest ``target`` bytes, for sizes that grow with the step (bisected)."""
    made: dict[int, bytes] = {}

    def size(index: int) -> int:
        step = steps[index]
        if step not in made:
            made[step] = make(step)
        return len(made[step])

    low, high = 0, len(steps) - 1
    while low < high:  # the first step whose file reaches the target
        middle = (low + high) // 2
        low, high = (middle + 1, high) if size(middle) < target else (low, middle)
    near = [i for i in (low - 1, low) if i >= 0]
    return made[steps[min(near, key=lambda i: abs(size(i) - target))]]


# -- the child: both emulators -----------------------------------------------------------------
@dataclass
class Setup:
    api_base: str
    gateway_url: str
    ollama_url: str
    guild_id: int


@dataclass
class Asked:
    dispatched: float  # time.monotonic(), system-wide on Linux: the same clock as ours
    arrived: float  # the request's headers reached the Ollama emulator
    requested: float  # the Ollama emulator recorded the request: its body read and parsed
    image_sha: str  # of the image the emulator decoded from the request
    base64_chars: int
    reply: str
    ollama_paths: list[str]  # every request the question made to Ollama


def _serve(conn: Connection, files: dict[str, bytes], channels: int) -> None:
    from aiohttp import web

    from tests.emulators.discord_server import DiscordEmulator, Upload
    from tests.emulators.ollama_models import extended_models
    from tests.emulators.ollama_server import OllamaEmulator

    arrivals: list[float] = []  # each /api/chat request's, before its body is read

    class TimedEmulator(OllamaEmulator):
        @web.middleware
        async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path == "/api/chat":
                arrivals.append(time.monotonic())
            return await super()._middleware(request, handler)

    async def main() -> None:
        discord_emu = DiscordEmulator()
        ollama = TimedEmulator(extended_models(), tokens_per_second=None, load_delay=0.0)
        await discord_emu.start()
        await ollama.start()
        guild = discord_emu.add_guild("Bench Guild")
        user = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, user.id)
        free = [discord_emu.add_channel(guild.id, f"img-{i}").id for i in range(channels)]
        conn.send(Setup(discord_emu.api_base, discord_emu.gateway_url, ollama.url, guild.id))

        async def ask(command: str, name: str) -> Asked:
            if command != "ask":
                raise ValueError(f"unknown command {command!r}")
            since, fetched = len(ollama.requests), len(discord_emu.cdn_fetches)
            arrivals.clear()
            rec = await discord_emu.invoke_slash(
                "ask",
                user_id=user.id,
                channel_id=free.pop(),
                guild_id=guild.id,
                options={"prompt": PROMPT, "image": Upload(name, files[name])},
            )

            def shown() -> list[Any]:
                found = [rec.original] if rec.original is not None else []
                return [m for m in found + rec.followups if not m.deleted]

            await rec.wait_done(lambda r: shows_final(shown()) or bool(r.followups), 60)
            chats = [r for r in ollama.requests[since:] if r.path == "/api/chat"]
            if len(chats) != 1 or not chats[0].images:
                raise RuntimeError(f"not one chat request with the image: {shown()!r}")
            [image] = chats[0].images
            if len(discord_emu.cdn_fetches) != fetched + 1:
                raise RuntimeError("the bot did not download the image exactly once")
            [sent] = [m["images"][0] for m in chats[0].messages if m.get("images")]
            return Asked(
                rec.dispatched_at,
                arrivals[0],
                chats[0].time,
                hashlib.sha256(image).hexdigest(),
                len(sent),
                shown()[-1].content,
                [r.path for r in ollama.requests[since:]],
            )

        try:
            await serve_commands(conn, ask)
        finally:
            await ollama.stop()
            await discord_emu.stop()

    asyncio.run(main())


# -- the bot's side ---------------------------------------------------------------------------
@dataclass
class Marks:
    downloads: list[tuple[float, float]] = field(default_factory=list)
    # (start, end, the thread's CPU seconds, the prepared image)
    prepared: list[tuple[float, float, float, PreparedImage]] = field(default_factory=list)


@contextlib.contextmanager
def timed_attachments() -> Iterator[Marks]:
    """Time ``download`` and ``prepare_image`` as ``read_image`` calls them (this run only)."""
    marks = Marks()
    download, prepare = attachments.download, attachments.prepare_image

    async def timed_download(attachment: Any, limit: int) -> bytes:
        start = time.monotonic()
        data = await download(attachment, limit)
        marks.downloads.append((start, time.monotonic()))
        return data

    def timed_prepare(data: bytes, filename: str, content_type: str | None = None) -> Any:
        start, cpu = time.monotonic(), time.thread_time()
        image = prepare(data, filename, content_type)
        marks.prepared.append((start, time.monotonic(), time.thread_time() - cpu, image))
        return image

    attachments.download, attachments.prepare_image = timed_download, timed_prepare
    try:
        yield marks
    finally:
        attachments.download, attachments.prepare_image = download, prepare


@dataclass(frozen=True)
class Rep:
    phases: dict[str, float]  # seconds
    cpu: float  # the bot's CPU for the whole question
    prepared: PreparedImage
    base64_chars: int
    ollama_paths: list[str]


async def run(files: dict[str, bytes], reps: int) -> dict[str, list[Rep]]:
    order = [name for _ in range(reps + 1) for name in files]  # the first pair warms up
    results: dict[str, list[Rep]] = {name: [] for name in files}
    with child_process(_serve, files, len(order)) as ctl, tempfile.TemporaryDirectory() as tmp:
        setup: Setup = ctl.setup
        settings = Settings.from_mapping(
            {
                "DISCORD_TOKEN": DiscordEmulator.token,
                "OLLAMA_HOST": setup.ollama_url,
                "DEFAULT_MODEL": "llama3.2",
                "VISION_MODEL": "gemma3",
                # The image's path alone: no turn embeddings or summaries in the background.
                "CONVERSATION_MEMORY": "false",
                "DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                "DEV_GUILD_ID": str(setup.guild_id),
                "LOG_LEVEL": "WARNING",
            }
        )
        point_discord_at(setup.api_base, setup.gateway_url)
        bot = create_bot(settings, guild_ready_timeout=0.05)
        with timed_attachments() as marks:
            async with running_client(bot, DiscordEmulator.token, ready_timeout=30):
                for index, name in enumerate(order):
                    cpu0 = time.process_time()
                    asked: Asked = await ctl.call("ask", name)
                    cpu = time.process_time() - cpu0
                    if index < len(files):
                        continue
                    results[name].append(_rep(asked, marks, cpu))
    return results


def _rep(asked: Asked, marks: Marks, cpu: float) -> Rep:
    (got, done), (start, end, prepare_cpu, image) = marks.downloads[-1], marks.prepared[-1]
    if hashlib.sha256(image.data).hexdigest() != asked.image_sha:
        raise RuntimeError("the model got another image than the one the bot prepared")
    if not asked.reply.startswith("Echo: ") or "[1 image]" not in asked.reply:
        raise RuntimeError(f"unexpected answer: {asked.reply!r}")
    phases = {
        "sent -> download": got - asked.dispatched,
        "download": done - got,
        "-> thread": start - done,
        "prepare": end - start,
        "prepare CPU": prepare_cpu,
        "-> request sent": asked.arrived - end,
        "request body": asked.requested - asked.arrived,
        "total": asked.requested - asked.dispatched,
    }
    return Rep(phases, cpu, image, asked.base64_chars, asked.ollama_paths)


# -- without the bot: prepare_image's stages, and the request's encoding ------------------------
def stages(data: bytes, name: str, reps: int) -> dict[str, float]:
    """Median seconds of ``prepare_image`` and of each of its stages (its own helpers, in its
    order), then of what the request does with the result."""
    laps: dict[str, list[float]] = {}
    side = core_images.MAX_IMAGE_SIDE
    body = {"model": "gemma3", "messages": [{"role": "user", "content": PROMPT, "images": []}]}
    for _ in range(reps):
        last = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal last
            now = time.perf_counter()
            laps.setdefault(stage, []).append(now - last)
            last = now

        prepared = core_images.prepare_image(data, name)
        lap("prepare_image")
        image = core_images._open(data, name)
        upright = core_images._decode_first_frame(image, name)
        lap("decode")
        rgb = core_images._flatten(upright)
        rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
        lap("downscale")
        core_images._encode(rgb, try_png=image.format != "JPEG")
        lap("encode")
        encoded = base64.b64encode(prepared.data).decode("ascii")
        lap("base64")
        # What the ollama client does with each image of a request: a str is tried as a file
        # path, then base64-decoded to check it; bytes are simply encoded.
        ollama.Image(value=encoded).model_dump()
        lap("client: str image")
        ollama.Image(value=prepared.data).model_dump()
        lap("client: bytes image")
        body["messages"][0]["images"] = [encoded]
        last = time.perf_counter()
        text = json.dumps(body)
        lap("request JSON")
        json.loads(text)
        lap("emulator json.loads")
    return {stage: statistics.median(values) for stage, values in laps.items()}


def report(files: dict[str, bytes], results: dict[str, list[Rep]], reps: int) -> None:
    print(f"{reps} repetitions per image, alternating; p50 / p95 in ms")
    for name, data in files.items():
        rows = results[name]
        with Image.open(io.BytesIO(data)) as original:
            size, fmt = original.size, original.format
        image = rows[0].prepared
        print(
            f"\n{name}: {fmt} {size[0]}x{size[1]}, {len(data):,} bytes -> prepared "
            f"{image.mime} {image.width}x{image.height}, {len(image.data):,} bytes "
            f"({rows[0].base64_chars:,} base64 characters in the request); Ollama requests "
            f"per question: {sorted({' '.join(r.ollama_paths) for r in rows})}"
        )
        for phase in rows[0].phases:
            values = [r.phases[phase] * 1000 for r in rows]
            print(
                f"  {phase:<18}{statistics.median(values):>9.1f} / {percentile(values, 95):>7.1f}"
            )
        cpu = [r.cpu * 1000 for r in rows]
        print(f"  {'bot CPU':<18}{statistics.median(cpu):>9.1f} / {percentile(cpu, 95):>7.1f}")
        print("  on their own, without the bot (medians):")
        for stage, seconds in stages(data, name, max(3, min(reps, 10))).items():
            print(f"    {stage:<20}{seconds * 1000:>8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="questions per image")
    args = parser.parse_args()
    files = {PHOTO: make_photo(), SCREENSHOT: make_screenshot()}
    results = asyncio.run(run(files, args.reps))
    report(files, results, args.reps)


if __name__ == "__main__":
    main()
