"""Load a knowledge base: find the files under some paths and read each into `Document`s.

Supported: plain text (.txt .text .rst .log), Markdown (.md .markdown), HTML (.html .htm .xhtml), PDF (one
document per page), Word (.docx), FAQ records (.json .jsonl .csv). Text encodings are detected (UTF-8 with
or without BOM, UTF-16 with BOM, legacy code pages such as GBK or cp1252); line endings are normalised.

A file that cannot be read raises `LoadError` with a reason a user can act on; ingestion records it as
skipped and carries on. This module finds files, decodes text and hands each format to its parser in
`rag.formats`; it does no chunking or embedding.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import LoadError
from .formats import aligned_tables, html_to_markdown, load_docx, load_pdf, load_records, markdown_sections
from .text import CJK_WIDE_CHAR, control_ratio, unencodable
from .types import Document

# Bumped whenever loading or chunking changes what a file turns into: indexes built by an older version are
# then re-chunked on the next `rag index`, even though their files did not change.
# 3: a table row of a record file is headed by the file's name; 4: a .docx table stays in place as a Markdown
# table, a table cut across chunks keeps its header in each, and plain text laid out in columns is a table; 5: a
# PDF's running headers and footers dropped, a sentence cut by a page break made whole on its first page; 6:
# Markdown's bold markers dropped; 7: an HTML table cell on its row's line (<br> and <p> inside it too), a
# definition list's term before its definition ("R-17: Firmware image is damaged."); 8: bold markers dropped in Chinese
# text too ("以及**机场线**（"); 9: no column of a record dropped (a column "a" without "q", a text record's other
# fields, CSV cells past the header), UTF-8 with a few stray bytes read as UTF-8; 10: a titled text record
# ({"title", "text"}) is its text under its title as a heading, not "Q: title / A: text"; an FAQ CSV answer with
# an unquoted comma kept whole
PIPELINE_VERSION = 10

TEXT_SUFFIXES = {".txt", ".text", ".rst", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
RECORD_SUFFIXES = {".json", ".jsonl", ".csv"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | {".pdf", ".docx"}
MAX_FILE_BYTES = 200 * 1024 * 1024  # larger files are nearly always data dumps, not documents
IGNORED_DIRS = {"__pycache__", "node_modules"}


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

    Hidden files and folders (dot names), editor lock files, `__pycache__`/`node_modules` and index folders
    are passed over silently; files of an unsupported type, with a name that is not UTF-8, or that cannot be
    looked at are returned as skipped with the reason. A path that does not exist raises `LoadError`.
    """
    cwd = Path.cwd().resolve()
    found: dict[Path, SourceFile] = {}
    skipped: list[Skipped] = []
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            if root.is_symlink():
                raise LoadError(
                    f"path {raw} is a symbolic link to nothing (its target is missing, or it links back to itself)"
                )
            raise LoadError(f"path {raw} does not exist; give a file or a folder of documents")
        root = root.resolve()
        if root.is_file():
            candidates: Iterable[Path] = [root]
        else:
            candidates = _walk(root, cwd, skipped)
        for path in candidates:
            if path in found:
                continue
            src = source_name(path, cwd)
            if unencodable(src):  # bytes the file system holds that no text can name: the index is JSON
                skipped.append(Skipped(_printable(src), "the file name is not valid UTF-8; rename the file"))
                continue
            suffix = path.suffix.lower()
            if suffix not in SUPPORTED_SUFFIXES:
                kind = f"'{suffix}'" if suffix else "without an extension"
                skipped.append(
                    Skipped(src, f"unsupported file type {kind}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
                )
                continue
            found[path] = SourceFile(path, src)
    return list(found.values()), skipped


def _walk(root: Path, cwd: Path, skipped: list[Skipped]) -> Iterator[Path]:
    """The files under `root`; what cannot be read at all (a link to nothing, a file the walk may not look
    at) goes to `skipped`. An index folder inside the knowledge base (`rag index kb --index kb/idx`) is not
    walked: an index never indexes itself."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS and not is_index_folder(here / d)
        )
        for d in dirnames:  # the walk does not follow them (a link may lead back up): say so
            if (here / d).is_symlink():
                reason = "a symbolic link to a folder, not followed; index the folder it links to by its own path"
                skipped.append(Skipped(_printable(source_name(here / d, cwd)), reason))
        for name in sorted(filenames):
            if name.startswith((".", "~$")):
                continue
            path = here / name
            try:
                if path.is_file():
                    yield path
                elif path.is_symlink():
                    reason = "a symbolic link to nothing (its target is missing, or links back to itself)"
                    skipped.append(Skipped(_printable(source_name(path, cwd)), reason))
            except OSError as exc:  # e.g. a link into a folder this user may not look into
                skipped.append(Skipped(_printable(source_name(path, cwd)), f"cannot be read: {exc.strerror or exc}"))


def _printable(name: str) -> str:
    """A file name as text that can be printed and stored: bytes that are not UTF-8 shown as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_index_folder(folder: Path) -> bool:
    """Whether `folder` holds a rag index (a manifest and a generation folder, see `rag.store`)."""
    try:
        return (folder / "manifest.json").is_file() and any(folder.glob("gen-*"))
    except OSError:
        return False


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
        docs = load_pdf(data, source)
    elif suffix == ".docx":
        docs = load_docx(data, source)
    elif suffix in HTML_SUFFIXES:
        docs = markdown_sections(html_to_markdown(data), source)
    elif suffix in MARKDOWN_SUFFIXES:
        docs = markdown_sections(decode_text(data), source)
    elif suffix in RECORD_SUFFIXES:
        docs = load_records(decode_text(data), source, suffix)
    elif suffix in TEXT_SUFFIXES:
        text = decode_text(data)
        # columns of prose text are a table; a log's columns (time, level, message) have no header row
        docs = [Document(text=aligned_tables(text) if suffix in {".txt", ".text"} else text, source=source)]
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
            text = _mostly_utf8(data) or _detect(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if control_ratio(text) > 0.05:
        raise LoadError("binary data, not text (mostly control characters); convert it to a text format first")
    if not text.strip():
        raise LoadError("empty file (only white space)")
    return text


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few stray bytes (a bad copy-paste, a file cut mid-character), decoded with U+FFFD for
    them, rather than read whole in a legacy encoding or refused: None unless its valid non-ASCII characters
    far outnumber the bad bytes. Text in a legacy encoding (GBK, cp1252) is almost never valid UTF-8 beyond
    a few accidental pairs, so it still goes to detection.

    >>> _mostly_utf8("Café, naïve résumé ".encode() + b"\\x81")
    'Café, naïve résumé �'
    >>> _mostly_utf8("Café".encode("cp1252")) is None
    True
    """
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    valid = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    return text if valid >= 4 * bad else None


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
