"""A throwaway PostgreSQL server for tests, benchmarks and CI.

One server in a directory of its own: ``initdb`` with trust authentication, listening on
127.0.0.1 only (no Unix socket) on a free port, fsync off (its data is thrown away), run as
an unprivileged user when we are root (initdb refuses root). Stopping it (``pg_ctl -m
fast``) removes the directory.

As a library::

    with PostgresServer() as admin_url:          # or: async with PostgresServer() as ...
        ...  # postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres

    server = PostgresServer(directory)           # or start() / stop() by hand
    admin_url = server.start()
    server.pause(); server.resume()              # stopped and started on the same port
    server.stop()

From a shell (the server outlives the command; the URL is printed on stdout)::

    python -m tests.support.postgres start DIR
    python -m tests.support.postgres stop DIR

``available()`` tells whether the binaries are there; ``create_database`` and
``drop_database`` make and remove databases on a server, given its admin URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

# The user the server runs as when we are root: initdb and postgres refuse to run as root.
SERVER_USER = "ollacord-pg"
SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
COMMAND_TIMEOUT = 120  # seconds any one initdb/pg_ctl call may take
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# A terminated backend exits on its own time; DROP DATABASE waits 5 s for it, which a
# loaded CI machine can exceed (seen once: "being accessed by other users").
DROP_ATTEMPTS = 3
# Settings for a server whose data nobody keeps: durability traded for speed, and room for
# the pools of a test that runs the bot, the CLI and a benchmark at once.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}

T = TypeVar("T")


class PostgresUnavailable(RuntimeError):
    """initdb/pg_ctl are not installed, or the server would not start."""


def find_binaries() -> tuple[str, str]:
    """(initdb, pg_ctl): on PATH, else in the newest /usr/lib/postgresql/*/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0)
    )
    for directory in reversed(versions):
        initdb, pg_ctl = f"{directory}/initdb", f"{directory}/pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    raise PostgresUnavailable(
        "initdb/pg_ctl not found (on PATH or in /usr/lib/postgresql/*/bin): "
        "install the PostgreSQL server, e.g. apt-get install postgresql"
    )


def available() -> bool:
    try:
        find_binaries()
    except PostgresUnavailable:
        return False
    return True


def admin_url(port: int) -> str:
    return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{port}/postgres"


