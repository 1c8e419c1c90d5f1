"""Attached images become bounded, upright, metadata-free JPEG or PNG, or a clear refusal."""

from __future__ import annotations

import base64
import io
import os
import struct
import zipfile
import zlib

import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from bot.core import images
from bot.core.errors import AttachmentError
from bot.core.images import (
    MAX_IMAGE_SIDE,
    MAX_IMAGE_UPLOAD_BYTES,
    MAX_PREPARED_IMAGE_BYTES,
    PreparedImage,
    prepare_image,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def decoded(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


def noise(width: int, height: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def close_to(pixel: tuple[int, ...], expected: tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel[:3], expected, strict=True))


def claiming(fmt: str, width: int, height: int) -> bytes:
    """A 1×1 PNG or GIF whose header claims these dimensions: decoding it would fail."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), fmt))
    if fmt == "PNG":
        data[16:24] = struct.pack(">II", width, height)  # IHDR, then its CRC
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    else:
        data[6:10] = struct.pack("<HH", width, height)  # the GIF's logical screen
    return bytes(data)


def refusal(data: bytes, filename: str = "upload.png") -> AttachmentError:
    with pytest.raises(AttachmentError) as caught:
        prepare_image(data, filename)
    assert caught.value.filename == filename
    assert f"`{filename}`" in caught.value.user_message
    return caught.value


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_each_accepted_format_comes_out_the_same_size_and_colour(fmt: str) -> None:
    data = encode(Image.new("RGB", (64, 48), RED), fmt)
    prepared = prepare_image(data, f"red.{fmt.lower()}")
    assert (prepared.width, prepared.height) == (64, 48)
    assert prepared.original_format == fmt
    assert prepared.original_bytes == len(data)
    image = decoded(prepared)
    assert image.size == (64, 48)
    assert image.get_format_mimetype() == prepared.mime
    assert image.mode == "RGB"
    assert close_to(image.getpixel((32, 24)), RED)
    assert base64.b64decode(prepared.base64(), validate=True) == prepared.data


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_an_animation_gives_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, (0, 255, 0), BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    image = decoded(prepare_image(data, f"anim.{fmt.lower()}"))
    assert close_to(image.getpixel((20, 15)), RED)


@pytest.mark.parametrize(
    ("size", "fmt", "expected"),
    [
        ((4000, 1000), "PNG", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE // 4)),
        ((1000, 4000), "JPEG", (MAX_IMAGE_SIDE // 4, MAX_IMAGE_SIDE)),  # decoded in draft mode
        ((MAX_IMAGE_SIDE + 1, 10), "WEBP", (MAX_IMAGE_SIDE, 10)),
        ((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), "PNG", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)),
    ],
)
def test_large_images_are_downscaled_keeping_the_aspect_ratio(
    size: tuple[int, int], fmt: str, expected: tuple[int, int]
) -> None:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    prepared = prepare_image(encode(image, fmt), f"big.{fmt.lower()}")
    assert (prepared.width, prepared.height) == expected
    assert decoded(prepared).size == expected


def photo_with_gps(fmt: str) -> bytes:
    """Red left half, blue right half, stored sideways (orientation 6), with a GPS position,
    a colour profile and (PNG) a text chunk."""
    image = Image.new("RGB", (60, 20), RED)
    image.paste(BLUE, (30, 0, 60, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90° clockwise
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "taken at home")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    extra = {"pnginfo": text} if fmt == "PNG" else {"quality": 95}
    data = encode(image, fmt, exif=exif.tobytes(), icc_profile=icc, **extra)
    # The fixture really carries what must be removed.
    stored = Image.open(io.BytesIO(data))
    assert "icc_profile" in stored.info
    assert stored.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    return data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_and_every_metadata_is_stripped(fmt: str) -> None:
    prepared = prepare_image(photo_with_gps(fmt), "holiday.jpg")
    image = decoded(prepared)
    assert image.size == (20, 60)
    assert close_to(image.getpixel((10, 5)), RED, slack=40)  # the left side is now on top
    assert close_to(image.getpixel((10, 55)), BLUE, slack=40)
    assert not image.getexif()
    assert not set(image.info) & {"exif", "xmp", "icc_profile", "Comment"}
    assert b"Exif" not in prepared.data
    assert b"taken at home" not in prepared.data


@pytest.mark.parametrize(
    ("mode", "fmt"), [("RGBA", "PNG"), ("LA", "PNG"), ("RGBA", "WEBP"), ("RGBA", "GIF")]
)
def test_transparency_is_flattened_on_white(mode: str, fmt: str) -> None:
    icon = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # red where nothing should show
    icon.paste((0, 0, 0, 255), (8, 8, 24, 24))  # an opaque black square in the middle
    image = decoded(prepare_image(encode(icon.convert(mode), fmt), f"icon.{fmt.lower()}"))
    assert image.mode == "RGB"
    assert close_to(image.getpixel((1, 1)), (255, 255, 255))
    assert close_to(image.getpixel((16, 16)), (0, 0, 0))


def test_sixteen_bit_grey_keeps_its_shade() -> None:
    data = encode(Image.new("I;16", (8, 8), 40_000), "PNG")
    grey = 40_000 // 256
    assert close_to(decoded(prepare_image(data, "scan.png")).getpixel((4, 4)), (grey,) * 3, 2)


def test_a_mislabelled_image_is_accepted_by_its_content() -> None:
    data = encode(Image.new("RGB", (10, 10), RED), "PNG")
    prepared = prepare_image(data, "photo.jpg", content_type="image/jpeg")
    assert prepared.original_format == "PNG"


def pdf_and_zip() -> tuple[bytes, bytes]:
    pdf = FPDF()
    pdf.add_page()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.png", encode(Image.new("RGB", (4, 4)), "PNG"))
    return bytes(pdf.output()), out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"Just some text, not a picture at all.\n",
        b"",
        os.urandom(2048),
        encode(Image.new("RGB", (16, 16)), "BMP"),  # an image, of a kind we do not decode
        encode(Image.new("RGB", (16, 16)), "TIFF"),
        *pdf_and_zip(),
    ],
    ids=["text", "empty", "random", "bmp", "tiff", "pdf", "zip"],
)
def test_what_is_not_an_accepted_image_is_unsupported(data: bytes) -> None:
    error = refusal(data, "cat.png")
    assert error.reason == AttachmentError.UNSUPPORTED
    assert "PNG, JPEG, WebP or GIF" in error.user_message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a_truncated_image_is_unreadable(fmt: str) -> None:
    data = encode(noise(200, 200), fmt)
    error = refusal(data[: len(data) // 2], f"cut.{fmt.lower()}")
    assert error.reason == AttachmentError.UNREADABLE
    assert "damaged or incomplete" in error.user_message


def test_an_oversized_upload_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*_args: object, **_kwargs: object) -> Image.Image:
        raise AssertionError("the image was opened")

    monkeypatch.setattr(images.Image, "open", no_decoding)
    data = encode(Image.new("RGB", (10, 10)), "PNG") + bytes(MAX_IMAGE_UPLOAD_BYTES)
    error = refusal(data, "huge.png")
    assert error.reason == AttachmentError.TOO_LARGE
    assert "20.0 MB" in error.user_message


@pytest.mark.parametrize(
    "data",
    [
        claiming("PNG", 8_000, 8_000),  # 64 MP: over our cap, under Pillow's
        claiming("PNG", 20_000, 20_000),  # 400 MP: Pillow itself calls it a bomb
        claiming("GIF", 9_000, 9_000),
        claiming("GIF", 65_535, 65_535),
    ],
    ids=["png-64MP", "png-400MP", "gif-81MP", "gif-4GP"],
)
def test_decompression_bombs_are_refused_from_their_header(data: bytes) -> None:
    # Decoding these would find one pixel where millions are claimed: UNREADABLE, not this.
    error = refusal(data, "bomb.png")
    assert error.reason == AttachmentError.TOO_LARGE
    assert "50 megapixels" in error.user_message


def test_noise_at_full_size_stays_within_the_byte_bound() -> None:
    prepared = prepare_image(encode(noise(1500, 1500), "PNG"), "noise.png")
    assert len(prepared.data) <= MAX_PREPARED_IMAGE_BYTES
    assert prepared.mime == "image/jpeg"  # PNG cannot compress noise
    assert (prepared.width, prepared.height) == (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)


def test_quality_then_size_give_way_to_the_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PREPARED_IMAGE_BYTES", 20_000)
    prepared = prepare_image(encode(noise(1000, 800), "JPEG", quality=95), "noise.jpg")
    assert len(prepared.data) <= 20_000
    assert prepared.width < 1000
    assert decoded(prepared).size == (prepared.width, prepared.height)
    assert prepared.width * 800 == pytest.approx(prepared.height * 1000, rel=0.01)


def test_a_screenshot_like_image_stays_lossless_png() -> None:
    image = Image.new("RGB", (600, 400), "white")
    image.paste((30, 30, 30), (50, 50, 550, 60))
    prepared = prepare_image(encode(image, "PNG"), "screenshot.png")
    assert prepared.mime == "image/png"
    assert decoded(prepared).getpixel((100, 55)) == (30, 30, 30)


@st.composite
def small_images(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, int]]:
    mode = draw(st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "WEBP", "GIF"]))
    tile = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    raw = draw(st.binary(min_size=tile[0] * tile[1] * 4, max_size=tile[0] * tile[1] * 4))
    image = Image.frombytes("RGBA", tile, raw).convert(mode)
    # Random pixels in tiles: noisy enough to stress the encoder, cheap to generate.
    size = (draw(st.integers(1, 2_000)), draw(st.integers(1, 2_000)))
    image = image.resize(size, Image.Resampling.NEAREST)
    if fmt == "JPEG" and mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return encode(image, fmt), fmt, size


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_images())
def test_output_is_always_within_bounds(case: tuple[bytes, str, tuple[int, int]]) -> None:
    data, fmt, (width, height) = case
    prepared = prepare_image(data, "random")
    assert len(prepared.data) <= MAX_PREPARED_IMAGE_BYTES
    assert max(prepared.width, prepared.height) <= MAX_IMAGE_SIDE
    assert prepared.width <= width and prepared.height <= height
    assert prepared.original_format == fmt
    image = decoded(prepared)
    assert image.size == (prepared.width, prepared.height)
    assert image.mode == "RGB"
    assert image.get_format_mimetype() == prepared.mime


MAGIC = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF"])


@settings(max_examples=300, deadline=None)
@given(MAGIC, st.binary(max_size=512))
def test_arbitrary_bytes_give_an_image_or_an_attachment_error(magic: bytes, rest: bytes) -> None:
    try:
        prepared = prepare_image(magic + rest, "fuzz.png")
    except AttachmentError:
        return
    assert len(prepared.data) <= MAX_PREPARED_IMAGE_BYTES
