"""Files members attach (to /ask, /summarize or a mention), read from Discord's CDN and
turned into what the core takes: prepared images, documents, a JSON schema.

A declared size over the limit is refused before anything is downloaded; the CPU-bound
decoding runs in a thread, off the event loop that streams everyone's answers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.core.documents import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_CHARS, Document, read_document
from bot.core.errors import AttachmentError
from bot.core.images import MAX_IMAGE_UPLOAD_BYTES, prepare_image
from bot.core.queries import MAX_IMAGES_PER_QUESTION

log = logging.getLogger(__name__)

MEBIBYTE = 1024 * 1024
MAX_SCHEMA_FILE_BYTES = 64 * 1024
# Discord's CDN serves a 20 MB file in a second or two; one that takes this long is stuck.
DOWNLOAD_TIMEOUT = 60.0
MAX_FILES_PER_QUESTION = 4
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


def is_image(attachment: discord.Attachment) -> bool:
    """Whether to read an attachment as an image (its bytes decide later whether it is)."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type.startswith("image/"):
        return True
    return not content_type and attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


def check_size(attachment: discord.Attachment, limit: int) -> None:
    """Refuse an attachment Discord says is over ``limit`` bytes (nothing is downloaded)."""
    if attachment.size > limit:
        # In MiB, as the core's own limits and most file managers count them.
        raise AttachmentError(
            attachment.filename,
            AttachmentError.TOO_LARGE,
            f"`{attachment.filename}` is {attachment.size / MEBIBYTE:.1f} MB; the limit is "
            f"{limit / MEBIBYTE:.0f} MB.",
        )


async def download(attachment: discord.Attachment, limit: int) -> bytes:
    """The attachment's bytes; refused unread when Discord says it is over ``limit``."""
    check_size(attachment, limit)
    try:
        data = await asyncio.wait_for(attachment.read(), DOWNLOAD_TIMEOUT)
    except TimeoutError as exc:
        raise AttachmentError(
            attachment.filename,
            AttachmentError.UNREADABLE,
            f"`{attachment.filename}` took too long to download from Discord; please try again.",
        ) from exc
    except (discord.HTTPException, discord.NotFound) as exc:
        raise AttachmentError(
            attachment.filename,
            AttachmentError.UNREADABLE,
            f"`{attachment.filename}` could not be downloaded from Discord (the link may "
            "have expired); please attach it again.",
        ) from exc
    if len(data) > limit:  # the CDN sent more than Discord declared
        raise AttachmentError(
            attachment.filename, AttachmentError.TOO_LARGE, f"`{attachment.filename}` is too large."
        )
    return data


async def read_image(attachment: discord.Attachment) -> bytes:
    data = await download(attachment, MAX_IMAGE_UPLOAD_BYTES)
    prepared = await asyncio.to_thread(
        prepare_image, data, attachment.filename, attachment.content_type
    )
    return prepared.data


async def read_file(
    attachment: discord.Attachment, max_chars: int = MAX_DOCUMENT_CHARS
) -> Document:
    data = await download(attachment, MAX_DOCUMENT_BYTES)
    return await asyncio.to_thread(
        functools.partial(read_document, max_chars=max_chars),
        attachment.filename,
        data,
        attachment.content_type,
    )


async def read_schema(attachment: discord.Attachment) -> dict[str, Any]:
    """A JSON Schema file (checked by the core before anything is asked)."""
    data = await download(attachment, MAX_SCHEMA_FILE_BYTES)
    try:
        schema = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AttachmentError(
            attachment.filename,
            AttachmentError.UNREADABLE,
            f"`{attachment.filename}` is not valid JSON, so it cannot be a JSON schema.",
        ) from exc
    if not isinstance(schema, dict):
        raise AttachmentError(
            attachment.filename,
            AttachmentError.UNSUPPORTED,
            f"`{attachment.filename}` is JSON but not a schema (a schema is an object).",
        )
    return schema


@dataclass(slots=True)
class Attached:
    """What came with a question: prepared images and read documents."""

    images: list[bytes] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)


async def read_attachments(
    images: Sequence[discord.Attachment], files: Sequence[discord.Attachment]
) -> Attached:
    """Read every attachment concurrently; the first problem is raised (AttachmentError)."""
    if len(images) > MAX_IMAGES_PER_QUESTION:
        raise AttachmentError(
            images[-1].filename,
            AttachmentError.UNSUPPORTED,
            f"At most {MAX_IMAGES_PER_QUESTION} images can go with one question.",
        )
    if len(files) > MAX_FILES_PER_QUESTION:
        raise AttachmentError(
            files[-1].filename,
            AttachmentError.UNSUPPORTED,
            f"At most {MAX_FILES_PER_QUESTION} files can go with one question.",
        )
    read = await asyncio.gather(
        asyncio.gather(*(read_image(a) for a in images)),
        asyncio.gather(*(read_file(a) for a in files)),
    )
    return Attached(list(read[0]), list(read[1]))


def split_attachments(
    attachments: Sequence[discord.Attachment],
) -> tuple[list[discord.Attachment], list[discord.Attachment]]:
    """(images, files) of a message's attachments."""
    images = [a for a in attachments if is_image(a)]
    return images, [a for a in attachments if not is_image(a)]