class PostgresServer:
    """One throwaway server in ``directory`` (a new temporary one if None)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._given = directory is not None
        self.directory = Path(directory) if directory is not None else None
        self.url: str | None = None

    @property
    def _data(self) -> Path:
        assert self.directory is not None
        return self.directory / "data"

    def start(self) -> str:
        """initdb and start; returns the admin URL. Raises PostgresUnavailable."""
        initdb, pg_ctl = find_binaries()
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="ollacord-pg-"))
        elif self.directory.exists() and any(self.directory.iterdir()):
            # stop() removes the directory: never one that holds anything else.
            raise PostgresUnavailable(f"{self.directory} is not empty")
        self.directory.mkdir(parents=True, exist_ok=True)
        user = _server_user()
        if user is not None:
            shutil.chown(self.directory, user)
        try:
            locale = f"--locale={_locale()}"
            _run(user, [initdb, "-D", str(self._data), "-A", "trust", "-U", SUPERUSER,
                        "-E", "UTF8", locale, "--no-sync", "--no-instructions"])  # fmt: skip
            for _attempt in range(PORT_ATTEMPTS):
                port = _free_port()
                _configure(self._data, port)
                log = self.directory / "postgres.log"
                try:
                    _run(user, [pg_ctl, "-D", str(self._data), "-l", str(log), "-w",
                                "-t", str(START_TIMEOUT), "start"])  # fmt: skip
                except PostgresUnavailable:
                    if "could not bind" not in _tail(log):
                        raise PostgresUnavailable(f"postgres did not start: {_tail(log)}") from None
                    continue
                self.url = admin_url(port)
                return self.url
            raise PostgresUnavailable(f"no free port after {PORT_ATTEMPTS} attempts")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (if running) and remove its directory."""
        if self.directory is None:
            return
        stop(self.directory)
        self.url = None
        if not self._given:
            self.directory = None

    def pause(self) -> None:
        """Stop the server (fast: connections are cut), keeping its data and its port."""
        assert self.directory is not None and self.url is not None
        _, pg_ctl = find_binaries()
        _run(_server_user(), [pg_ctl, "-D", str(self._data), "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        """Start a paused server again, on the same port."""
        assert self.directory is not None and self.url is not None
        _, pg_ctl = find_binaries()
        log = self.directory / "postgres.log"
        _run(_server_user(), [pg_ctl, "-D", str(self._data), "-l", str(log), "-w",
                              "-t", str(START_TIMEOUT), "start"])  # fmt: skip

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> str:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def stop(directory: str | Path) -> None:
    """Stop the server of ``directory`` (fast: connections are cut) and remove it."""
    directory = Path(directory)
    data = directory / "data"
    if (data / "postmaster.pid").exists():
        _, pg_ctl = find_binaries()
        with contextlib.suppress(PostgresUnavailable):  # already gone: remove it anyway
            _run(_server_user(), [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
    shutil.rmtree(directory, ignore_errors=True)


# --- databases on a running server ---------------------------------------------------------


def _sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion in a thread of its own: callable from sync code and
    from inside a running event loop alike (pytest fixtures are both)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def _execute(url: str, *statements: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username,
        password=parsed.password, database=parsed.database,
    )  # fmt: skip
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def database_url(url: str, name: str) -> str:
    """``url`` pointing at the database ``name`` instead."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_database(url: str, name: str, *, template: str | None = None) -> str:
    """CREATE DATABASE ``name`` (copied from ``template`` if given) on the server of the
    admin ``url``; returns the new database's URL. Names are ours: letters, digits, _."""
    _check_name(name, template)
    copy = f" TEMPLATE {template}" if template else ""
    _sync(_execute(url, f"CREATE DATABASE {name}{copy}"))
    return database_url(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop ``name``, cutting any connection a test left open to it first."""
    import asyncpg

    _check_name(name)
    for attempt in range(1, DROP_ATTEMPTS + 1):
        try:
            _sync(_execute(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            return
        except asyncpg.ObjectInUseError:
            if attempt == DROP_ATTEMPTS:
                raise


def _check_name(*names: str | None) -> None:
    for name in names:
        if name is not None and not (name.replace("_", "").isalnum() and name.isascii()):
            raise ValueError(f"not a plain database name: {name!r}")


# --- internals -----------------------------------------------------------------------------


def _server_user() -> str | None:
    """The unprivileged user to run as (created if missing), or None when not root."""
    if os.geteuid() != 0:
        return None
    if not _user_exists():
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVER_USER],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        if made.returncode != 0 and not _user_exists():  # another run may have made it
            raise PostgresUnavailable(f"useradd {SERVER_USER}: {made.stderr.strip()}")
    return SERVER_USER


def _user_exists() -> bool:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return False
    return True


def _run(user: str | None, command: list[str]) -> None:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise PostgresUnavailable(f"{Path(command[-1]).name}: {detail[-1] if detail else '?'}")


def _configure(data: Path, port: int) -> None:
    settings = {**SERVER_SETTINGS, "port": str(port)}
    (data / "postgresql.auto.conf").write_text(
        "".join(f"{name} = {value}\n" for name, value in settings.items())
    )


def _locale() -> str:
    """C.UTF-8 where the system has it (Unicode-aware lower(), code-point order), else C."""
    try:
        names = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    except OSError:
        return "C"
    return "C.UTF-8" if {"C.UTF-8", "C.utf8"} & set(names) else "C"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def main(argv: list[str]) -> int:
    usage = "usage: python -m tests.support.postgres start|stop DIR"
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(usage, file=sys.stderr)
        return 2
    action, directory = argv
    try:
        if action == "start":
            print(PostgresServer(directory).start())
        else:
            stop(directory)
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        print(f"postgres: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
