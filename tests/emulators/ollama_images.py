"""Images in chat and generate requests, as Ollama 0.12.6 takes them.

- Decoding: `images` are `[]api.ImageData` ([]byte) in api/types.go, so Go's encoding/json
  decodes each string with base64.StdEncoding while binding the request, before the model
  is even looked up; a bad one is a 400 with the decoder's own words, e.g.
  "illegal base64 data at input byte 4".
- A model without the vision capability is NOT refused by 0.12.6 (nor by later versions):
  chatPrompt (server/prompt.go) puts an `[img-N]` tag in front of the message's text and the
  runner of a text-only architecture tokenizes that tag as text and never looks at the
  image. That is the emulator's default ("ignore"), so a bot that sends images to the wrong
  model sees what it would see in production: an answer, blind to the picture. A model of
  a vision architecture whose file lacks the vision weights (a text-only GGUF of gemma3,
  say) fails in the runner instead; EmulatedModel(images_without_vision="refuse") gives
  that 500 ("... this model is missing data required for image input").
- A vision model decodes each image with Go's image.Decode (png, jpeg, bmp, tiff and webp
  are registered by model/model.go); bytes of none of those formats fail with
  "image: unknown format". The emulator only sniffs the signatures.
- Each image a vision model sees costs `EmulatedModel.tokens_per_image` prompt tokens in
  place of its tag: 768 by default, the CLIP figure chatPrompt assumes when it sizes the
  window; gemma3 in the catalogue uses 256, its mm_tokens_per_image.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any, Final

_ALPHABET: Final = {c: i for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase)}
_ALPHABET.update({str(d): 52 + d for d in range(10)} | {"+": 62, "/": 63})
_NEWLINES: Final = b"\r\n"
_PAD: Final = ord("=")

# Go's image.RegisterFormat magic strings; "?" matches any byte.
_SIGNATURES: Final = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8",
    b"BM????\x00\x00\x00\x00",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF????WEBPVP8",
)

RUNNER_PREFIX: Final = "Failed to create new sequence: failed to process inputs: "
NO_VISION: Final = RUNNER_PREFIX + "this model is missing data required for image input"
UNKNOWN_FORMAT: Final = RUNNER_PREFIX + "image: unknown format"


class ImageError(ValueError):
    """An image the server cannot take; the message is the server's."""


def go_b64decode(text: str) -> bytes:
    """base64.StdEncoding.Decode, with its CorruptInputError offsets: padding required,
    \\r and \\n skipped, anything after the padding refused."""
    src = text.encode()
    out = bytearray()
    si = 0
    while si < len(src):
        si, chunk = _quantum(src, si)
        out += chunk
    return bytes(out)


def _corrupt(offset: int) -> ImageError:
    return ImageError(f"illegal base64 data at input byte {offset}")


def _quantum(src: bytes, si: int) -> tuple[int, bytes]:
    """decodeQuantum: four characters (newlines aside) into up to three bytes."""
    digits: list[int] = []
    while len(digits) < 4:
        if si == len(src):
            if not digits:
                return si, b""
            raise _corrupt(si - len(digits))  # StdEncoding pads: a short quantum is corrupt
        char = src[si]
        si += 1
        if (value := _ALPHABET.get(chr(char))) is not None:
            digits.append(value)
            continue
        if char in _NEWLINES:
            continue
        if char != _PAD or len(digits) < 2:
            raise _corrupt(si - 1)
        if len(digits) == 2:  # "==" expected: the first "=" is consumed
            while si < len(src) and src[si] in _NEWLINES:
                si += 1
            if si == len(src):
                raise _corrupt(len(src))
            if src[si] != _PAD:
                raise _corrupt(si - 1)
            si += 1
        while si < len(src) and src[si] in _NEWLINES:
            si += 1
        if si < len(src):
            raise _corrupt(si)  # trailing garbage after the padding
        break
    value = 0
    for digit in digits + [0] * (4 - len(digits)):
        value = value << 6 | digit
    return si, value.to_bytes(3, "big")[: len(digits) - 1]


def _go_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", type(None): "null"}.get(type(value), "string")


def _decode_all(images: object, where: str) -> list[bytes]:
    if images is None:
        return []
    if not isinstance(images, list):
        raise ImageError(
            f"json: cannot unmarshal {_go_kind(images)} into Go struct field {where}"
            " of type []api.ImageData"
        )
    decoded = []
    for image in images:
        # null decodes to an empty image in Go; other non-strings are type errors.
        if image is not None and not isinstance(image, str):
            raise ImageError(
                f"json: cannot unmarshal {_go_kind(image)} into Go struct field {where}"
                " of type api.ImageData"
            )
        decoded.append(go_b64decode(image or ""))
    return decoded


def decode_request(body: Mapping[str, Any], chat: bool) -> list[bytes]:
    """Every image of the request, decoded, in order; ImageError where Go's binding fails.
    (The struct names in type errors are approximate: only base64 errors were checked.)"""
    if not chat:
        return _decode_all(body.get("images"), "GenerateRequest.images")
    messages = body.get("messages")
    decoded: list[bytes] = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            decoded += _decode_all(message.get("images"), "Alias.images")
    return decoded


def per_message(body: Mapping[str, Any], chat: bool) -> list[int]:
    """How many images each message carries (generate: its one user message)."""
    if not chat:
        return [len(body.get("images") or [])]
    return [len(m.get("images") or []) for m in body.get("messages") or []]


def is_image(data: bytes) -> bool:
    return any(
        len(data) >= len(sig) and all(s in (ord("?"), d) for s, d in zip(sig, data, strict=False))
        for sig in _SIGNATURES
    )


def check_seen(images: Sequence[bytes], vision: bool, refuse_without_vision: bool) -> None:
    """What the runner says about the images that made it into the prompt."""
    if not images:
        return
    if not vision:
        if refuse_without_vision:
            raise ImageError(NO_VISION)
        return
    if not all(is_image(image) for image in images):
        raise ImageError(UNKNOWN_FORMAT)


def tag_text(first_id: int, count: int) -> str:
    """The `[img-N]` tags chatPrompt puts in front of a message's text."""
    return "".join(f"[img-{first_id + k}]" for k in range(count))
