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
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        text = text.strip()
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
