"""Image dimensions read from file headers, as the emulator reports them for uploads."""

from __future__ import annotations

import io

import pytest

from tests.emulators.discord_attachments import image_size, png_bytes

# ----- image headers -------------------------------------------------------------

JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"  # SOI, APP0
    + b"\xff\xc2\x00\x11\x08\x00\x30\x00\x40\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"  # SOF2
)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png_bytes(7, 9), (7, 9)),
        (b"GIF87a\x02\x01\x03\x00", (258, 3)),
        (JPEG, (64, 48)),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x10\x02\x00\x9d\x01\x2a\x0a\x00\x0b\x00",
            (10, 11),
        ),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f"
            + (4 | 5 << 14).to_bytes(4, "little"),
            (5, 6),
        ),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8X\x00\x00\x00\x00"
            + bytes(4)
            + b"\x63\x00\x00\xc7\x00\x00",
            (100, 200),
        ),
        (b"not an image", None),
        (b"\x89PNG\r\n\x1a\n", None),
    ],
)
def test_image_size_from_headers(data: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(data) == size


def test_image_size_matches_an_encoder() -> None:
    # Pillow is not a declared dependency: a cross-check when present.
    image_mod = pytest.importorskip("PIL.Image")

    for fmt, mode, extra in [
        ("JPEG", "RGB", {}),
        ("JPEG", "RGB", {"progressive": True}),
        ("WEBP", "RGB", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("WEBP", "RGBA", {}),
        ("GIF", "P", {}),
    ]:
        buf = io.BytesIO()
        image_mod.new(mode, (33, 17)).save(buf, fmt, **extra)
        assert image_size(buf.getvalue()) == (33, 17), (fmt, mode, extra)
