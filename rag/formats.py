"""One parser per file format, each turning a file's content into `Document`s with their heading paths.

Markdown (sections by heading), HTML (visible text as Markdown), PDF (one document per page), Word (.docx,
headings kept) and FAQ records (JSON, JSON Lines, CSV). Text formats arrive decoded (`rag.documents`
decodes them); binary formats arrive as bytes. A content problem raises `LoadError` saying what is wrong
with the file and how to fix it.

What this module does not do: find or decode files (`rag.documents`), or chunk (`rag.chunks`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from dataclasses import replace
from pathlib import PurePosixPath

from .errors import LoadError, PartlyLoaded
from .text import control_ratio
from .types import Document

QUESTION_KEYS = ("question", "q", "query", "title", "prompt", "instruction")
ANSWER_KEYS = ("answer", "a", "response", "text", "content", "body", "output")


# --------------------------------------------------------------------------------------------- markdown


_HEADERS = [("#" * n, f"h{n}") for n in range(1, 7)]


def markdown_sections(text: str, source: str, page: int | None = None) -> list[Document]:
    """One document per Markdown section, carrying its heading path (headings outside code fences)."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    splitter = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)
    docs = []
    for part in splitter.split_text(text):
        body = "\n".join(_unbold(line.rstrip()) for line in part.page_content.split("\n")).strip()
        headings = tuple(_unbold(part.metadata[f"h{n}"]) for n in range(1, 7) if f"h{n}" in part.metadata)
        if body:
            docs.append(Document(text=body, source=source, page=page, headings=headings))
    return docs


# Not next to a Latin letter or digit (`2**8`, `a**b` are code); Chinese has no spaces, so "以及**机场线**（" is bold.
_BOLD = re.compile(r"(?<![A-Za-z0-9_*])\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?![A-Za-z0-9_*])")


