"""An attached image made ready for a vision model: checked, bounded, stripped, re-encoded.

The format is read from the bytes, never from the name or content type. Only the first frame
of an animation is decoded. The result is RGB, at most ``MAX_IMAGE_SIDE`` on its longer side,
turned upright by its EXIF orientation, and saved without any metadata: a phone photo's GPS
position must reach neither the model nor the database.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.core.errors import AttachmentError

log = logging.getLogger(__name__)

# Pillow's names; only these decoders are ever tried, which also keeps rarely audited ones
# (TIFF, PSD, ICO...) away from untrusted bytes.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
ACCEPTED_NAMES = "PNG, JPEG, WebP or GIF"
# Discord lets anyone upload 10 MB on a server without boosts; twice that leaves room for
# boosted servers' photos while keeping one download's memory small.
MAX_IMAGE_UPLOAD_BYTES = 20 * 1024 * 1024
# A 48-megapixel phone photo (8064×6048) passes; decoding 50 MP as RGBA takes 200 MB, which
# is as much as one attachment should cost. Checked from the header, before decoding.
MAX_IMAGE_PIXELS = 50_000_000
# Vision models see far less: llava 336-672 px, gemma3 896, llama3.2-vision 560-px tiles up
# to 1120, qwen2.5vl any size in 28-px patches. 1344 (48 × 28, 2 × 672) is above all of them,
# keeps a screenshot's small text legible, and holds qwen2.5vl to ~2,300 tokens a square image.
MAX_IMAGE_SIDE = 1344
# Base64 makes it 2 MB in the request, and it is stored with the turn.
MAX_PREPARED_IMAGE_BYTES = 1536 * 1024
# Tried in order until the JPEG fits; 85 is visually lossless for photos. Measured on random
# noise at 1344×1008 (the worst case): 1.0 MB at 85, 0.5 MB at 45.
JPEG_QUALITIES = (85, 75, 60, 45, 30)
# When even the lowest quality does not fit (not seen in practice), the sides shrink by this.
SHRINK_FACTOR = 0.75
BACKGROUND = (255, 255, 255)  # transparent areas become white, as most viewers show them
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image ready for Ollama: ``data`` is a JPEG or PNG of ``width`` × ``height``.

    ``original_bytes`` and ``original_format`` (Pillow's name, e.g. "PNG") describe the upload.
    """

    data: bytes
    mime: str
    width: int
    height: int
    original_bytes: int
    original_format: str

    def base64(self) -> str:
        """The data as Ollama's ``images`` field wants it."""
        return base64.b64encode(self.data).decode("ascii")


def prepare_image(data: bytes, filename: str, content_type: str | None = None) -> PreparedImage:
    """Check, decode, downscale and re-encode an uploaded image; AttachmentError if unusable.

    CPU-bound (decoding a large photo takes a noticeable moment): call it with
    ``asyncio.to_thread``. ``content_type`` is only logged when it disagrees with the bytes.
    """
    if len(data) > MAX_IMAGE_UPLOAD_BYTES:
        raise AttachmentError(
            filename,
            AttachmentError.TOO_LARGE,
            f"`{filename}` is {_megabytes(len(data))}; images can be at most "
            f"{_megabytes(MAX_IMAGE_UPLOAD_BYTES)}.",
        )
    with _open(data, filename) as image:
        original_format = image.format or "unknown"
        if content_type and original_format.lower() not in content_type.lower():
            log.debug("%s is labelled %s but is %s", filename, content_type, original_format)
        upright = _decode_first_frame(image, filename)
    rgb = _flatten(upright)
    rgb.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    # A JPEG upload has JPEG artefacts that PNG compresses badly; screenshots and line art
    # (PNG, GIF, often WebP) are usually smaller as PNG, and lossless keeps small text sharp.
    encoded, mime, (width, height) = _encode(rgb, try_png=original_format != "JPEG")
    return PreparedImage(encoded, mime, width, height, len(data), original_format)


def _open(data: bytes, filename: str) -> Image.Image:
    """Identify the image from its header, refusing what we cannot or will not decode."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise AttachmentError(
            filename,
            AttachmentError.UNSUPPORTED,
            f"`{filename}` is not a {ACCEPTED_NAMES} image.",
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own cap is above ours, so only absurd sizes get here (the warning is an
        # exception only where warnings are errors).
        raise _too_many_pixels(filename) from exc
    except Exception as exc:  # Pillow's plugins raise many types on damaged headers
        raise _unreadable(filename) from exc
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise _too_many_pixels(filename, image.size)
    return image


def _decode_first_frame(image: Image.Image, filename: str) -> Image.Image:
    """The first frame, decoded and turned upright; later frames are never read."""
    # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: much faster and smaller for photos
    # that are downscaled anyway. The box is square so the EXIF rotation cannot undercut it.
    image.draft(None, (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(filename) from exc
    except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, ValueError...
        raise _unreadable(filename) from exc
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # damaged EXIF should not cost the picture, only its orientation
        log.debug("%s: EXIF orientation unreadable; kept as stored", filename, exc_info=True)
        return image.copy()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (JPEG has none; models expect RGB)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # 16-bit grey (scientific PNGs): converting directly would clip everything to white.
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _encode(image: Image.Image, *, try_png: bool) -> tuple[bytes, str, tuple[int, int]]:
    """The smallest acceptable encoding within MAX_PREPARED_IMAGE_BYTES, and its size."""
    if try_png:
        png = _save(image, "PNG")
        if len(png) <= MAX_PREPARED_IMAGE_BYTES and len(png) < len(
            _save(image, "JPEG", quality=JPEG_QUALITIES[0])
        ):
            return png, "image/png", image.size
    # Terminates: a JPEG of a few pixels is a few hundred bytes.
    while True:
        for quality in JPEG_QUALITIES:
            jpeg = _save(image, "JPEG", quality=quality)
            if len(jpeg) <= MAX_PREPARED_IMAGE_BYTES:
                return jpeg, "image/jpeg", image.size
        width, height = image.size
        smaller = (max(1, int(width * SHRINK_FACTOR)), max(1, int(height * SHRINK_FACTOR)))
        log.debug("a %dx%d image did not fit at any quality; trying %s", width, height, smaller)
        image = image.resize(smaller, Image.Resampling.LANCZOS)


def _save(image: Image.Image, fmt: str, **options: int) -> bytes:
    # Pillow's PNG encoder copies the ICC profile from ``info``; emptied, nothing of the
    # upload's metadata can follow. (Wide-gamut photos then shift a little in colour, which
    # does not change what a model sees in them.)
    image.info = {}
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _too_many_pixels(filename: str, size: tuple[int, int] | None = None) -> AttachmentError:
    dimensions = f" ({size[0]:,}×{size[1]:,} pixels)" if size else ""
    return AttachmentError(
        filename,
        AttachmentError.TOO_LARGE,
        f"`{filename}` is too large{dimensions}; images can have at most "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels.",
    )


def _unreadable(filename: str) -> AttachmentError:
    return AttachmentError(
        filename,
        AttachmentError.UNREADABLE,
        f"`{filename}` could not be read as an image; it may be damaged or incomplete.",
    )


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"
