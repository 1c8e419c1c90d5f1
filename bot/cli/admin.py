"""`ollacord health` and `ollacord migrate`: the operator's commands (`run` is in main)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.cli.context import first_line
from bot.cli.database import DATABASE_ERRORS, redact_url, sqlite_path
from bot.cli.output import Console
from bot.core.config import Settings
from bot.core.errors import OllamaError, StorageError
from bot.core.hosts.host import Host
from bot.core.hosts.pool import HostPool
from bot.core.model_catalog import ModelCatalog
from bot.core.ollama_client import normalize_model_name as normalize
from bot.storage import create_engine, upgrade_database
from bot.storage.engine import alembic_config
from bot.storage.models import ChatSession

log = logging.getLogger(__name__)

# A health check answers quickly or says why not; the bot's long timeouts are for answers.
HEALTH_TIMEOUT = 10.0
DISCORD_NOT_CHECKED = (
    "not checked by the CLI (the running bot reports it on /healthz when HTTP_PORT is set)"
)


@dataclass(frozen=True, slots=True)
class Check:
    component: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.component}: {'ok' if self.ok else 'FAILED'} - {self.detail}"


async def health(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    database, ollama = await asyncio.gather(check_database(settings), check_ollama(settings))
    checks = [database, *ollama]
    for check in checks:
        console.out(check.line())
    console.out(f"discord: {DISCORD_NOT_CHECKED}")
    healthy = all(c.ok for c in checks)
    console.out("status: " + ("healthy" if healthy else "degraded"))
    return 0 if healthy else 1


async def check_database(settings: Settings) -> Check:
    url = redact_url(settings.database_url)
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        return _missing_sqlite(url, path)
    started = time.perf_counter()
    try:
        engine = create_engine(settings.database_url)
    except DATABASE_ERRORS as exc:
        return Check("database", False, f"cannot open {url}: {first_line(exc)}")
    try:
        current, sessions = await asyncio.wait_for(_probe(engine), HEALTH_TIMEOUT)
    except TimeoutError:
        return Check("database", False, f"{url} did not answer within {HEALTH_TIMEOUT:g} s")
    except DATABASE_ERRORS as exc:
        return Check("database", False, f"cannot open {url}: {first_line(exc)}")
    finally:
        await engine.dispose()
    took = f"{(time.perf_counter() - started) * 1000:.0f} ms"
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if current == head:
        return Check(
            "database", True, f"{url} at revision {head} (head), {sessions} sessions, {took}"
        )
    pending = "the bot migrates it on start, or run `ollacord migrate`"
    if current is None:
        return Check("database", True, f"{url} is not migrated yet ({pending})")
    try:
        script.get_revision(current)
    except CommandError:
        return Check(
            "database", False, f"{url} is at revision {current}, unknown to this ollacord version"
        )
    return Check("database", True, f"{url} at revision {current}, head is {head} ({pending})")


def _missing_sqlite(url: str, path: Path) -> Check:
    """No file yet: healthy if the bot could create it (the nearest existing folder is writable)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return Check("database", False, f"{url} does not exist and {folder} is not writable")
    return Check("database", True, f"{url} does not exist yet (the bot creates it on start)")