def _unbold(line: str) -> str:
    """`line` without Markdown's bold markers, as HTML's text has none: "**Where to catch the buses:**" is the
    label of the table under it, and an answer is quoted without asterisks. Not inside code (`2**8`).

    >>> _unbold("**When:** from 13 February"), _unbold("2**8 and 3**2"), _unbold("以及**机场线**（Airport Link）")
    ('When: from 13 February', '2**8 and 3**2', '以及机场线（Airport Link）')
    """
    return _BOLD.sub(r"\1", line) if "**" in line else line


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
    page has no <h1>). The encoding is taken from the page's declaration, else detected. The page is read in
    one walk, in time linear in its size however deeply it nests (editing the parsed tree in place is
    quadratic in its depth: 50,000 nested <div>s took three minutes).
    """
    from bs4 import BeautifulSoup

    if isinstance(data, bytes):
        if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise LoadError("binary data, not HTML (NUL bytes)")
        if not data.strip():
            raise LoadError("empty file")
    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    text = _tidy(_visible_text(soup))
    if control_ratio(text) > 0.05:
        raise LoadError("binary data, not HTML (mostly control characters)")
    if title and not re.search(r"^# ", text, flags=re.M):
        text = f"# {title}\n\n{text}"
    return text


_HEADINGS = {f"h{level}": level for level in range(1, 7)}


def _visible_text(root, label: bool = False) -> str:
    """The text of `root` without its invisible elements, laid out as Markdown: a heading on a line of its own
    with its level's hashes, a list item after "- ", a table row between pipes, a block between blank lines.
    `label`: the text of a heading, its strings stripped and joined by spaces."""
    from bs4 import CData, NavigableString, Tag

    out: list[str] = []
    stack: list = [root]  # elements to read, and (text, cell depth change) once an element's content is read
    cell = 0  # how many table cells the walk is inside: a cell's text stays on its row's line
    glued = False  # a definition follows its term on the term's line, even in a <p> of its own
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            cell += node[1]
            out.append(node[0])
        elif isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):  # not a comment, doctype or processing instruction
                text = node.strip() if label else str(node)
                out.append(" ".join(text.split()) if cell and text.strip() else " " if cell else text)
                glued = glued and not text.strip()
        elif not isinstance(node, Tag) or node.name in _INVISIBLE:
            continue
        elif label:
            stack.extend(reversed(node.contents))
        elif node.name == "br":
            out.append(" " if cell else "\n")
        elif node.name in _HEADINGS:
            words = " ".join(_visible_text(node, label=True).split())
            if cell:
                out.append(f" {words} ")
            else:
                out.append(f"\n\n{'#' * _HEADINGS[node.name]} {words}\n\n" if words else "\n")
        else:
            before, after, inside = "", "", 0
            if node.name == "li":
                before, after = "\n- ", "\n"
            elif node.name in ("td", "th"):
                after, inside = " | ", 1
            if node.name in _BLOCKS:
                before, after = "\n\n" + ("| " if node.name == "tr" else ""), "\n\n"  # a row's own line
            if node.name == "dt":  # a definition list's entry is an item, its term the label of its definition
                before, after = "\n- ", ": "
            elif node.name == "dd" and next((part for part in reversed(out) if part.strip()), "").endswith(": "):
                before, glued = "", True
            elif glued and node.name in _BLOCKS:
                before = ""  # a block before the definition's first words
            if cell:  # a paragraph, list or <br> inside a cell: the cell's text goes on, on the row's line
                before, after = " ", (" | " if inside else " ")
            out.append(before)
            cell += inside
            stack.append((after, -inside))
            stack.extend(reversed(node.contents))
    return " ".join(part for part in out if part) if label else "".join(out)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    lines = [re.sub(r"(\s*\|\s*)+$", "", line) for line in lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -------------------------------------------------------------------------------------------------- pdf


def load_pdf(data: bytes, source: str) -> list[Document]:
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
    return _sentences_across_pages(_without_running_lines(docs))


_OPEN_END = re.compile(r"[^.!?。！？:：;；)）\]\"”]\s*$")  # a page that stops mid-sentence
_CONTINUES = re.compile(r"^[a-z(]")  # ... and a next page that carries on with it ("these\nconditions should")
_FIRST_END = re.compile(r"[.!?。！？](?=\s|$)")
_CARRIED_MAX = 400  # characters: the rest of a sentence, not the next page's first paragraph


def _sentences_across_pages(pages: list[Document]) -> list[Document]:
    r"""`pages` with a sentence that a page break cut in two made whole on the page it starts on (so a page is
    still what it cites), when the next page carries on in lower case.

    >>> pages = [Document("Complaints about these", "f.pdf", page=1), Document("rules go to us. Next.", "f.pdf", page=2)]
    >>> [p.text for p in _sentences_across_pages(pages)]
    ['Complaints about these rules go to us.', 'Next.']
    """
    out = list(pages)
    for i in range(len(out) - 1):
        before, after = out[i], out[i + 1]
        if (
            after.page != (before.page or 0) + 1
            or not _OPEN_END.search(before.text)
            or not _CONTINUES.match(after.text)
        ):
            continue
        end = _FIRST_END.search(after.text, 0, _CARRIED_MAX)
        if end is None:
            continue
        rest = after.text[end.end() :].strip()
        if not rest:
            continue  # the whole next page: it stays where it is
        out[i] = replace(before, text=before.text.rstrip() + " " + " ".join(after.text[: end.end()].split()))
        out[i + 1] = replace(after, text=rest)
    return out


_EDGE_LINES = 3  # where a running header or footer sits: among the first or last lines of a page


def _without_running_lines(pages: list[Document]) -> list[Document]:
    r"""`pages` without their running headers and footers: a line among the first or last few of a page that,
    page numbers aside, recurs at the edge of most pages ("Kestrel Rail Ltd - KR-CoC v4.2 - page 3"). Left in,
    it lands mid-sentence wherever a page breaks and reads as part of the text.

    >>> texts = ["Fares\nBody.\nAcme Ltd - page 1", "Acme Ltd - page 2\nRefunds", "Delays\nAcme Ltd - page 3"]
    >>> [p.text for p in _without_running_lines([Document(t, "f.pdf", page=n) for n, t in enumerate(texts, 1)])]
    ['Fares\nBody.', 'Refunds', 'Delays']
    """
    if len(pages) < 2:
        return pages

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()))

    def edges(lines: list[str]) -> set[int]:
        return set(range(min(_EDGE_LINES, len(lines)))) | set(range(max(0, len(lines) - _EDGE_LINES), len(lines)))

    split = [page.text.split("\n") for page in pages]
    counts: dict[str, int] = {}
    for lines in split:
        for k in {key(lines[i]) for i in edges(lines) if lines[i].strip()}:
            counts[k] = counts.get(k, 0) + 1
    running = {k for k, n in counts.items() if n >= max(2, math.ceil(0.6 * len(pages)))}
    # a line that recurs on every page can still be all a page holds: never empty a page
    out = []
    for page, lines in zip(pages, split):
        kept = [line for i, line in enumerate(lines) if i not in edges(lines) or key(line) not in running]
        text = "\n".join(kept).strip()
        out.append(replace(page, text=text) if text else page)
    return out


# ------------------------------------------------------------------------------------------------- docx

MAX_UNPACKED_BYTES = 200 * 1024 * 1024  # what a .docx may unpack to; a Word file of text is a few MB


def load_docx(data: bytes, source: str) -> list[Document]:
    import zipfile

    from .errors import require

    docx = require("docx", "python-docx", "reading .docx files")
    try:
        # a .docx is a zip: what it unpacks to is read into memory, so a zip bomb (a few MB that unpack to
        # gigabytes) is refused before it is opened
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise LoadError(
                f".docx unpacks to {unpacked // 2**20} MiB, over the {MAX_UNPACKED_BYTES // 2**20} MiB limit "
                "(a zip bomb, or a document of mostly images); save its text as .txt or .md"
            )
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as exc:  # lxml's XMLSyntaxError is one
        raise LoadError(f"damaged .docx file ({type(exc).__name__}: {exc})") from exc
    lines = []
    for block in document.iter_inner_content():  # paragraphs and tables in the order they appear
        if isinstance(block, docx.table.Table):
            lines.append(_docx_table(block))
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        if match:
            lines.append(f"\n{'#' * min(int(match.group(1)), 6)} {text}\n")
        elif style == "Title":
            lines.append(f"\n# {text}\n")
        else:
            lines.append(text + "\n")
    return markdown_sections("\n".join(lines), source)


def _docx_table(table) -> str:
    """A Word table as a Markdown table (its first row the header), rows on consecutive lines, so that the reader
    states each row under its column headers as it does a Markdown or HTML table."""
    rows = []
    for row in table.rows:
        cells = [" ".join(cell.text.split()).replace("|", "/") for cell in row.cells]
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
    if len(rows) > 1:
        rows.insert(1, "|" + "---|" * rows[0].count(" | ") + "---|")
    return "\n" + "\n".join(rows) + "\n"


_COLUMN_GAP = re.compile(r" {2,}|\t+")
_WIDE_GAP = re.compile(r"\S(?: {3,}|\t)\S")
_MAX_CELL = 60  # characters: a longer "cell" is prose with a double space in it


def aligned_tables(text: str) -> str:
    r"""Plain text laid out in columns as Markdown tables: a run of at least three lines, each of two or more cells
    parted by runs of spaces or tabs, the same number of cells on every line and somewhere a gap of three spaces
    or a tab (alignment, not a double space after a full stop). Its first line is the header. Joined as prose,
    "Under £50     £3 / Over £250     £20" would read as one sentence; as a table each row is stated under its
    column headers, as a Markdown table's is.

    >>> print(aligned_tables("Fees:\nValue      Fee\nUnder £50  £3\nOver £250  £20\nThanks."))
    Fees:
    | Value | Fee |
    |---|---|
    | Under £50 | £3 |
    | Over £250 | £20 |
    Thanks.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        first = _columns(lines[i])
        j = i
        while first and j + 1 < len(lines) and len(_columns(lines[j + 1]) or ()) == len(first):
            j += 1
        if j - i >= 2 and any(_WIDE_GAP.search(line) for line in lines[i : j + 1]):
            rows = [_columns(line) or [] for line in lines[i : j + 1]]
            out += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
            out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
            i = j + 1
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)


