"""`ollacord chat`, the real command in a process of its own, against the real models: it
prints what the model wrote, with the server's figures, and keeps a session's history."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.core.config import Settings
from tests.real_model.conftest import needs
from tests.real_model.models import SMOLLM2

if TYPE_CHECKING:
    from tests.real_model.engine import Engine
    from tests.real_model.server import RealModelServer

pytestmark = pytest.mark.real_model

CLI_TIMEOUT = 300.0  # a deadline on two busy cores, not a measure of speed
SHORT = ("--num-predict", "16", "--temperature", "0", "--seed", "4")


async def ollacord(server: RealModelServer, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    """Run `python -m bot.cli` with only the settings given here (no developer's .env)."""
    settings = {f.name.upper() for f in fields(Settings)}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env |= {
        "OLLAMA_HOST": server.url,
        "DEFAULT_MODEL": SMOLLM2,
        "EMBEDDING_MODEL": SMOLLM2,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "FIRST_TOKEN_TIMEOUT": "120",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *argv,
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_chat_prints_the_models_answer_and_its_figures(
    real_ollama: RealModelServer, engine: Engine, tmp_path: Path
) -> None:
    needs(engine, SMOLLM2)
    code, out, err = await ollacord(real_ollama, tmp_path, "chat", "--json", *SHORT, "Hello!")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    (gen,) = real_ollama.generations
    assert document["content"] == gen.content and document["model"] == SMOLLM2
    assert document["tokens"]["completion"] == gen.eval_count
    assert document["tokens"]["prompt"] == gen.prompt_tokens
    assert document["done_reason"] == gen.done_reason
    assert all(document["durations"][k] > 0 for k in ("total", "load", "prompt_eval", "eval"))


async def test_a_session_continues_and_streams_plain_text(
    real_ollama: RealModelServer, engine: Engine, tmp_path: Path
) -> None:
    needs(engine, SMOLLM2)
    code, first, err = await ollacord(
        real_ollama, tmp_path, "chat", "--stream", "-s", "cli", *SHORT, "My cat is Tom."
    )
    assert code == 0, err
    code, second, err = await ollacord(
        real_ollama, tmp_path, "chat", "--stream", "-s", "cli", *SHORT, "Who is Tom?"
    )
    assert code == 0, err
    one, two = real_ollama.generations
    assert first == one.content + "\n" and second == two.content + "\n"
    asked = [(m["role"], m["content"]) for m in two.messages if m["role"] != "system"]
    assert asked == [
        ("user", "My cat is Tom."),
        ("assistant", one.content),
        ("user", "Who is Tom?"),
    ]
