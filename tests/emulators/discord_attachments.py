"""Attachments as Discord describes them: the stored record, the ``Upload`` a test hands
to the driver, the JSON attachment object, signed CDN URLs, and image dimensions.

Real CDN links look like ``https://cdn.discordapp.com/attachments/{channel_id}/
{attachment_id}/{filename}?ex={hex expiry}&is={hex issue time}&hm={signature}&`` and
answer 404 once ``ex`` has passed; ``proxy_url`` is the same path on media.discordapp.net.
Files given to a slash-command option live under ``/ephemeral-attachments/`` and are
marked ``ephemeral: true``. Here both hosts are the emulator's own server: ``url`` is
``{base}/attachments/...`` and ``proxy_url`` is ``{base}/media/attachments/...`` (a path
prefix stands in for the second host, so a test can tell which one the bot fetched).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import mimetypes
import secrets
import struct
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from .discord_world import World

# Discord signs attachment links for 24 hours.
SIGNED_URL_TTL = 24 * 3600
PROXY_PREFIX = "/media"
# One key per process: the emulator both signs and checks, so it never leaves memory.
_SIGNING_KEY = secrets.token_bytes(32)


class Auto(enum.Enum):
    """Marks an ``Upload`` field that the emulator works out the way Discord would."""

    AUTO = "auto"


AUTO: Final = Auto.AUTO


@dataclass
class CdnBehaviour:
    """How the CDN answers for one attachment (tests set these to misbehave)."""

    status: int | None = None  # answer this instead of 200 (e.g. 403, 500)
    delay: float = 0.0  # seconds before the response starts
    bytes_per_second: float | None = None  # trickle the body at this rate
    body: bytes | None = None  # serve this instead of the stored data


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None = "text/plain"
    description: str | None = None
    # Canonical CDN path ("/attachments/{channel_id}/{id}/{filename}", unquoted) and its
    # signed query ("ex=..&is=..&hm=..&"); the base is the emulator's address.
    path: str = ""
    signature: str = ""
    base: str = ""
    declared_size: int | None = None  # what ``size`` claims when it is not len(data)
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False
    cdn: CdnBehaviour = field(default_factory=CdnBehaviour)

    @property
    def size(self) -> int:
        return len(self.data) if self.declared_size is None else self.declared_size

    @property
    def url(self) -> str:
        return f"{self.base}{_quote_path(self.path)}?{self.signature}"

    @property
    def proxy_url(self) -> str:
        return f"{self.base}{PROXY_PREFIX}{_quote_path(self.path)}?{self.signature}"


@dataclass(frozen=True)
class Upload:
    """A file a user attaches, before Discord gives it an id and a URL.

    Pass it as a slash option value (``options={"image": Upload(...)}``, or in
    ``attachments=[...]``) or with a member's message (``send_user_message(...,
    attachments=[Upload(...)])``). Fields left at ``AUTO`` are filled as Discord does:
    the content type from the file name (text types get ``; charset=utf-8`` when the
    bytes are UTF-8, and an unknown extension gets no content type at all), width and
    height from a PNG, GIF, JPEG or WebP header, ``ephemeral`` true for slash options
    and false on messages. ``content_type=None`` leaves the field out.

    Misbehaving uploads: ``size`` makes the payload claim a size other than
    ``len(data)`` (the CDN still serves ``data``, with its real length, so a 30 MB
    claim costs nothing); ``expired`` signs the link with an expiry in the past (the
    CDN answers 404, as Discord does for stale links); ``cdn_status`` forces another
    status; ``cdn_delay`` holds the response back; ``cdn_bytes_per_second`` trickles
    the body; ``cdn_body`` serves other bytes than ``data``.
    """

    filename: str
    data: bytes
    content_type: str | Auto | None = AUTO
    size: int | None = None
    width: int | Auto | None = AUTO
    height: int | Auto | None = AUTO
    description: str | None = None
    ephemeral: bool | Auto = AUTO
    expired: bool = False
    cdn_status: int | None = None
    cdn_delay: float = 0.0
    cdn_bytes_per_second: float | None = None
    cdn_body: bytes | None = None


# ----- signed URLs -------------------------------------------------------------


def _quote_path(path: str) -> str:
    return quote(path, safe="/")


def _digest(path: str, ex: str, issued: str) -> str:
    message = f"{path}\n{ex}\n{issued}".encode()
    return hmac.new(_SIGNING_KEY, message, hashlib.sha256).hexdigest()


def sign(path: str, *, issued: float, expires: float) -> str:
    """The query Discord appends to CDN links (trailing ``&`` included, as Discord does)."""
    ex, issued_hex = f"{int(expires):x}", f"{int(issued):x}"
    return f"ex={ex}&is={issued_hex}&hm={_digest(path, ex, issued_hex)}&"


def link_is_valid(path: str, query: Mapping[str, str], now: float | None = None) -> bool:
    """True if ``query`` signs ``path`` and has not expired."""
    ex, issued, hm = query.get("ex", ""), query.get("is", ""), query.get("hm", "")
    if not hmac.compare_digest(hm, _digest(path, ex, issued)):
        return False
    try:
        return int(ex, 16) > (time.time() if now is None else now)
    except ValueError:
        return False


# ----- image headers ---------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG, GIF, JPEG or WebP header, else None.
    Only the header is parsed: a mislabelled or truncated body simply has no size."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF  # the top two bits are a scale
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    return None


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0xDA:  # scan data follows: no frame header before it
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def png_bytes(width: int, height: int) -> bytes:
    """A complete, valid PNG of black pixels, made without an imaging library, for
    tests that need a real image of a known size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# ----- building and describing ---------------------------------------------------


