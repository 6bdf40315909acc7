"""Cut documents into chunks that the embedder sees whole.

Sizes are counted in the embedder's own tokens (all-MiniLM-L6-v2 silently drops everything past 256
tokens, so a chunk measured in characters could hide its end from search). The heading path is counted
too, because it is embedded with the chunk. Splitting prefers paragraph, line and sentence boundaries,
English and Chinese (。！？；), then clauses, then words; a piece that still does not fit is cut by tokens.
This module knows nothing of models: it gets a token-counting function and a maximum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from .config import ChunkConfig
from .text import RULE
from .types import Chunk, Document

log = logging.getLogger(__name__)

# Coarsest first. Sentence ends need a following space in English so that "14.90" and "192.168.0.1" stay whole;
# Chinese sentence punctuation needs none.
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", "、", ", ", " ", ""]
MIN_BODY_TOKENS = 16  # below this a heading path is shortened rather than starving the text of room


class Chunker:
    """Split the documents of one file into `Chunk`s of at most `max_tokens` tokens (heading path included).

    `count_tokens(text)` must count tokens as the embedder does, without special tokens.
    """

    def __init__(self, config: ChunkConfig, count_tokens: Callable[[str], int], max_tokens: int):
        if max_tokens < MIN_BODY_TOKENS:
            raise ValueError(f"max_tokens must be at least {MIN_BODY_TOKENS}, got {max_tokens}")
        self.config = config
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.size = min(config.size, max_tokens)
        if config.size > max_tokens:
            log.warning(
                "chunk size %d is more than the embedder sees (%d tokens); using %d",
                config.size,
                max_tokens,
                max_tokens,
            )
        self.overlap = min(config.overlap, self.size // 2)

    def settings(self) -> dict:
        """The effective settings, recorded in the index manifest."""
        return {"size": self.size, "overlap": self.overlap, "max_tokens": self.max_tokens, "separators": SEPARATORS}

    def split(self, documents: Iterable[Document]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for doc in documents:
            context = self._context(doc)
            budget = self.size - (self.count_tokens(context + "\n") if context else 0)
            for text in self._split_text(doc.text, budget):
                chunks.append(
                    Chunk(
                        id=f"{doc.source}#{len(chunks)}",
                        source=doc.source,
                        ordinal=len(chunks),
                        text=text,
                        page=doc.page,
                        context=context,
                        meta=dict(doc.meta),
                    )
                )
        return chunks

    def _context(self, doc: Document) -> str:
        headings = [h.strip() for h in doc.headings if h and h.strip()]
        context = " > ".join(headings)
        # a heading path may take at most half the window; drop outer headings first, then cut
        while context and self.count_tokens(context + "\n") > self.size // 2:
            if len(headings) > 1:
                headings = headings[1:]
                context = " > ".join(headings)
            else:
                context = _cut_to_tokens(context, self.size // 2 - 1, self.count_tokens)
                break
        return context

    def _split_text(self, text: str, budget: int) -> list[str]:
        """`text` in pieces of at most `budget` tokens. A piece that starts inside a table, whose header an
        earlier piece holds, gets the header in front: a row read without it says nothing ("| Saltmarsh |
        £18.40 | £22.90 |"). Such a document is split again with room left for the longest header."""
        text = text.strip()
        pieces = self._pieces(text, budget)
        headers = _table_headers(text) if len(pieces) > 1 else {}
        if not any(_first_line(piece) in headers for piece in pieces):
            return pieces
        room = budget - max(self.count_tokens(header + "\n") for header in set(headers.values()))
        if room < budget // 2:
            return pieces  # headers as long as the rows they head: the rows stay as they are
        pieces = self._pieces(text, room)
        return [headers[_first_line(p)] + "\n" + p if _first_line(p) in headers else p for p in pieces]

    def _pieces(self, text: str, budget: int) -> list[str]:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        if not text:
            return []
        if self.count_tokens(text) <= budget:
            return [text]
        splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=budget,
            chunk_overlap=min(self.overlap, budget // 2),
            length_function=self.count_tokens,
            strip_whitespace=True,
        )
        pieces: list[str] = []
        for piece in splitter.split_text(text):
            # the splitter's length of a merge is an estimate (token counts do not add up exactly); enforce it
            while piece and self.count_tokens(piece) > budget:
                head = _cut_to_tokens(piece, budget, self.count_tokens)
                pieces.append(head)
                piece = piece[len(head) :].strip()
            if piece:
                pieces.append(piece)
        return pieces


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def _table_headers(text: str) -> dict[str, str]:
    r"""Each body row of the tables in `text` (a run of lines starting with "|"), mapped to its table's header:
    the run's first line, with the rule under it when there is one. A row that two tables with different headers
    share is left out.

    >>> _table_headers("Fares\n| To | Price |\n|---|---|\n| Leeds | £9 |\n| York | £7 |\n\n| a | b |\n| 1 | 2 |")
    {'| Leeds | £9 |': '| To | Price |\n|---|---|', '| York | £7 |': '| To | Price |\n|---|---|', '| 1 | 2 |': '| a | b |'}
    """
    out: dict[str, str | None] = {}
    header: list[str] | None = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line.startswith("|"):
            header = None
        elif header is None:
            header = [line]
        elif RULE.match(line):
            if len(header) == 1:
                header.append(line)
        else:
            head = "\n".join(header)
            out[line] = head if out.get(line, head) == head else None
    return {row: head for row, head in out.items() if head is not None}


def open_table_header(text: str) -> str | None:
    r"""The header (first row, and the rule under it) of the table `text` ends inside, if it does: what the
    chunker puts in front of the next chunk of that table, and what joining the two drops again.

    >>> open_table_header("Fares\n| To | Price |\n|---|---|\n| Leeds | £9 |"), open_table_header("| a |\nDone.")
    ('| To | Price |\n|---|---|', None)
    """
    lines = text.rstrip().split("\n")
    start = len(lines)
    while start > 0 and lines[start - 1].strip().startswith("|"):
        start -= 1
    if start == len(lines) or start == len(lines) - 1:
        return None  # no table at the end, or only its header
    table = [line.strip() for line in lines[start:]]
    return "\n".join(table[:2]) if RULE.match(table[1]) else table[0]


def _cut_to_tokens(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The longest prefix of `text` with at most `budget` tokens, cut at a space when one is near."""
    lo, hi = 1, len(text)
    while lo < hi:  # binary search on characters: token counts grow with prefix length
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    if lo < len(text) and space > lo * 0.8:
        cut = cut[:space]
    return cut
