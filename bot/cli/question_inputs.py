"""What a `chat` question carries besides its text: --image and --file, --format and
--schema, --preset.

Files named on the command line are read while the arguments are parsed, so one that cannot
be read is a usage error (one line, exit 2) before anything is opened; a schema is also
checked then, by the core's own rules. What the files hold is judged later, in threads, by
the core (``prepare_inputs``): an image that is not one, or a binary --file, is the core's
AttachmentError (exit 1), worded by ``bot.cli.context.error_message``.

Nothing heavy is imported here at the top: the parser is built for every --help.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.presets import PRESETS

if TYPE_CHECKING:
    from bot.core.documents import Document

T = TypeVar("T")

# A schema is at most 20,000 bytes once parsed (bot.core.structured); a file many times that
# is not one, and is not read whole (it might be /dev/zero).
MAX_SCHEMA_FILE_BYTES = 1024 * 1024
BYTES_PER_MEGABYTE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file named by --image or --file: its name (without the directory) and its bytes."""

    name: str
    data: bytes = field(repr=False)


@dataclass(slots=True)
class PreparedInputs:
    """The images ready for a vision model, and the documents' text."""

    images: list[bytes] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)


def add_question_inputs(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what the question carries")
    group.add_argument(
        "--image",
        dest="images",
        metavar="FILE",
        action="append",
        type=_image_file,
        help="an image for the model to look at (PNG, JPEG, WebP or GIF; a model that cannot "
        "see passes it to VISION_MODEL); repeatable",
    )
    group.add_argument(
        "--file",
        dest="files",
        metavar="FILE",
        action="append",
        type=_document_file,
        help="a file to ask about (text, Markdown, code, CSV, JSON or PDF), quoted before the "
        "question; repeatable",
    )
    group.add_argument(
        "--preset",
        type=parse_preset,
        metavar="NAME",
        help=f"a preset of options for this question: {', '.join(PRESETS)} "
        "(options given as flags still win)",
    )
    group.add_argument(
        "--format",
        type=parse_format,
        metavar="json|SCHEMA",
        help="make the model answer in JSON: `json`, or a JSON schema the answer must follow, "
        "inline ('{...}') or the path of a .json file; printed as indented JSON",
    )
    group.add_argument(
        "--schema",
        type=parse_schema_file,
        metavar="FILE",
        help="a JSON Schema file the answer must follow (implies --format json)",
    )


def answer_format(args: argparse.Namespace) -> str | dict[str, Any] | None:
    """What --format and --schema ask for together; a schema given twice is refused."""
    from bot.cli.context import UsageError

    if args.schema is None:
        return args.format  # type: ignore[no-any-return]
    if isinstance(args.format, dict):
        raise UsageError("give the schema once: with --schema FILE or with --format, not both")
    return args.schema  # type: ignore[no-any-return]


async def prepare_inputs(args: argparse.Namespace) -> PreparedInputs:
    """Images prepared and documents read, each in a thread; the first problem in the order
    given is raised (the core's AttachmentError)."""
    from bot.core.documents import read_document
    from bot.core.images import prepare_image

    images = await _in_threads(lambda f: prepare_image(f.data, f.name).data, args.images)
    documents = await _in_threads(lambda f: read_document(f.name, f.data), args.files)
    return PreparedInputs(images, documents)


async def _in_threads(work: Callable[[InputFile], T], files: Sequence[InputFile] | None) -> list[T]:
    outcomes = await asyncio.gather(
        *(asyncio.to_thread(work, f) for f in files or ()), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


def parse_preset(raw: str) -> str:
    from bot.core.errors import InvalidRequestError
    from bot.core.presets import get_preset

    try:
        return get_preset(raw).name
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(exc.user_message) from None


def parse_format(raw: str) -> str | dict[str, Any]:
    """`--format`: "json", an inline JSON schema object, or the path of a file holding one."""
    if raw == "json":
        return raw
    if raw.lstrip().startswith("{"):
        return _schema(raw, "the schema")
    text = _read(raw, MAX_SCHEMA_FILE_BYTES, 'expected "json", a JSON schema or a schema file; ')
    return _schema(_decoded(raw, text), raw)


def parse_schema_file(raw: str) -> dict[str, Any]:
    """`--schema`: the path of a JSON Schema file."""
    return _schema(_decoded(raw, _read(raw, MAX_SCHEMA_FILE_BYTES)), raw)


def _schema(text: str, where: str) -> dict[str, Any]:
    """A JSON schema, checked as the core will check it before asking."""
    from bot.core.errors import InvalidRequestError
    from bot.core.structured import check_format

    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise argparse.ArgumentTypeError(f"{where} is not a JSON object (a JSON schema is one)")
    try:
        check_format(schema)
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(f"{where}: {exc.user_message}") from None
    return schema


def _image_file(raw: str) -> InputFile:
    from bot.core.images import MAX_IMAGE_UPLOAD_BYTES

    return InputFile(Path(raw).name, _read(raw, MAX_IMAGE_UPLOAD_BYTES, what="images"))


def _document_file(raw: str) -> InputFile:
    from bot.core.documents import MAX_DOCUMENT_BYTES

    return InputFile(Path(raw).name, _read(raw, MAX_DOCUMENT_BYTES, what="files"))


def _read(raw: str, limit: int, context: str = "", *, what: str = "a schema file") -> bytes:
    """At most ``limit`` bytes of the file ``raw``; more is a usage error, like no file."""
    try:
        with open(raw, "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise argparse.ArgumentTypeError(f"{context}cannot read {raw}: {reason}") from None
    if len(data) > limit:
        most = f"{limit / BYTES_PER_MEGABYTE:g} MB"
        raise argparse.ArgumentTypeError(
            f"{raw} is larger than {most}; {what} can be at most {most}"
        )
    return data


def _decoded(raw: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte order mark, as some editors write, is fine
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{raw} is not UTF-8 text, so not a JSON schema") from None
