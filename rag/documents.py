"""Load a knowledge base: find the files under some paths and read each into `Document`s.

Supported: plain text (.txt .text .rst .log), Markdown (.md .markdown), HTML (.html .htm .xhtml), PDF (one
document per page), Word (.docx), FAQ records (.json .jsonl .csv). Text encodings are detected (UTF-8 with
or without BOM, UTF-16 with BOM, legacy code pages such as GBK or cp1252); line endings are normalised.

A file that cannot be read raises `LoadError` with a reason a user can act on; ingestion records it as
skipped and carries on. This module does no chunking or embedding.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import LoadError
from .text import CJK_WIDE_CHAR
from .types import Document

# Bumped whenever loading or chunking changes what a file turns into: indexes built by an older version are
# then re-chunked on the next `rag index`, even though their files did not change.
PIPELINE_VERSION = 2

TEXT_SUFFIXES = {".txt", ".text", ".rst", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
RECORD_SUFFIXES = {".json", ".jsonl", ".csv"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | {".pdf", ".docx"}
MAX_FILE_BYTES = 200 * 1024 * 1024  # larger files are nearly always data dumps, not documents
IGNORED_DIRS = {"__pycache__", "node_modules"}

QUESTION_KEYS = ("question", "q", "query", "title", "prompt", "instruction")
ANSWER_KEYS = ("answer", "a", "response", "text", "content", "body", "output")


@dataclass(frozen=True)
class SourceFile:
    """A file found under the paths to index: `path` on disk and `source`, the name the index uses."""

    path: Path
    source: str


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


def source_name(path: Path, cwd: Path | None = None) -> str:
    """The name an index gives a file: relative to the working directory when inside it, else absolute.

    >>> source_name(Path("/srv/kb/a.md"), Path("/srv"))
    'kb/a.md'
    >>> source_name(Path("/data/a.md"), Path("/srv"))
    '/data/a.md'
    """
    cwd = cwd or Path.cwd()
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def discover(paths: Iterable[str | os.PathLike]) -> tuple[list[SourceFile], list[Skipped]]:
    """Every file under `paths` (files or folders, walked recursively in sorted order).

    Hidden files and folders (dot names), editor lock files and `__pycache__`/`node_modules` are passed over
    silently; files of an unsupported type are returned as skipped with the reason. A path that does not
    exist raises `LoadError`.
    """
    cwd = Path.cwd().resolve()
    found: dict[Path, SourceFile] = {}
    skipped: list[Skipped] = []
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            raise LoadError(f"path {raw} does not exist; give a file or a folder of documents")
        root = root.resolve()
        if root.is_file():
            candidates: Iterable[Path] = [root]
        else:
            candidates = _walk(root)
        for path in candidates:
            if path in found:
                continue
            src = source_name(path, cwd)
            suffix = path.suffix.lower()
            if suffix not in SUPPORTED_SUFFIXES:
                kind = f"'{suffix}'" if suffix else "without an extension"
                skipped.append(
                    Skipped(src, f"unsupported file type {kind}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
                )
                continue
            found[path] = SourceFile(path, src)
    return list(found.values()), skipped


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS)
        for name in sorted(filenames):
            if name.startswith((".", "~$")):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                yield path


def load_file(path: Path, source: str | None = None) -> list[Document]:
    """Read one file into documents. Raises `LoadError` saying why it cannot be used."""
    source = source or path.as_posix()
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    if size == 0:
        raise LoadError("empty file")
    if size > MAX_FILE_BYTES:
        raise LoadError(f"file is {size // 2**20} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit; split it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or exc}") from exc
    if suffix == ".pdf":
        docs = _load_pdf(data, source)
    elif suffix == ".docx":
        docs = _load_docx(data, source)
    elif suffix in HTML_SUFFIXES:
        docs = sections_from_markdown(html_to_markdown(data), source)
    elif suffix in MARKDOWN_SUFFIXES:
        docs = sections_from_markdown(decode_text(data), source)
    elif suffix in RECORD_SUFFIXES:
        docs = _load_records(data, source, suffix)
    elif suffix in TEXT_SUFFIXES:
        docs = [Document(text=decode_text(data), source=source)]
    else:
        raise LoadError(f"unsupported file type '{suffix}'")
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise LoadError("no text found in the file")
    return docs


# --------------------------------------------------------------------------------------------- decoding


def decode_text(data: bytes) -> str:
    """Bytes to text: BOMs honoured, UTF-8 tried first, else the encoding detected by charset-normalizer.

    Line endings become "\\n". Binary data (NUL bytes, mostly control characters) raises `LoadError`.

    >>> decode_text(codecs.BOM_UTF8 + "tea\\r\\nok".encode())
    'tea\\nok'
    >>> decode_text("路由器".encode("gbk"))
    '路由器'
    """
    if not data.strip():
        raise LoadError("empty file")
    text: str | None = None
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise LoadError(
                    f"file starts with a {codec} byte-order mark but is not valid {codec}: {exc.reason}"
                ) from exc
            break
    if text is None:
        if b"\x00" in data[:8192]:
            raise LoadError("binary data, not text (NUL bytes); convert it to a text format first")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _detect(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _control_ratio(text) > 0.05:
        raise LoadError("binary data, not text (mostly control characters); convert it to a text format first")
    if not text.strip():
        raise LoadError("empty file (only white space)")
    return text


_LATIN_FAMILY = {"cp1250", "cp1252", "latin_1", "iso8859_2", "iso8859_15", "mac_latin2", "mac_roman", "cp1258"}
_TRADITIONAL = {"big5", "big5hkscs", "cp950"}


def _detect(data: bytes) -> str:
    """Decode non-UTF-8 bytes. Detection is unreliable on short texts, so Chinese and Western legacy
    encodings (the common cases for this project's users) are tried first and kept when plausible."""
    from charset_normalizer import from_bytes

    try:
        chinese = data.decode("gb18030")
    except UnicodeDecodeError:
        chinese = None
    if chinese is not None and _cjk_share(chinese) >= 0.9:
        if len(data) >= 256:  # long enough for detection to tell Traditional (Big5) from Simplified
            best = from_bytes(data).best()
            if best is not None and best.encoding in _TRADITIONAL:
                return str(best)
        return chinese
    matches = list(from_bytes(data))
    best = matches[0] if matches else None
    western = next((m for m in matches if m.encoding == "cp1252"), None)
    # detection often picks an exotic single-byte page for short Western texts; cp1252 is far more common
    if (
        best is None
        or best.encoding in _LATIN_FAMILY
        or (western is not None and best.coherence - western.coherence < 0.1)
    ):
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            if best is None:
                raise LoadError("binary data or an unknown text encoding; save the file as UTF-8") from None
    return str(best)


def _cjk_share(text: str) -> float:
    """Share of CJK ideographs and full-width punctuation among the non-ASCII characters."""
    wide = [ch for ch in text if ord(ch) > 127]
    if not wide:
        return 0.0
    return sum(1 for ch in wide if CJK_WIDE_CHAR.match(ch)) / len(wide)


_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    return len(_CONTROL.findall(sample)) / len(sample) if sample else 0.0


# --------------------------------------------------------------------------------------------- markdown


_HEADERS = [("#" * n, f"h{n}") for n in range(1, 7)]


def sections_from_markdown(text: str, source: str, page: int | None = None) -> list[Document]:
    """One document per Markdown section, carrying its heading path (headings outside code fences)."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    splitter = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)
    docs = []
    for part in splitter.split_text(text):
        body = "\n".join(line.rstrip() for line in part.page_content.split("\n")).strip()
        headings = tuple(part.metadata[f"h{n}"] for n in range(1, 7) if f"h{n}" in part.metadata)
        if body:
            docs.append(Document(text=body, source=source, page=page, headings=headings))
    return docs


# ------------------------------------------------------------------------------------------------- html

_INVISIBLE = [
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "object",
    "head",
    "nav",
]  # nav: menus, not content
_BLOCKS = [
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "nav",
    "blockquote",
    "pre",
    "table",
    "tr",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "address",
]


def html_to_markdown(data: bytes | str) -> str:
    """The visible text of an HTML page, with h1-h6 turned into Markdown headings and blocks into lines.

    Scripts, styles, templates and the <head> are dropped (the <title> becomes the top heading when the
    page has no <h1>). The encoding is taken from the page's declaration, else detected.
    """
    from bs4 import BeautifulSoup, NavigableString

    if isinstance(data, bytes):
        if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise LoadError("binary data, not HTML (NUL bytes)")
        if not data.strip():
            raise LoadError("empty file")
    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_INVISIBLE):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            label = " ".join(h.get_text(" ", strip=True).split())
            h.replace_with(NavigableString(f"\n\n{'#' * level} {label}\n\n" if label else "\n"))
    for li in soup.find_all("li"):
        li.insert_before(NavigableString("\n- "))
        li.insert_after(NavigableString("\n"))
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(NavigableString(" | "))
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before(NavigableString("\n\n"))
        tag.insert_after(NavigableString("\n\n"))
    for row in soup.find_all("tr"):
        row.insert_before(NavigableString("| "))  # a leading pipe keeps each row a line of its own
    text = soup.get_text("")
    text = _tidy(text)
    if _control_ratio(text) > 0.05:
        raise LoadError("binary data, not HTML (mostly control characters)")
    if title and not re.search(r"^# ", text, flags=re.M):
        text = f"# {title}\n\n{text}"
    return text


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    lines = [re.sub(r"(\s*\|\s*)+$", "", line) for line in lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -------------------------------------------------------------------------------------------------- pdf


def _load_pdf(data: bytes, source: str) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.lstrip().startswith(b"%PDF"):
        raise LoadError("not a PDF file (no %PDF header); check the file or its extension")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # pypdf raises several types for unsupported crypto
                raise LoadError(f"encrypted PDF that cannot be opened ({exc}); save a decrypted copy") from exc
            if not ok:
                raise LoadError("encrypted PDF: it needs a password; save a decrypted copy (e.g. qpdf --decrypt)")
        pages = list(reader.pages)
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AssertionError) as exc:
        raise LoadError(f"damaged or truncated PDF ({type(exc).__name__}: {exc})") from exc
    docs: list[Document] = []
    errors = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception:  # one bad page should not lose the rest of the document
            errors += 1
            continue
        text = _tidy(text)
        if text:
            docs.append(Document(text=text, source=source, page=number))
    if not docs:
        if errors:
            raise LoadError(f"damaged PDF: text extraction failed on all {errors} page(s)")
        raise LoadError("PDF has no extractable text (a scan?); run OCR on it first")
    return docs


# ------------------------------------------------------------------------------------------------- docx


def _load_docx(data: bytes, source: str) -> list[Document]:
    import zipfile

    from .errors import require

    docx = require("docx", "python-docx", "reading .docx files")
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"damaged .docx file ({type(exc).__name__}: {exc})") from exc
    lines = []
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        if match:
            lines.append(f"\n{'#' * min(int(match.group(1)), 6)} {text}\n")
        elif style == "Title":
            lines.append(f"\n# {text}\n")
        else:
            lines.append(text + "\n")
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells) + "\n")
    return sections_from_markdown("\n".join(lines), source)


# ---------------------------------------------------------------------------------------------- records


def _load_records(data: bytes, source: str, suffix: str) -> list[Document]:
    text = decode_text(data)
    if suffix == ".csv":
        records = _csv_records(text)
    elif suffix == ".jsonl":
        from .records import parse_jsonl

        records = parse_jsonl(text, "file", error=LoadError)
    else:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(f"not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from exc
        records = _json_records(payload)
    docs = []
    for number, record in enumerate(records, start=1):
        doc_text = _record_text(record)
        if doc_text is None:
            raise LoadError(
                f"record {number} has no question/answer (or title/text) fields; FAQ records look like "
                '{"question": "...", "answer": "..."}'
            )
        docs.append(Document(text=doc_text, source=source, meta={"record": number}))
    return docs


def _json_records(payload) -> list:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for value in payload.values():  # {"faqs": [...]} and similar wrappers
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return value
        if payload and all(isinstance(k, str) and isinstance(v, str) for k, v in payload.items()):
            return [{"question": k, "answer": v} for k, v in payload.items()]  # {"question": "answer"}
        return [payload]
    raise LoadError("JSON holds neither records nor an object; expected a list of FAQ records")


def _csv_records(text: str) -> list[dict]:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    if not rows:
        raise LoadError("CSV has a header but no rows")
    return rows


def _record_text(record) -> str | None:
    if isinstance(record, str):
        return record.strip() or None
    if not isinstance(record, dict):
        return None
    lowered = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
    question = next((lowered[k] for k in QUESTION_KEYS if _is_text(lowered.get(k))), None)
    answer = next((lowered[k] for k in ANSWER_KEYS if _is_text(lowered.get(k)) and lowered[k] is not question), None)
    if question is not None and answer is not None:
        return f"Q: {str(question).strip()}\nA: {str(answer).strip()}"
    if answer is not None:
        return str(answer).strip()
    # a generic table row: keep every column, named
    pairs = [f"{k}: {v}" for k, v in record.items() if k and _is_text(v)]
    return "\n".join(pairs) if len(pairs) >= 2 else None


def _is_text(value) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip() != ""