def _columns(line: str) -> list[str] | None:
    """The cells of a line laid out in columns, or None (prose; a border such as reStructuredText's "===  ===")."""
    stripped = line.strip()
    if not stripped or stripped.startswith("|"):
        return None
    cells = _COLUMN_GAP.split(stripped)
    if len(cells) < 2 or any(len(cell) > _MAX_CELL or not cell.strip("=-~+*_") for cell in cells):
        return None
    return [cell.replace("|", "/") for cell in cells]


# ---------------------------------------------------------------------------------------------- records


def load_records(text: str, source: str, suffix: str) -> list[Document]:
    """FAQ records (.json, .jsonl, .csv) as one document each: "Q: ...\nA: ..." for question/answer pairs,
    the text for title/text records, every named column for other table rows."""
    unreadable: list[str] = []  # a JSON Lines line that is not a record costs only itself
    if suffix == ".csv":
        records = _csv_records(text)
    elif suffix == ".jsonl":
        records, unreadable = _jsonl_records(text)
    else:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(f"not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from exc
        except RecursionError as exc:  # thousands of nested brackets: no FAQ file looks like that
            raise LoadError(
                'JSON nested too deeply to be read; expected a list of records like {"question": "...", "answer": "..."}'
            ) from exc
        records = _json_records(payload)
    docs, bad = [], []
    table = table_name(source)
    for number, record in enumerate(records, start=1):
        doc_text, row, title = _record_text(record)
        if doc_text is None:
            bad.append(number)
            continue
        # a table row is about what its file lists: the file name is the table's title ("service points" for
        # the Rotterdam row of service-points.csv), as a heading is a Markdown section's; a titled text is
        # about its title, as a section is about its heading
        headings = (title,) if title else (table,) if row and table else ()
        docs.append(Document(text=doc_text, source=source, headings=headings, meta={"record": number}))
    problems = unreadable[:]
    if bad:
        which = (
            f"record {bad[0]}"
            if len(bad) == 1
            else f"records {', '.join(map(str, bad[:5]))}" + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        )
        problems.append(
            f"{which} {'has' if len(bad) == 1 else 'have'} no question/answer (or title/text) fields; FAQ records "
            'look like {"question": "...", "answer": "..."}'
        )
    if problems:
        message = "; ".join(problems)
        if not docs:
            raise LoadError(message)
        # one broken record does not cost the file its good ones
        raise PartlyLoaded(f"{message}; the other {len(docs)} records are indexed", docs)
    return docs


def _jsonl_records(text: str) -> tuple[list, list[str]]:
    """The records of a JSON Lines file, and what is wrong with the lines that are none (three named, then a
    count): a line cut short by an editor or a crash costs its own record, not the file's others."""
    from .records import jsonl_lines

    records, wrong = [], []
    for number, record, problem in jsonl_lines(text):
        if problem:
            wrong.append(f"line {number} {problem}")
        else:
            records.append(record)
    if len(wrong) > 3:
        wrong = wrong[:3] + [f"{len(wrong) - 3} more lines cannot be read"]
    return records, wrong


def table_name(source: str) -> str:
    """What a file of records lists, by its name: its stem in words.

    >>> table_name("kb/service-points.csv"), table_name("shops_and_hours.json"), table_name("2024.csv")
    ('service points', 'shops and hours', '')
    """
    name = re.sub(r"[-_.\s]+", " ", PurePosixPath(source.replace("\\", "/")).stem).strip()
    return name if re.search(r"[^\W\d_]", name) else ""


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
    # a cell may hold a long answer: the csv module's default limit (128 KiB a field) is not the file's size limit
    csv.field_size_limit(2**31 - 1)
    try:
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    except csv.Error as exc:
        raise LoadError(f"not valid CSV ({exc}); check its quoting, or save it again from a spreadsheet") from exc
    if not rows:
        raise LoadError("CSV has a header but no rows")
    return rows


def _record_text(record) -> tuple[str | None, bool, str]:
    """A record's text; whether it is a generic table row (every named column) rather than an FAQ pair or a
    text; and a text's title ({"title": "Campanha station", "text": "..."}: a title is what the text is about,
    not a question it answers, so it heads the text as a heading would, and is never quoted as "Q: ...")."""
    if isinstance(record, str):
        return record.strip() or None, False, ""
    if not isinstance(record, dict):
        return None, False, ""
    lowered = {str(k).strip().lower(): v for k, v in record.items() if k is not None}
    question_key = next((k for k in QUESTION_KEYS if _is_text(lowered.get(k))), None)
    # "a" is an answer beside "q" only: in a table with columns a, b, c it is just a column
    answers = [k for k in ANSWER_KEYS if k != "a" or question_key == "q"]
    answer_key = next((k for k in answers if _is_text(lowered.get(k)) and k != question_key), None)
    extra = record.get(None)  # a CSV row with more cells than the header names
    named = [k for k in record if k is not None]
    if extra and answer_key and question_key and str(named[-1]).strip().lower() == answer_key:
        # an FAQ answer in the last column with a comma nobody quoted ("Folded or not, bikes are allowed ..."):
        # the cells past the header are the rest of the answer
        cells = [str(v) for v in extra if v is not None]
        lowered[answer_key] = ",".join([str(lowered[answer_key]), *cells])
        extra = None
    titled = question_key == "title" and answer_key is not None
    if question_key is not None and answer_key is not None and not extra and not titled:
        return f"Q: {str(lowered[question_key]).strip()}\nA: {str(lowered[answer_key]).strip()}", False, ""
    cells = [str(v).strip() for v in extra if _is_text(v)] if isinstance(extra, list) else []
    if answer_key is not None:
        # a text record ({"id": 7, "text": "..."}): its text, then whatever else it says (an id and its title aside)
        aside = (answer_key, "id", "title") if titled else (answer_key, "id")
        rest = [f"{k}: {v}" for k, v in record.items() if k and str(k).strip().lower() not in aside and _is_text(v)]
        title = str(lowered["title"]).strip() if titled else ""
        return "\n".join([str(lowered[answer_key]).strip(), *rest, *cells]), False, title
    # a generic table row: every column, named, and any cells past the header's
    pairs = [f"{k}: {v}" for k, v in record.items() if k and _is_text(v)] + cells
    return ("\n".join(pairs), True, "") if len(pairs) >= 2 else (None, False, "")


def _is_text(value) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip() != ""
