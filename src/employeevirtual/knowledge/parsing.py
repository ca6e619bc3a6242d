"""From an uploaded file to Markdown-ish text, with well-kept parsers: pypdf (PDF), python-docx
(DOCX), html2text (HTML); plain text and Markdown are read as UTF-8.

Everything here is pure and synchronous: the ingestion runs it in a child process with a time
and memory limit (``knowledge/ingestion.py``), so a PDF or zip bomb fails its own document and
nothing else.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

__all__ = [
    "CONTENT_TYPES",
    "DocumentRejected",
    "Limits",
    "ParsedDocument",
    "UnsupportedType",
    "inspect",
    "kind_of",
    "parse",
]

# extension -> (kind, the content type we serve the original back with)
CONTENT_TYPES: dict[str, tuple[str, str]] = {
    ".txt": ("text", "text/plain; charset=utf-8"),
    ".md": ("markdown", "text/markdown; charset=utf-8"),
    ".markdown": ("markdown", "text/markdown; charset=utf-8"),
    ".html": ("html", "text/html; charset=utf-8"),
    ".htm": ("html", "text/html; charset=utf-8"),
    ".pdf": ("pdf", "application/pdf"),
    ".docx": (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
}


class UnsupportedType(ValueError):
    """Not a type we index (415)."""


class DocumentRejected(ValueError):
    """The file breaks a limit or cannot be read; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_pages: int
    max_chars: int
    max_unzipped_bytes: int


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    text: str
    pages: int | None


def kind_of(filename: str) -> tuple[str, str]:
    """(kind, content type) from the file name's extension; UnsupportedType otherwise."""
    suffix = PurePath(filename).suffix.lower()
    if suffix not in CONTENT_TYPES:
        allowed = ", ".join(sorted({s for s in CONTENT_TYPES if s not in (".htm", ".markdown")}))
        raise UnsupportedType(
            f"files of type {suffix or '(no extension)'!r} cannot be indexed; send one of: "
            f"{allowed}"
        )
    return CONTENT_TYPES[suffix]


def _check_zip(data: bytes, limits: Limits) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DocumentRejected(
            "the .docx file is not a valid Office document (broken or truncated zip)"
        ) from None
    declared = sum(info.file_size for info in archive.infolist())
    if declared > limits.max_unzipped_bytes:
        raise DocumentRejected(
            f"the .docx file expands to {declared:,} bytes, more than the "
            f"{limits.max_unzipped_bytes:,} allowed (EV_KNOWLEDGE_MAX_UNZIPPED_BYTES): "
            "a zip bomb or an oversized document"
        )


def inspect(kind: str, data: bytes, limits: Limits) -> int | None:
    """Cheap checks at upload: a PDF's page count, a DOCX's declared unzipped size.
    DocumentRejected for a limit; unreadable files are left for ingestion to report."""
    if kind == "docx":
        _check_zip(data, limits)
        return None
    if kind != "pdf":
        return None
    import pypdf

    try:
        pages = len(pypdf.PdfReader(io.BytesIO(data)).pages)
    except Exception:
        return None  # truncated or malformed: the ingestion fails it with the reason
    if pages > limits.max_pages:
        raise DocumentRejected(
            f"the PDF has {pages:,} pages; at most {limits.max_pages:,} are allowed "
            "(EV_KNOWLEDGE_MAX_PAGES)"
        )
    return pages


def _too_long(chars: int, limits: Limits) -> DocumentRejected:
    return DocumentRejected(
        f"the document's text is longer than {limits.max_chars:,} characters "
        f"(EV_KNOWLEDGE_MAX_CHARS; {chars:,} read so far): split it into smaller documents"
    )


def _pdf(data: bytes, limits: Limits) -> ParsedDocument:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        count = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DocumentRejected(f"the PDF cannot be read (damaged or truncated): {exc}") from None
    if count > limits.max_pages:
        raise DocumentRejected(
            f"the PDF has {count:,} pages; at most {limits.max_pages:,} are allowed "
            "(EV_KNOWLEDGE_MAX_PAGES)"
        )
    parts: list[str] = []
    total = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            raise DocumentRejected(f"page {number} of the PDF cannot be read: {exc}") from None
        total += len(text)
        if total > limits.max_chars:
            raise _too_long(total, limits)
        parts.append(text.strip())
    return ParsedDocument("\n\n".join(p for p in parts if p), count)


def _docx(data: bytes, limits: Limits) -> ParsedDocument:
    _check_zip(data, limits)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DocumentRejected(f"the .docx file cannot be read: {exc}") from None
    lines: list[str] = []
    total = 0
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style == "Title":
            text = f"# {text}"
        elif style.startswith("Heading ") and style[8:].isdigit():
            text = "#" * min(int(style[8:]), 6) + " " + text
        elif style.startswith("List"):
            text = f"- {text}"
        lines.append(text)
        total += len(text)
        if total > limits.max_chars:
            raise _too_long(total, limits)
    for table in document.tables:
        for row in table.rows:
            cells = " | ".join(cell.text.strip() for cell in row.cells)
            lines.append(cells)
            total += len(cells)
            if total > limits.max_chars:
                raise _too_long(total, limits)
    return ParsedDocument("\n\n".join(lines), None)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentRejected("the file is binary, not text (it holds NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _html(data: bytes) -> str:
    import html2text

    converter = html2text.HTML2Text()
    converter.ignore_images = True
    converter.ignore_links = True
    converter.body_width = 0  # no hard wrapping: the chunker decides lines
    return str(converter.handle(_decode(data)))


def parse(kind: str, data: bytes, limits: Limits) -> ParsedDocument:
    """DocumentRejected with a readable reason for anything that breaks a limit or cannot be
    read."""
    if kind == "pdf":
        parsed = _pdf(data, limits)
    elif kind == "docx":
        parsed = _docx(data, limits)
    elif kind == "html":
        parsed = ParsedDocument(_html(data), None)
    else:
        parsed = ParsedDocument(_decode(data), None)
    if len(parsed.text) > limits.max_chars:
        raise _too_long(len(parsed.text), limits)
    if not parsed.text.strip():
        raise DocumentRejected("no text could be extracted (an empty or image-only document)")
    return parsed
