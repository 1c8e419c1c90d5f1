"""Attached files become text labelled by kind (PDF page by page), or a clear refusal."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PageObject, PdfReader, PdfWriter

from bot.core import documents
from bot.core.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_CHARS,
    Document,
    question_with_documents,
    quote_document,
    read_document,
)
from bot.core.errors import AttachmentError
from bot.core.prompting import MAX_INPUT_CHARS


def make_pdf(*pages: str) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text=text)
    return bytes(pdf.output())


def encrypted(data: bytes, password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def refusal(filename: str, data: bytes, **limits: int) -> AttachmentError:
    with pytest.raises(AttachmentError) as caught:
        read_document(filename, data, **limits)
    assert caught.value.filename == filename
    assert f"`{filename}`" in caught.value.user_message
    return caught.value


def test_the_character_limit_leaves_room_in_a_request() -> None:
    assert MAX_DOCUMENT_CHARS < MAX_INPUT_CHARS


@pytest.mark.parametrize(
    ("filename", "content", "kind", "language"),
    [
        ("notes.txt", "Buy milk.\nCall Ana.\n", "text", ""),
        ("server.log", "12:00 started\n", "text", ""),
        ("README", "No extension at all.\n", "text", ""),
        ("guide.md", "# Title\n\nSome *emphasis*.\n", "markdown", "md"),
        ("main.py", "def main() -> None:\n    print('hi')\n", "code", "py"),
        ("App.tsx", "export const App = () => <div/>;\n", "code", "tsx"),
        ("lib.rs", "fn main() {}\n", "code", "rs"),
        ("util.h", "int f(void);\n", "code", "c"),
        ("config.yml", "key: value\n", "code", "yaml"),
        ("Dockerfile", "FROM python:3.12\n", "code", "dockerfile"),
        ("Query.SQL", "SELECT 1;\n", "code", "sql"),
        ("table.csv", "name,age\nAna,31\n", "csv", "csv"),
        ("table.tsv", "name\tage\nAna\t31\n", "csv", "tsv"),
        ("data.json", '{"a": [1, 2, {"b": null}]}', "json", "json"),
        ("broken.json", '{"a": [1, 2,', "text", ""),  # still readable, not promised as JSON
    ],
)
def test_each_text_kind_is_labelled_by_its_name(
    filename: str, content: str, kind: str, language: str
) -> None:
    doc = read_document(filename, content.encode())
    assert doc == Document(filename, kind, language, content)
    assert doc.characters == len(content)
    assert doc.pages == ()


@pytest.mark.parametrize(
    ("content_type", "kind", "language"),
    [
        ("text/markdown; charset=utf-8", "markdown", "md"),
        ("text/csv", "csv", "csv"),
        ("application/json", "json", "json"),
        ("text/plain", "text", ""),
        (None, "text", ""),
    ],
)
def test_the_content_type_labels_a_file_whose_name_says_nothing(
    content_type: str | None, kind: str, language: str
) -> None:
    doc = read_document("pasted", b'{"a": 1}', content_type)
    assert (doc.kind, doc.language) == (kind, language)
    assert read_document("x.py", b"print(1)\n", content_type).kind == "code"  # the name wins


def test_a_legacy_encoded_file_is_decoded() -> None:
    text = "Встреча в четверг: обсудили бюджет и сроки проекта.\n"
    assert read_document("заметки.txt", text.encode("cp1251")).text == text


def test_a_pdf_gives_each_pages_text() -> None:
    doc = read_document("report.pdf", make_pdf("First page: apples.", "Second page: bananas."))
    assert doc.kind == "pdf"
    assert doc.pages == ("First page: apples.", "Second page: bananas.")
    assert doc.text == "[Page 1]\nFirst page: apples.\n\n[Page 2]\nSecond page: bananas."
    assert doc.characters == len(doc.text)


def test_a_pdf_is_known_by_its_bytes_whatever_its_name() -> None:
    doc = read_document("download", make_pdf("Hello from a PDF."), "application/octet-stream")
    assert (doc.kind, doc.pages) == ("pdf", ("Hello from a PDF.",))


def test_a_pdf_named_so_may_have_bytes_before_its_header() -> None:
    doc = read_document("mail.pdf", b"\r\n\r\n" + make_pdf("After a mail gateway."))
    assert doc.pages == ("After a mail gateway.",)


def test_a_blank_page_keeps_its_place() -> None:
    doc = read_document("r.pdf", make_pdf("One.", "", "Three."))
    assert doc.pages == ("One.", "", "Three.")
    assert "[Page 3]\nThree." in doc.text


def test_a_pdf_encrypted_with_an_empty_password_is_read() -> None:
    data = encrypted(make_pdf("Copying restricted, reading allowed."), "")
    assert read_document("r.pdf", data).pages == ("Copying restricted, reading allowed.",)


def test_a_password_protected_pdf_is_unreadable() -> None:
    error = refusal("secret.pdf", encrypted(make_pdf("Top secret."), "hunter2"))
    assert error.reason == AttachmentError.UNREADABLE
    assert "password" in error.user_message


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.99])
def test_a_truncated_pdf_is_unreadable(fraction: float) -> None:
    data = make_pdf("Page one has text.", "Page two has text.")
    error = refusal("cut.pdf", data[: int(len(data) * fraction)])
    assert error.reason == AttachmentError.UNREADABLE
    assert "damaged or incomplete" in error.user_message


def test_a_pdf_without_text_is_unreadable_and_says_it_may_be_a_scan() -> None:
    error = refusal("scan.pdf", make_pdf("", ""))
    assert error.reason == AttachmentError.UNREADABLE
    assert "scan" in error.user_message


def png_and_docx() -> tuple[bytes, bytes]:
    image, document = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, "PNG")
    with zipfile.ZipFile(document, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return image.getvalue(), document.getvalue()


PNG, DOCX = png_and_docx()


@pytest.mark.parametrize(
    ("filename", "data", "named"),
    [
        ("photo.txt", PNG, "a PNG image"),
        ("report.docx", DOCX, "a ZIP archive or an Office document"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "an Office document"),
        ("sticker.txt", b"RIFF\x10\x00\x00\x00WEBPVP8 ", "a WebP image"),
        ("blob.bin", bytes(range(256)) * 8, "not a text file"),
        ("nul.txt", b"text with a\x00zero byte in it and more" * 4, "not a text file"),
    ],
)
def test_binary_files_are_unsupported_naming_what_is_accepted(
    filename: str, data: bytes, named: str
) -> None:
    error = refusal(filename, data)
    assert error.reason == AttachmentError.UNSUPPORTED
    assert named in error.user_message
    assert "text, Markdown, source code, CSV, JSON or PDF" in error.user_message


@pytest.mark.parametrize("data", [b"", b"  \n\t\n"])
def test_an_empty_file_is_refused(data: bytes) -> None:
    assert refusal("empty.txt", data).reason == AttachmentError.UNREADABLE


def test_an_oversized_file_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(*_args: object) -> str:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(documents, "decode_text", no_parsing)
    monkeypatch.setattr(documents, "PdfReader", no_parsing)
    for data in (b"a" * (MAX_DOCUMENT_BYTES + 1), make_pdf("x") + bytes(MAX_DOCUMENT_BYTES)):
        error = refusal("big.pdf", data)
        assert error.reason == AttachmentError.TOO_LARGE
        assert "10.0 MB" in error.user_message


def test_text_at_the_limit_is_read_and_one_more_character_is_too_long() -> None:
    assert read_document("a.txt", b"a" * MAX_DOCUMENT_CHARS).characters == MAX_DOCUMENT_CHARS
    error = refusal("a.txt", b"a" * (MAX_DOCUMENT_CHARS + 1))
    assert error.reason == AttachmentError.TOO_LONG
    assert f"{MAX_DOCUMENT_CHARS + 1:,} characters" in error.user_message


def test_far_too_much_text_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*_args: object) -> str:
        raise AssertionError("the file was decoded")

    monkeypatch.setattr(documents, "decode_text", no_decoding)
    error = refusal("dump.txt", b"a" * (4 * MAX_DOCUMENT_CHARS + 5))
    assert error.reason == AttachmentError.TOO_LONG


def test_the_page_lines_count_towards_the_limit() -> None:
    pages = ("Twenty-eight characters: ok.", "And twenty-eight more of it.")
    limit = sum(map(len, pages)) + 4
    assert refusal("long.pdf", make_pdf(*pages), max_chars=limit).reason == AttachmentError.TOO_LONG


def test_a_long_pdf_is_not_extracted_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    extracted: list[str] = []
    original = PageObject.extract_text

    def counting(page: PageObject, *args: Any, **kwargs: Any) -> str:
        extracted.append(text := original(page, *args, **kwargs))
        return text

    monkeypatch.setattr(PageObject, "extract_text", counting)
    data = make_pdf(*["Forty characters of text on each page ok."] * 10)
    assert refusal("long.pdf", data, max_chars=60).reason == AttachmentError.TOO_LONG
    assert len(extracted) == 2


def test_a_pdf_with_too_many_pages_is_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_PDF_PAGES", 2)
    error = refusal("book.pdf", make_pdf("1", "2", "3"))
    assert error.reason == AttachmentError.TOO_LONG
    assert "3 pages" in error.user_message


def test_a_fence_inside_the_file_cannot_close_the_quote() -> None:
    text = "# Usage\n\n```py\nrun()\n```\n\nAnd a longer one: `````\n"
    quoted = quote_document(read_document("guide.md", text.encode()))
    assert quoted == f"File `guide.md`:\n``````md\n{text}``````"


def test_a_plain_file_gets_a_three_backtick_fence_and_a_final_newline() -> None:
    quoted = quote_document(Document("a`b.txt", "text", "", "no newline at the end"))
    assert quoted == "File `a'b.txt`:\n```\nno newline at the end\n```"


def test_a_quoted_pdf_says_how_many_pages_it_has() -> None:
    doc = read_document("r.pdf", make_pdf("One.", "Two."))
    assert quote_document(doc).startswith("File `r.pdf` (PDF, 2 pages):\n```\n[Page 1]\nOne.")


def test_the_question_comes_after_the_files() -> None:
    docs = [Document("a.txt", "text", "", "alpha"), Document("b.py", "code", "py", "beta\n")]
    assert question_with_documents("Compare them.", docs) == (
        "File `a.txt`:\n```\nalpha\n```\n\nFile `b.py`:\n```py\nbeta\n```\n\nCompare them."
    )
    assert question_with_documents("Just this.", []) == "Just this."


def test_json_too_deep_to_parse_is_read_as_text() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert read_document("deep.json", deep.encode()).kind == "text"


def damaged(data: bytes, positions: list[int], values: bytes) -> bytes:
    out = bytearray(data)
    for position, value in zip(positions, values, strict=False):
        out[position % len(out)] = value
    return bytes(out)


_PDF = make_pdf("Fuzzing page one.", "Fuzzing page two.")
filenames = st.text(max_size=40) | st.sampled_from(["a.pdf", "a.json", "a.md", "a.py", "a"])
contents = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=512).map(lambda rest: b"%PDF-1.4\n" + rest + b"\n%%EOF"),
    st.builds(damaged, st.just(_PDF), st.lists(st.integers(0, len(_PDF))), st.binary()),
    st.text(max_size=500).map(str.encode),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filenames, contents, st.none() | st.sampled_from(["application/json", "text/csv"]))
def test_arbitrary_files_give_a_document_or_an_attachment_error(
    filename: str, data: bytes, content_type: str | None
) -> None:
    try:
        doc = read_document(filename, data, content_type)
    except AttachmentError as error:
        assert error.reason in {"too_large", "unsupported", "unreadable", "too_long"}
        return
    assert doc.text.strip()
    assert doc.characters <= MAX_DOCUMENT_CHARS
    assert doc.kind in {"text", "markdown", "code", "csv", "json", "pdf"}