async def _probe(engine: AsyncEngine) -> tuple[str | None, int | None]:
    """The database's Alembic revision and, once migrated, how many sessions it holds."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revision)
        sessions = None
        if current is not None:
            count = select(func.count()).select_from(ChatSession)
            sessions = int(await conn.scalar(count) or 0)
    return current, sessions


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True, slots=True)
class Reached:
    """One host as the health check found it: ``reached`` (version, latency) or ``error``,
    and the models it has (None when they could not be listed)."""

    host: str
    reached: str | None = None
    error: str | None = None
    installed: frozenset[str] | None = None


async def check_ollama(settings: Settings) -> list[Check]:
    """One line for a single host (as ever); with several, one per host and a summary."""
    pool = HostPool.open(settings.hosts, default_capacity=1, timeout=HEALTH_TIMEOUT)
    catalog = ModelCatalog(pool)
    try:
        found = await asyncio.gather(*(_reach(pool, catalog, h) for h in pool.hosts))
    finally:
        await pool.close()
    wanted = [settings.default_model, *settings.fallback_models]
    if len(found) == 1:
        return [_one_host(found[0], settings.default_model, wanted)]
    checks = [_host_line(r, settings.default_model) for r in found]
    return [*checks, _summary(found, settings.default_model, wanted)]


async def _reach(pool: HostPool, catalog: ModelCatalog, host: Host) -> Reached:
    status = await catalog.check(host)
    if not status.ok:
        return Reached(host.label, error=status.error or "no answer")
    reached = f"{host.label}, version {status.version}, {status.latency_ms or 0:.0f} ms"
    try:
        models = await pool.list_models(host, ttl=0.0, force=True)
    except OllamaError as exc:
        return Reached(host.label, reached, f"listing models failed: {exc.user_message}")
    return Reached(host.label, reached, installed=frozenset(normalize(m.name) for m in models))


def _one_host(found: Reached, default: str, wanted: list[str]) -> Check:
    if found.reached is None:
        error = found.error or "no answer"
        return Check("ollama", False, error if found.host in error else f"{found.host}: {error}")
    if found.installed is None:
        return Check("ollama", False, f"{found.reached}; {found.error}")
    usable = [m for m in wanted if normalize(m) in found.installed]
    if not usable:
        return Check(
            "ollama",
            False,
            f"{found.reached}; the default model `{default}` is not on the server "
            f"(`ollacord models pull {default}`)",
        )
    if usable[0] != default:
        return Check(
            "ollama",
            True,
            f"{found.reached}; default model `{default}` missing, answers fall back to "
            f"`{usable[0]}`",
        )
    return Check("ollama", True, f"{found.reached}; default model `{default}` present")


def _host_line(found: Reached, default: str) -> Check:
    name = f"ollama {found.host}"
    if found.reached is None:
        return Check(name, False, found.error or "no answer")
    if found.installed is None:
        return Check(name, False, f"{found.reached}; {found.error}")
    here = "present" if normalize(default) in found.installed else "not here"
    count = len(found.installed)
    models = f"{count} model" if count == 1 else f"{count} models"
    return Check(name, True, f"{found.reached}, {models}; default model `{default}` {here}")


def _summary(found: list[Reached], default: str, wanted: list[str]) -> Check:
    """Healthy when every host answers and one of them has the default model (or a fallback:
    routing sends each question to a host that has its model)."""
    answering = [r for r in found if r.installed is not None]
    counted = f"{len(answering)} of {len(found)} hosts answer"
    for model in wanted:
        having = [r.host for r in answering if normalize(model) in (r.installed or ())]
        if having:
            fallback = "" if model == default else f"default model `{default}` missing, "
            where = f"{fallback}`{model}` on {', '.join(having)}"
            return Check("ollama", len(answering) == len(found), f"{counted}; {where}")
    return Check(
        "ollama",
        False,
        f"{counted}; the default model `{default}` is on none of them "
        f"(`ollacord models pull {default}`)",
    )


async def migrate(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    url = redact_url(settings.database_url)
    try:
        engine = create_engine(settings.database_url)
    except DATABASE_ERRORS as exc:
        raise StorageError(f"Cannot migrate {url}: {first_line(exc)}") from exc
    try:
        async with engine.connect() as conn:
            before = await conn.run_sync(_current_revision)
        await upgrade_database(engine)
        async with engine.connect() as conn:
            after = await conn.run_sync(_current_revision)
    except (*DATABASE_ERRORS, CommandError) as exc:  # CommandError: a revision from the future
        raise StorageError(f"Cannot migrate {url}: {first_line(exc)}") from exc
    finally:
        await engine.dispose()
    if before == after:
        console.out(f"{url} is already at revision {after} (head)")
    else:
        start = f"revision {before}" if before else "an empty database"
        console.out(f"{url} upgraded from {start} to revision {after} (head)")
    return 0
