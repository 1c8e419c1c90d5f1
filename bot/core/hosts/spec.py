"""``OLLAMA_HOSTS``: ``URL[*capacity]`` entries, comma-separated, and the label of a host
(its URL without credentials) for logs, metrics and front ends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("http", "https")
CAPACITY = re.compile(r"^(?P<url>.*?)\*(?P<capacity>[^*/]*)$")


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One Ollama server as configured; ``capacity`` None: MAX_CONCURRENT_REQUESTS."""

    url: str
    capacity: int | None = None

    @property
    def label(self) -> str:
        return redact_url(self.url)

    def __str__(self) -> str:
        # The settings are printed in places (repr of Settings, errors): never the password.
        suffix = f"*{self.capacity}" if self.capacity is not None else ""
        return f"{self.label}{suffix}"

    def __repr__(self) -> str:
        return f"HostSpec({str(self)!r})"


def redact_url(url: str) -> str:
    """The URL without its user and password: what may be logged, shown and used as a label."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_url(raw: str) -> str:
    """An http(s) URL with a host, without its trailing slash; ValueError naming it (redacted)."""
    url = raw.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{shown_url(raw)!r} is not a valid URL") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"expected an http or https URL, got {shown_url(raw)!r}")
    return url


def parse_hosts(raw: str) -> tuple[HostSpec, ...]:
    """``http://gpu1:11434*4,http://gpu2:11434``: ValueError for a bad entry, a capacity
    below 1 or a host given twice (empty entries, as from a trailing comma, are skipped)."""
    hosts: list[HostSpec] = []
    seen: set[str] = set()
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        url, capacity = entry, None
        if match := CAPACITY.match(entry):
            url, capacity = match["url"], _capacity(match["capacity"], entry)
        url = parse_url(url)
        key = _identity(url)
        if key in seen:
            raise ValueError(f"{redact_url(url)} is listed twice")
        seen.add(key)
        hosts.append(HostSpec(url, capacity))
    if not hosts:
        raise ValueError("expected at least one URL")
    return tuple(hosts)


def _capacity(raw: str, entry: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"the capacity after * must be a whole number, got {raw!r} in {shown_url(entry)!r}"
        ) from None
    if value < 1:
        raise ValueError(f"the capacity of {shown_url(entry)!r} must be at least 1")
    return value


def _identity(url: str) -> str:
    """Two spellings of one server (case of the host, default port) are the same host."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{parts.path}"


def shown_url(raw: str) -> str:
    """``raw`` as an error message may show it: never a password, even in what is no URL."""
    try:
        shown = redact_url(raw)
    except ValueError:
        return "(an entry that is not a URL)"
    # Without its scheme ("user:pw@host") urlsplit finds no user to remove: cut before the @.
    return "…@" + shown.rpartition("@")[2] if "@" in shown else shown
