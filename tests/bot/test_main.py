"""`python -m bot`, the README's run command, as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.ollama_server import OllamaEmulator

ROOT = Path(__file__).parents[2]


def emulator_env(
    discord_emu: DiscordEmulator, ollama: OllamaEmulator, guild_id: int, **extra: str
) -> dict[str, str]:
    """The settings that point a bot process at the emulators (and sync to ``guild_id``)."""
    return {
        "DISCORD_TOKEN": discord_emu.token,
        "OLLAMA_HOST": ollama.url,
        "DISCORD_API_BASE": discord_emu.api_base,
        "DISCORD_GATEWAY_URL": discord_emu.gateway_url,
        "DEV_GUILD_ID": str(guild_id),
        **extra,
    }


async def run_bot_process(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_bad_settings_give_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = await run_bot_process({"MAX_RETRIES": "lots", "OLLAMA_HOST": "nope"}, tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err.decode()
    for key in ("MAX_RETRIES", "OLLAMA_HOST", "DISCORD_TOKEN"):
        assert key in lines[0]


async def test_settings_from_dotenv_run_the_bot(tmp_path: Path) -> None:
    """The bot reads .env from its working directory, connects, answers, and logs no secret."""
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        channel = discord_emu.add_channel(guild.id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guild.id, alice.id)
        env = emulator_env(discord_emu, ollama, guild.id, LOG_LEVEL="DEBUG")
        (tmp_path / ".env").write_text("\n".join(f"{k}={v}" for k, v in env.items()))
        proc = await run_bot_process({}, tmp_path)
        try:
            await discord_emu.wait_ready(timeout=60)
            await discord_emu.wait_for(lambda: discord_emu.command_syncs, timeout=30)
            ollama.set_reply("Hello from the real process.")
            rec = await discord_emu.invoke_slash(
                "ask",
                user_id=alice.id,
                channel_id=channel.id,
                guild_id=guild.id,
                options={"prompt": "hi"},
            )
            await rec.wait_done(
                lambda r: r.original is not None and "tokens" in r.original.content, timeout=30
            )
            assert rec.original.content.startswith("Hello from the real process.")
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        log = err.decode()
        assert proc.returncode == 0, log[-2000:]
        assert discord_emu.token not in log
        assert (tmp_path / "data" / "ollacord.db").is_file()  # the SQLite default, made on start
