"""Bytes of an uploaded file to text, by evidence, or a clear refusal.

The order: a byte order mark; strict UTF-8 (nearly every file today); Windows-1252 when it
reads cleanly (the common legacy encoding of Western text, a superset of Latin-1's printable
characters); otherwise charset-normalizer's best guess (Cyrillic, Greek, Central European,
CJK...). UTF-16 without a mark is accepted only when the detector finds it: decoding any even
number of bytes "succeeds" in UTF-16, which once turned a Latin-1 note into CJK noise.
"""

from __future__ import annotations

import codecs
import logging
import re

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

from bot.core.errors import InvalidRequestError

log = logging.getLogger(__name__)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# How much "mess" (charset-normalizer's measure of implausible text) a Windows-1252 reading
# may show and still win over the detector: short Western notes are ambiguous to it (it
# read “smart quotes” as cp437 box drawing), while Cyrillic or Greek read as 1252 score > 1.
MAX_WESTERN_MESS = 0.1
# A text file may hold a few stray control characters; past this share it is binary.
MAX_CONTROL_SHARE = 0.01
# Control characters other than tab, line breaks and form feed, and private-use code points
# (what bytes of a binary file tend to become): Unicode's categories Cc and Co.
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\U000f0000-\U0010ffff]")


class NotTextError(InvalidRequestError):
    """The file's bytes are not text in any encoding we can tell."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        super().__init__(f"`{filename}` does not look like a text file.")


def decode_text(data: bytes, filename: str) -> str:
    """The text of ``data``; raises NotTextError for binary or undecodable content."""
    text = _decode(data)
    if text is None or not _looks_like_text(text):
        raise NotTextError(filename)
    return text


def _decode(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    if b"\x00" in data:
        # Zero bytes are valid UTF-8 but no text file has them: UTF-16/32 without a mark
        # (when the detector is sure of it), or binary.
        best = from_bytes(data).best()
        if best is None or not best.encoding.startswith(("utf_16", "utf_32")):
            return None
        return str(best)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and mess_ratio(western, MAX_WESTERN_MESS) <= MAX_WESTERN_MESS:
        return western
    best = from_bytes(data).best()
    if best is None:
        return None
    log.debug("decoded an upload as %s", best.encoding)
    return str(best)


def _looks_like_text(text: str) -> bool:
    if not text:
        return True
    return len(_NOT_TEXT.findall(text)) <= len(text) * MAX_CONTROL_SHARE
