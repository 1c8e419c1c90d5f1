"""The deployment files: .env.example and the README's settings table (generated from
bot/core/config.py), docker-compose.yml, the Dockerfile and .dockerignore.

Docker itself may be absent: these tests read the files, run the health check commands
against a local HTTP server, and use hadolint / `docker compose config` only when installed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.config import Settings
from bot.core.settings_docs import SETTING_DOCS, env_example, settings_table
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.ollama_server import OllamaEmulator

ROOT = Path(__file__).parents[1]
START, END = "<!-- settings:start -->", "<!-- settings:end -->"
SETTING_NAMES = [f.name.upper() for f in fields(Settings)]


def readme() -> str:
    return (ROOT / "README.md").read_text()


def readme_settings_block() -> str:
    text = readme()
    assert text.count(START) == 1 and text.count(END) == 1, "README needs one pair of markers"
    return text.split(START, 1)[1].split(END, 1)[0]


def env_example_keys() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        instruction, _, arguments = (current + stripped).partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continuation line"
    return instructions


def instruction_args(name: str) -> list[str]:
    return [arguments for instruction, arguments in dockerfile() if instruction == name]


def exec_form(arguments: str) -> list[str]:
    """A Dockerfile command in exec (JSON) or shell form, as an argument list."""
    if arguments.startswith("["):
        return json.loads(arguments)
    return ["/bin/sh", "-c", arguments]


def dockerfile_healthcheck() -> list[str]:
    (healthcheck,) = instruction_args("HEALTHCHECK")
    _, _, command = healthcheck.partition("CMD ")
    return exec_form(command.strip())


def compose_healthcheck(service: str) -> list[str]:
    test = compose()["services"][service]["healthcheck"]["test"]
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *argv = test
    return argv if kind == "CMD" else ["/bin/sh", "-c", *argv]


# --- .env.example and the README table ----------------------------------------------------


def test_env_example_is_generated_from_settings() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        "run: python scripts/settings_docs.py --write"
    )


def test_readme_settings_table_is_generated_from_settings() -> None:
    assert readme_settings_block() == "\n" + settings_table(), (
        "run: python scripts/settings_docs.py --write"
    )


def test_every_setting_is_documented_in_both() -> None:
    assert set(SETTING_DOCS) == {f.name for f in fields(Settings)}
    assert env_example_keys() == set(SETTING_NAMES)
    table = readme_settings_block()
    for name in SETTING_NAMES:
        assert f"\n| `{name}` |" in table, name
    assert table.count("\n| `") == len(SETTING_NAMES)


def test_the_generator_script_checks_and_prints() -> None:
    script = [sys.executable, str(ROOT / "scripts" / "settings_docs.py")]
    check = subprocess.run([*script, "--check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout
    printed = subprocess.run([*script, "--markdown"], capture_output=True, text=True, timeout=60)
    assert printed.stdout == settings_table()


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_services_start_in_order() -> None:
    services = compose()["services"]
    assert {"bot", "ollama", "ollama-pull"} <= set(services)
    assert services["ollama"]["image"].startswith("ollama/ollama")
    pull = services["ollama-pull"]
    assert pull["image"].startswith("ollama/ollama")
    assert pull["entrypoint"][:2] == ["ollama", "pull"]
    assert pull["entrypoint"][2].startswith("${DEFAULT_MODEL")
    assert pull["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert pull["depends_on"] == {"ollama": {"condition": "service_healthy"}}
    assert services["bot"]["depends_on"] == {
        "ollama": {"condition": "service_healthy"},
        "ollama-pull": {"condition": "service_completed_successfully"},
        # The optional database server: waited for only when its profile is on.
        "postgres": {"condition": "service_healthy", "required": False},
    }
    assert services["postgres"]["profiles"] == ["postgres"]


def test_compose_bot_reads_dotenv_and_talks_to_the_ollama_service() -> None:
    bot = compose()["services"]["bot"]
    env_file = bot["env_file"]
    assert env_file == ".env" or env_file == [".env"] or env_file == [{"path": ".env"}]
    assert bot["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert bot["build"] in (".", {"context": "."})
    # .env.example leaves HTTP_PORT empty (off); the health check needs the server on.
    assert bot["environment"]["HTTP_PORT"] == "${HTTP_PORT:-8080}"


def test_compose_healthchecks() -> None:
    assert compose_healthcheck("ollama")[0] == "ollama"
    assert compose_healthcheck("postgres")[0] == "pg_isready"
    assert any("/healthz" in part for part in compose_healthcheck("bot"))


def test_compose_volumes_keep_models_and_data() -> None:
    config = compose()
    services = config["services"]
    assert "ollama-models:/root/.ollama" in services["ollama"]["volumes"]
    assert "ollacord-data:/app/data" in services["bot"]["volumes"]
    assert {"ollama-models", "ollacord-data"} <= set(config["volumes"])


def test_compose_stop_grace_covers_the_bots_own() -> None:
    """Docker must not kill the bot while it still drains: the grace plus the interruptions."""
    from bot.core.config import DEFAULT_SHUTDOWN_GRACE
    from bot.presentation.shutdown import INTERRUPT_WAIT

    period = compose()["services"]["bot"]["stop_grace_period"]
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", period)
    assert match and any(match.groups()), period
    seconds = int(match[1] or 0) * 60 + int(match[2] or 0)
    assert seconds >= DEFAULT_SHUTDOWN_GRACE + INTERRUPT_WAIT + 5


def test_compose_variables_are_settings_or_have_defaults() -> None:
    text = "\n".join(
        line
        for line in (ROOT / "docker-compose.yml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    text = text.replace("$$", "")  # an escaped dollar, not a variable
    used = re.findall(r"\$\{([A-Za-z_]\w*)(:?-[^}]*)?\}|\$([A-Za-z_]\w*)", text)
    assert used, "expected ${DEFAULT_MODEL...} at least"
    documented = env_example_keys()
    for braced, default, bare in used:
        name = braced or bare
        assert name in documented or default.startswith(":-"), name


def test_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("docker compose is not installed")
    result = subprocess.run(
        [
            docker,
            "compose",
            "-f",
            "docker-compose.yml",
            "--env-file",
            ".env.example",
            "config",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "env file" in result.stderr and "not found" in result.stderr:
        pytest.skip("docker compose config needs a .env file")
    assert result.returncode == 0, result.stderr


# --- Dockerfile and .dockerignore -----------------------------------------------------------


def test_dockerfile_base_user_and_data_volume() -> None:
    (base,) = instruction_args("FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base
    users = instruction_args("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert instruction_args("WORKDIR")[-1] == "/app"
    (volume,) = instruction_args("VOLUME")
    assert "/app/data" in (json.loads(volume) if volume.startswith("[") else volume.split())


def test_dockerfile_health_check_and_port() -> None:
    assert any("/healthz" in part for part in dockerfile_healthcheck())
    env = " ".join(instruction_args("ENV"))
    port = re.search(r"\bHTTP_PORT=(\d+)", env)
    assert port, "the image must turn the HTTP server on"
    assert port.group(1) in " ".join(instruction_args("EXPOSE")).split()


def test_dockerfile_has_no_secrets() -> None:
    for instruction in ("ENV", "ARG"):
        for arguments in instruction_args(instruction):
            assert "TOKEN" not in arguments.upper(), arguments


def dockerfile_commands() -> list[str]:
    """The commands the container runs, e.g. ["ollacord migrate", "ollacord run"]."""
    assert not instruction_args("ENTRYPOINT"), "update this test for an entrypoint script"
    argv = exec_form(instruction_args("CMD")[-1])
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
        parts = re.split(r"&&|;", argv[2])
        return [" ".join(shlex.split(part.strip().removeprefix("exec "))) for part in parts]
    return [shlex.join(argv)]


def test_container_runs_the_commands_the_readme_documents() -> None:
    commands = dockerfile_commands()
    assert commands == ["ollacord migrate", "ollacord run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    text = readme()
    for command in commands:
        assert command.split()[0] in scripts
        assert f"`{command}`" in text, f"README does not document `{command}`"


def test_cli_has_the_container_subcommands() -> None:
    if importlib.util.find_spec("bot.cli") is None:
        pytest.skip("bot.cli (the ollacord console script) is not there yet")
    for command in dockerfile_commands():
        _, *arguments = command.split()
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from bot.cli import main; sys.exit(main())",
                *arguments,
                "--help",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stderr)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern matching the path or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        variants = [pattern, pattern.removeprefix("**/")]  # **/ also matches at the top
        if any(fnmatch.fnmatchcase(p, v) for p in prefixes for v in variants):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_and_state_out_and_the_package_in() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".env",
        ".git/config",
        ".venv/bin/python",
        "data/ollacord.db",
        "bot/__pycache__/config.cpython-311.pyc",
    ):
        assert dockerignored(path, patterns), path
    needed = ["pyproject.toml", "README.md", "migrations/script.py.mako"]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "bot").rglob("*.py")]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "migrations").rglob("*.py")]
    for path in needed:
        assert not dockerignored(path, patterns), path


def test_pip_install_ships_every_module() -> None:
    """The image installs with `pip install .` (not editable): only packages are copied."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    for top in (pattern.rstrip("*") for pattern in include):
        for module in (ROOT / top).rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            assert (module.parent / "__init__.py").exists(), f"{module.parent} is no package"


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- the health check commands, run for real ------------------------------------------------


