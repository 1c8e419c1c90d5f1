"""Fuzz: files members attach (bot/core/documents.py read_document, bot/core/images.py
prepare_image, and how bot/discord_app/attachments.py sorts them): random and binary bytes,
files mislabelled by name or content type, truncated PDFs and images, and bombs within the
size limit (a PNG whose header promises gigapixels, one that decodes to 49 megapixels from a
few kilobytes, a PDF whose content stream inflates to 100 MB from 100 KB).

Properties: a file is read or refused with AttachmentError (a reason of its own and a message
naming the file), never another exception; what is read is bounded (a document's text at most
``max_chars``, a prepared image within MAX_IMAGE_SIDE and MAX_PREPARED_IMAGE_BYTES). Memory is
bounded by sizes, not timed: the bombs are refused from their headers or by pypdf's limit.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache
from typing import Any
from unittest.mock import create_autospec

import discord
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from bot.core.documents import read_document
from bot.core.errors import AttachmentError
from bot.core.images import MAX_IMAGE_SIDE, MAX_PREPARED_IMAGE_BYTES, prepare_image
from bot.discord_app.attachments import split_attachments
from tests.fuzz.support import AWKWARD, fuzz

REASONS = {
    AttachmentError.TOO_LARGE,
    AttachmentError.TOO_LONG,
    AttachmentError.UNREADABLE,
    AttachmentError.UNSUPPORTED,
}
NAMES = ["a.txt", "a.pdf", "a.png", "a.jpg", "a.json", "a.md", "a", ".py", "a.PDF", *AWKWARD[1:8]]
CONTENT_TYPES = [None, "", "text/plain", "application/pdf", "image/png", "image/jpeg; x=1",
                 "application/json", "application/octet-stream", "text/csv"]  # fmt: skip


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, depth: int = 1, rows: int | None = None) -> bytes:
    """A grey PNG of zero pixels, compressed as far as zlib goes (``rows``: cut short)."""
    stride = 1 + (width * depth + 7) // 8
    packer = zlib.compressobj(9)
    body = b"".join(
        packer.compress(b"\0" * stride) for _ in range(height if rows is None else rows)
    )
    body += packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def pdf(stream: bytes, *, filtered: bool = True) -> bytes:
    """A one-page PDF whose content stream is ``stream`` (already deflated if ``filtered``)."""
    flate = b"/Filter /FlateDecode " if filtered else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 "
        b"/BaseFont /Helvetica >> >> >> >>",
        b"<< " + flate + b"/Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
        + b"\nendstream",
    ]  # fmt: skip
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


@cache
def samples() -> dict[str, bytes]:
    """Real files and bombs, built once (the inflating ones take a moment to compress)."""
    text_pdf = pdf(zlib.compress(b"BT /F1 12 Tf 72 720 Td (Hello fuzz) Tj ET"))
    packer = zlib.compressobj(9)
    inflating = b"".join(packer.compress(b"0" * 1_000_000) for _ in range(100)) + packer.flush()
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(photo, "JPEG")
    return {
        "pdf": text_pdf,
        "pdf truncated": text_pdf[: len(text_pdf) // 2],
        "pdf without its end": text_pdf.replace(b"%%EOF", b""),
        "pdf bomb": pdf(inflating),
        "pdf raw stream": pdf(b"BT (x) Tj ET" * 1000, filtered=False),
        "png gigapixels": png(100_000, 100_000, rows=10),
        "png 49 megapixels": png(7000, 7000),
        "png truncated": png(300, 300, depth=8)[:70],
        "jpeg": photo.getvalue(),
        "jpeg truncated": photo.getvalue()[:300],
        "utf-16": "héllo wörld\n".encode("utf-16"),
        "json": b'{"a": [1, 2, {"b": null}]}',
        "deep json": b"[" * 100_000 + b"]" * 100_000,
        "zip": b"PK\x03\x04" + b"\0" * 100,
        "nul text": b"hello\x00world",
    }


def mutate(data: bytes, cuts: list[int], noise: bytes) -> bytes:
    """The file cut short or with bytes overwritten at a few places."""
    out = bytearray(data)
    for cut in cuts:
        at = cut % (len(out) + 1)
        out[at : at + len(noise)] = noise
    return bytes(out)


files = st.one_of(
    st.binary(max_size=4096),
    st.text(max_size=2000).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(
        mutate,
        st.sampled_from(sorted(samples())).map(lambda k: samples()[k]),
        st.lists(st.integers(0, 10**6), max_size=3),
        st.binary(max_size=8),
    ),
    st.sampled_from(sorted(samples())).map(lambda k: samples()[k]),
)


def check_refusal(exc: AttachmentError, filename: str) -> None:
    assert exc.reason in REASONS
    assert f"`{filename}`" in exc.user_message


@fuzz(150)
@given(
    data=files,
    filename=st.sampled_from(NAMES),
    content_type=st.sampled_from(CONTENT_TYPES),
    max_chars=st.sampled_from([200_000, 1000, 10]),
)
@example(data=samples()["pdf bomb"], filename="a.pdf", content_type=None, max_chars=200_000)
@example(data=samples()["pdf"], filename="a.pdf", content_type=None, max_chars=200_000)
@example(data=samples()["pdf truncated"], filename="a.pdf", content_type=None, max_chars=200_000)
@example(data=samples()["deep json"], filename="a.json", content_type=None, max_chars=200_000)
@example(
    data=samples()["png 49 megapixels"], filename="a.txt", content_type="text/plain", max_chars=10
)
def test_documents_are_read_within_bounds_or_refused(
    data: bytes, filename: str, content_type: str | None, max_chars: int
) -> None:
    try:
        document = read_document(filename, data, content_type, max_chars=max_chars)
    except AttachmentError as exc:
        check_refusal(exc, filename)
        return
    assert document.characters == len(document.text) <= max_chars
    assert document.text.strip()
    assert document.kind in ("text", "markdown", "code", "csv", "json", "pdf")


@fuzz(60)
@given(data=files, filename=st.sampled_from(NAMES), content_type=st.sampled_from(CONTENT_TYPES))
@example(data=samples()["png gigapixels"], filename="a.png", content_type="image/png")
@example(data=samples()["png 49 megapixels"], filename="a.png", content_type="image/png")
@example(data=samples()["png truncated"], filename="a.png", content_type="image/png")
@example(data=samples()["jpeg truncated"], filename="a.jpg", content_type=None)
@example(data=samples()["pdf"], filename="a.png", content_type="image/png")
def test_images_are_prepared_within_bounds_or_refused(
    data: bytes, filename: str, content_type: str | None
) -> None:
    try:
        prepared = prepare_image(data, filename, content_type)
    except AttachmentError as exc:
        check_refusal(exc, filename)
        return
    assert len(prepared.data) <= MAX_PREPARED_IMAGE_BYTES
    assert 1 <= prepared.width <= MAX_IMAGE_SIDE and 1 <= prepared.height <= MAX_IMAGE_SIDE
    assert prepared.mime in ("image/png", "image/jpeg")
    Image.open(io.BytesIO(prepared.data)).verify()


def attachment(filename: str, content_type: str | None) -> Any:
    fake = create_autospec(discord.Attachment, instance=True, spec_set=True)
    fake.filename, fake.content_type = filename, content_type
    return fake


@fuzz(30)
@given(
    named=st.lists(
        st.tuples(st.sampled_from(NAMES) | st.text(max_size=20), st.sampled_from(CONTENT_TYPES)
                  | st.text(max_size=20)),
        max_size=6,
    )
)  # fmt: skip
def test_attachments_are_sorted_into_images_and_files(
    named: list[tuple[str, str | None]],
) -> None:
    attachments = [attachment(name, kind) for name, kind in named]
    images, others = split_attachments(attachments)
    assert sorted(map(id, images + others)) == sorted(map(id, attachments))
    for a in images:
        kind = (a.content_type or "").split(";")[0].strip().lower()
        assert kind.startswith("image/") or (not kind and "." in a.filename)


def test_the_bombs_are_refused_and_the_real_files_read() -> None:
    """The fixed samples do what the fuzz builds on them assumes."""
    s = samples()
    assert read_document("a.pdf", s["pdf"]).text == "[Page 1]\nHello fuzz"
    for name in ("pdf bomb", "pdf truncated", "pdf without its end"):
        try:
            read_document("a.pdf", s[name])
        except AttachmentError as exc:
            assert exc.reason == AttachmentError.UNREADABLE, name
        else:
            raise AssertionError(f"{name} was read")
    try:
        prepare_image(s["png gigapixels"], "a.png")
    except AttachmentError as exc:
        assert exc.reason == AttachmentError.TOO_LARGE
    else:
        raise AssertionError("a gigapixel PNG was decoded")
    assert prepare_image(s["jpeg"], "a.jpg").width == 64