def guess_content_type(filename: str, data: bytes) -> str | None:
    ctype = mimetypes.guess_type(filename)[0]
    if ctype is not None and ctype.startswith("text/"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return ctype
        return f"{ctype}; charset=utf-8"
    return ctype


def attachment_from_upload(
    upload: Upload, *, attachment_id: int, folder: str, base: str, ephemeral: bool
) -> Attachment:
    """``folder`` is ``attachments/{channel_id}`` or ``ephemeral-attachments/{app_id}``;
    ``ephemeral`` is the default for where the file was attached."""
    ctype = (
        guess_content_type(upload.filename, upload.data)
        if upload.content_type is AUTO
        else upload.content_type
    )
    sniffed = image_size(upload.data)
    width = (sniffed[0] if sniffed else None) if upload.width is AUTO else upload.width
    height = (sniffed[1] if sniffed else None) if upload.height is AUTO else upload.height
    path = f"/{folder}/{attachment_id}/{upload.filename}"
    now = time.time()
    # An expired link was issued more than a day ago, like a URL kept from old history.
    issued = now - SIGNED_URL_TTL - 3600 if upload.expired else now
    return Attachment(
        id=attachment_id,
        filename=upload.filename,
        data=upload.data,
        content_type=ctype,
        description=upload.description,
        path=path,
        signature=sign(path, issued=issued, expires=issued + SIGNED_URL_TTL),
        base=base,
        declared_size=upload.size,
        width=width,
        height=height,
        ephemeral=ephemeral if upload.ephemeral is AUTO else upload.ephemeral,
        cdn=CdnBehaviour(
            status=upload.cdn_status,
            delay=upload.cdn_delay,
            bytes_per_second=upload.cdn_bytes_per_second,
            body=upload.cdn_body,
        ),
    )


def store_upload(world: World, upload: Upload, *, folder: str, ephemeral: bool) -> Attachment:
    """Give ``upload`` an id and a signed URL, and keep it for the CDN to serve."""
    att = attachment_from_upload(
        upload,
        attachment_id=world.ids.next(),
        folder=folder,
        base=world.public_base,
        ephemeral=ephemeral,
    )
    world.attachments[att.id] = att
    return att


def attachment_payload(att: Attachment) -> dict[str, Any]:
    """The attachment object; optional fields are left out when unknown, as Discord does."""
    data: dict[str, Any] = {
        "id": str(att.id),
        "filename": att.filename,
        "size": att.size,
        "url": att.url,
        "proxy_url": att.proxy_url,
        "flags": 0,
    }
    if att.content_type is not None:
        data["content_type"] = att.content_type
    if att.description is not None:
        data["description"] = att.description
    if att.width is not None and att.height is not None:
        data.update(width=att.width, height=att.height)
    if att.ephemeral:
        data["ephemeral"] = True
    return data