class HealthServer:
    """/healthz on 127.0.0.1 answering with ``status``."""

    def __init__(self) -> None:
        owner = self
        self.status = 200
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                code = owner.status if self.path == "/healthz" else 404
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    server = HealthServer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_argv(argv: list[str]) -> list[str]:
    """The image's `python` is this interpreter here."""
    return [sys.executable if part == "python" else part for part in argv]


def run_check(argv: list[str], port: int) -> int:
    env = {"HTTP_PORT": str(port), "PATH": os.defpath}
    return subprocess.run(local_argv(argv), env=env, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_health_check_passes_only_when_healthz_answers_ok(
    source: str, health_server: HealthServer
) -> None:
    argv = dockerfile_healthcheck() if source == "Dockerfile" else compose_healthcheck("bot")
    assert run_check(argv, health_server.port) == 0
    assert health_server.paths == ["/healthz"]
    health_server.status = 503
    assert run_check(argv, health_server.port) != 0
    assert run_check(argv, free_port()) != 0


# --- the container's command, run for real (in a temporary folder standing in for /app) ----


async def test_container_command_migrates_serves_healthz_and_stops_on_stopsignal(
    tmp_path: Path,
) -> None:
    """CMD in a folder with no source and no .env (like /app), against the emulators: the
    database appears in data/, the HEALTHCHECK command passes, STOPSIGNAL stops it cleanly."""
    scripts_dir = Path(sys.executable).parent
    if not (scripts_dir / "ollacord").exists():
        pytest.skip("the ollacord console script is not installed (pip install -e .)")
    (stopsignal,) = instruction_args("STOPSIGNAL")
    healthcheck = local_argv(dockerfile_healthcheck())
    port = free_port()
    image_env = {"PATH": f"{scripts_dir}:{os.defpath}", "HTTP_PORT": str(port)}

    async def check() -> int:
        proc = await asyncio.create_subprocess_exec(
            *healthcheck, env=image_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return await proc.wait()

    async with DiscordEmulator() as discord_emu, OllamaEmulator() as ollama:
        guild = discord_emu.add_guild()
        proc = await asyncio.create_subprocess_exec(
            *exec_form(instruction_args("CMD")[-1]),
            cwd=tmp_path,
            env={
                **image_env,
                "DISCORD_TOKEN": discord_emu.token,
                "OLLAMA_HOST": ollama.url,
                "DISCORD_API_BASE": discord_emu.api_base,
                "DISCORD_GATEWAY_URL": discord_emu.gateway_url,
                "DEV_GUILD_ID": str(guild.id),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await discord_emu.wait_ready(timeout=60)
            for _ in range(40):
                if await check() == 0:
                    break
                await asyncio.sleep(0.25)
            else:
                pytest.fail("the HEALTHCHECK command never passed")
            assert (tmp_path / "data" / "ollacord.db").is_file()
        finally:
            proc.send_signal(getattr(signal, stopsignal))
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert await check() != 0  # stopped: unhealthy
