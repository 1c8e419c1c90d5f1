"""`python -m bot` sharded, as a real process: SHARD_COUNT and SHARD_IDS from the
environment, and Discord's refusals said in one line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.bot.test_main import emulator_env, run_bot_process
from tests.bot.test_shutdown_process import Bot
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.ollama_server import OllamaEmulator

START_TIMEOUT = 60  # seconds for a process to import, migrate and connect on a busy machine


async def test_a_process_serves_the_shard_it_was_given(tmp_path: Path) -> None:
    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guilds = [discord_emu.add_guild(f"shard {k}", shard=(k, 2)) for k in (0, 1)]
        channel = discord_emu.add_channel(guilds[1].id)
        alice = discord_emu.add_user("alice")
        discord_emu.add_member(guilds[1].id, alice.id)
        env = emulator_env(
            discord_emu,
            ollama,
            guilds[1].id,
            SHARD_COUNT="2",
            SHARD_IDS="1",
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        )
        bot = Bot(await run_bot_process(env, tmp_path))
        try:
            ready = await bot.wait_log("connected as", timeout=START_TIMEOUT)
            assert ready.rstrip().endswith("to 1 servers on shard 1 of 2")
            [session] = discord_emu.gateway.live_sessions()
            assert session.shard == [1, 2]
            ollama.set_reply("Hello from shard one.")
            rec = await discord_emu.invoke_slash(
                "ask",
                user_id=alice.id,
                channel_id=channel.id,
                guild_id=guilds[1].id,
                options={"prompt": "hi"},
            )
            await rec.wait_done(
                lambda r: r.original is not None and "tokens" in r.original.content, timeout=30
            )
            assert rec.original is not None
            assert rec.original.content.startswith("Hello from shard one.")
        finally:
            bot.proc.send_signal(signal.SIGTERM)
            code = await bot.wait_exit()
        assert code == 0, bot.text
        assert "shard 1 of 2 connected" in bot.text and "Traceback" not in bot.text


async def test_sharding_required_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """Discord closes an unsharded bot in too many servers with 4011: no reconnect can help."""
    async with (
        DiscordEmulator(max_guilds_per_shard=1) as discord_emu,
        OllamaEmulator() as ollama,
    ):
        guilds = [discord_emu.add_guild(f"server {k}") for k in range(2)]
        env = emulator_env(
            discord_emu,
            ollama,
            guilds[0].id,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        )
        proc = await run_bot_process(env, tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    log = err.decode()
    assert proc.returncode == 1, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert "Discord requires sharding" in errors[0] and "SHARD_COUNT" in errors[0]
