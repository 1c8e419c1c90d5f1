"""The text of a file attached to a question (or to /summarize), and how it is quoted.

What a file is comes from its bytes: a PDF by its header, anything else must decode as text
(``bot.core.text_decoding``). The name only chooses how text is labelled (Markdown, code,
CSV, JSON) and the fence language it is quoted with. A file too long to use whole is refused
rather than cut: an answer from half a file, presented as an answer about the file, misleads.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from pypdf import PdfReader

from bot.core.errors import AttachmentError
from bot.core.text_decoding import NotTextError, decode_text

log = logging.getLogger(__name__)

# Generous for text (a 10 MB text file is far over the character limit anyway) and for the
# PDFs people attach to questions, whose bytes are mostly fonts and pictures.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
# Half the core's MAX_INPUT_CHARS (400,000), leaving room for the question, history and other
# files; about 50,000 tokens, already more than most local models' context windows.
MAX_DOCUMENT_CHARS = 200_000
# No encoding we decode takes more than 4 bytes a character (UTF-8, UTF-16 pairs, UTF-32,
# GB18030), plus a byte order mark: past this, the text is too long without decoding it.
BYTES_PER_CHAR = 4
# Beyond this, a PDF's text is nearly always over MAX_DOCUMENT_CHARS, and extracting it
# would take many seconds first.
MAX_PDF_PAGES = 500
# Where Acrobat looks for the header: some generators put a few bytes before it.
PDF_HEADER_WINDOW = 1024
ACCEPTED_KINDS = "text, Markdown, source code, CSV, JSON or PDF"

MARKDOWN_EXTENSIONS = frozenset({"md", "markdown", "mdown", "mkd"})
TABLE_EXTENSIONS = {"csv": "csv", "tsv": "tsv"}
# Extension -> fence language (names GitHub and the models' training data know).
_SAME_NAMED = (
    "py js ts jsx tsx go rs java kt c cpp cs rb php sh bash zsh sql html css scss less yaml "
    "toml ini xml swift scala lua dart vue svelte proto graphql r diff tex"
)
CODE_LANGUAGES = {ext: ext for ext in _SAME_NAMED.split()} | {
    "pyi": "py", "mjs": "js", "cjs": "js", "h": "c", "hpp": "cpp", "hh": "cpp", "cc": "cpp",
    "cxx": "cpp", "kts": "kt", "pl": "perl", "ex": "elixir", "exs": "elixir", "hs": "haskell",
    "jl": "julia", "ps1": "powershell", "bat": "bat", "cmd": "bat", "htm": "html", "yml": "yaml",
    "cfg": "ini", "conf": "ini", "svg": "xml", "tf": "hcl", "gradle": "groovy", "patch": "diff",
    "jsonl": "json", "ndjson": "json", "ipynb": "json",
}  # fmt: skip
CODE_FILENAMES = {"dockerfile": "dockerfile", "makefile": "makefile", "cmakelists.txt": "cmake"}
# When the name says nothing (no or an unknown extension), the uploader's content type may.
CONTENT_TYPE_KINDS = {
    "text/markdown": ("markdown", "md"),
    "text/csv": ("csv", "csv"),
    "text/tab-separated-values": ("csv", "tsv"),
    "application/json": ("json", "json"),
}
# Binary files with a name, to say what was attached instead of "not a text file".
_SIGNATURES = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"RIFF", "a WebP image or other RIFF media"),  # WAV and AVI are RIFF too
    (4, b"ftyp", "a video or HEIC photo"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"PK\x03\x04", "a ZIP archive or an Office document"),  # docx, xlsx, odt, epub too
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Office document"),  # .doc, .xls, .ppt
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\x7fELF", "a program"),
)
_BACKTICKS = re.compile("`+")


@dataclass(frozen=True, slots=True)
class Document:
    """A file's text. ``kind`` is "text", "markdown", "code", "csv", "json" or "pdf";
    ``language`` labels its code fence ("" for none). For a PDF, ``pages`` holds each page's
    text (page 1 first) and ``text`` joins them under "[Page N]" lines; else it is empty."""

    filename: str
    kind: str
    language: str
    text: str
    pages: tuple[str, ...] = ()
    characters: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "characters", len(self.text))


def read_document(
    filename: str,
    data: bytes,
    content_type: str | None = None,
    *,
    max_chars: int = MAX_DOCUMENT_CHARS,
) -> Document:
    """The text of an uploaded file, or an AttachmentError saying why it cannot be used.

    ``max_chars``: the most text accepted (a question's file; a summary reads more, in parts).
    CPU-bound (encoding detection, PDF parsing): call it with ``asyncio.to_thread``.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise AttachmentError(
            filename,
            AttachmentError.TOO_LARGE,
            f"`{filename}` is {_megabytes(len(data))}; files can be at most "
            f"{_megabytes(MAX_DOCUMENT_BYTES)}.",
        )
    if _is_pdf(filename, data):
        pages = _pdf_pages(filename, data, max_chars)
        text = "\n\n".join(f"[Page {n}]\n{page}" for n, page in enumerate(pages, 1))
        _check_length(filename, len(text), max_chars)
        return Document(filename, "pdf", "", text, pages)
    for offset, magic, what in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            raise _unsupported(filename, f"`{filename}` is {what}, not a document.")
    if len(data) > BYTES_PER_CHAR * max_chars + BYTES_PER_CHAR:
        raise _too_long(
            filename, f"{_megabytes(len(data))} of text; the limit is {max_chars:,} characters"
        )
    try:
        text = decode_text(data, filename)
    except NotTextError as exc:
        raise _unsupported(filename, f"`{filename}` is not a text file.") from exc
    if not text.strip():
        raise AttachmentError(filename, AttachmentError.UNREADABLE, f"`{filename}` is empty.")
    _check_length(filename, len(text), max_chars)
    kind, language = _kind_of(filename, content_type)
    if kind == "json" and not _parses_as_json(text):
        # Still quoted, as plain text: "why does this not parse?" is a fair question, but a
        # "json" document promises later features JSON they can load.
        log.debug("%s is named as JSON but does not parse; read as text", filename)
        kind, language = "text", ""
    return Document(filename, kind, language, text)


def quote_document(doc: Document) -> str:
    """The file as it goes into a question: its name, then its text in a code fence.

    The fence is longer than any run of backticks in the text, so a Markdown file's own code
    blocks cannot close it.
    """
    longest = max((len(run) for run in _BACKTICKS.findall(doc.text)), default=0)
    fence = "`" * max(3, longest + 1)
    name = doc.filename.replace("`", "'")  # a backtick would end the inline code early
    about = ""
    if doc.kind == "pdf":
        count = len(doc.pages)
        about = f" (PDF, {count} page{'s' if count != 1 else ''})"
    body = doc.text if doc.text.endswith("\n") else doc.text + "\n"
    return f"File `{name}`{about}:\n{fence}{doc.language}\n{body}{fence}"


def question_with_documents(prompt: str, docs: Sequence[Document]) -> str:
    """The question with the quoted files before it (in the order given): a model reads the
    material first, then what to do with it."""
    if not docs:
        return prompt
    return "\n\n".join([*(quote_document(doc) for doc in docs), prompt])


def _is_pdf(filename: str, data: bytes) -> bool:
    if data.startswith(b"%PDF-"):
        return True
    named = PurePath(filename).suffix.lower() == ".pdf"
    return named and b"%PDF-" in data[:PDF_HEADER_WINDOW]


def _pdf_pages(filename: str, data: bytes, max_chars: int) -> tuple[str, ...]:
    """Each page's text; refuses encrypted, damaged, overlong or text-less PDFs."""
    # Without its end marker the file was cut short. pypdf is lenient with damaged files (it
    # can rebuild a lost cross-reference table), how lenient varies by version, and answering
    # from whatever pages it recovers as if they were the document would mislead.
    if b"%%EOF" not in data:
        raise _unreadable_pdf(filename)
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises many types on damaged files, not only its own
        raise _unreadable_pdf(filename) from exc
    # Many PDFs are encrypted with an empty password only to restrict printing or copying.
    if encrypted and not _decrypts_without_password(reader):
        raise AttachmentError(
            filename,
            AttachmentError.UNREADABLE,
            f"`{filename}` is protected by a password, so its text cannot be read.",
        )
    pages: list[str] = []
    total = 0
    try:
        count = len(reader.pages)
        if count > MAX_PDF_PAGES:
            raise _too_long(filename, f"{count:,} pages; the limit is {MAX_PDF_PAGES:,}")
        # pypdf bounds each stream's decompressed size itself (75 MB), against zip bombs.
        for page in reader.pages:
            text = page.extract_text().replace("\x00", "").strip()
            total += len(text)
            _check_length(filename, total, max_chars)  # stop early, not after a whole book
            pages.append(text)
    except AttachmentError:
        raise
    except Exception as exc:
        raise _unreadable_pdf(filename) from exc
    if not any(pages):
        raise AttachmentError(
            filename,
            AttachmentError.UNREADABLE,
            f"`{filename}` has no text that can be extracted; it may be a scan "
            "(pictures of pages).",
        )
    return tuple(pages)


def _decrypts_without_password(reader: PdfReader) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # an encryption pypdf cannot handle is as closed to us as a password
        log.debug("could not decrypt a PDF with the empty password", exc_info=True)
        return False


def _kind_of(filename: str, content_type: str | None) -> tuple[str, str]:
    path = PurePath(filename.lower())
    extension = path.suffix.removeprefix(".")
    if extension in MARKDOWN_EXTENSIONS:
        return "markdown", "md"
    if extension in TABLE_EXTENSIONS:
        return "csv", TABLE_EXTENSIONS[extension]
    if extension == "json":
        return "json", "json"
    language = CODE_LANGUAGES.get(extension) or CODE_FILENAMES.get(path.name)
    if language:
        return "code", language
    if content_type:
        essence = content_type.split(";", 1)[0].strip().lower()
        if essence in CONTENT_TYPE_KINDS:
            return CONTENT_TYPE_KINDS[essence]
    return "text", ""


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # deep nesting exhausts the parser's recursion
        return False
    return True


def _check_length(filename: str, characters: int, max_chars: int) -> None:
    if characters > max_chars:
        size = f"{characters:,} characters; the limit is {max_chars:,}"
        raise _too_long(filename, size)


def _too_long(filename: str, size: str) -> AttachmentError:
    return AttachmentError(
        filename,
        AttachmentError.TOO_LONG,
        f"`{filename}` is too long to use in one question ({size}).",
    )


def _unsupported(filename: str, sentence: str) -> AttachmentError:
    return AttachmentError(
        filename,
        AttachmentError.UNSUPPORTED,
        f"{sentence} Files can be {ACCEPTED_KINDS}.",
    )


def _unreadable_pdf(filename: str) -> AttachmentError:
    return AttachmentError(
        filename,
        AttachmentError.UNREADABLE,
        f"`{filename}` could not be read as a PDF; it may be damaged or incomplete.",
    )


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"
