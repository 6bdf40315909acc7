"""The values that flow through the pipeline: Document -> Chunk -> Hit.

Plain dataclasses with no heavy imports, so every stage (and every test) can build them cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """Text read from one source file, or one part of it (a PDF page, an FAQ record).

    `source` is the file's path as the index names it; `page` is 1-based for paged formats and None
    otherwise; `headings` is the heading path above the text (Markdown/HTML), outermost first.
    """

    text: str
    source: str
    page: int | None = None
    headings: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedder to see whole.

    `id` is stable across runs for the same file content (`<source>#<ordinal>`); `ordinal` counts the
    chunks of one source file from 0. `context` is the heading path ("Manual > Reset"), which is embedded
    and keyword-indexed together with `text` so that a chunk is found by the section it sits in.
    """

    id: str
    source: str
    ordinal: int
    text: str
    page: int | None = None
    context: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def indexed_text(self) -> str:
        """What the embedder and the keyword index see: the heading path, then the text."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(
            id=data["id"],
            source=data["source"],
            ordinal=int(data["ordinal"]),
            text=data["text"],
            page=data.get("page"),
            context=data.get("context", ""),
            meta=data.get("meta") or {},
        )


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. `score` is the ranking score of the mode that produced it (cosine similarity for
    dense, BM25 for keyword, the weighted sum of normalised dense and BM25 scores for hybrid, 0..1); `scores`
    keeps each retriever's own score where it found the chunk (keys `dense`, `bm25`)."""

    rank: int
    score: float
    chunk: Chunk
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "source": self.chunk.source,
            "page": self.chunk.page,
            "chunk_id": self.chunk.id,
            "text": self.chunk.text,
            "context": self.chunk.context,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
        }


@dataclass
class Answer:
    """What `ask` returns: the answer text, whether it is a refusal, and the evidence behind it.

    `sources` are the passages shown to the model (numbered from 1), `citations` the numbers the answer
    cites. `mode` says how the text was produced: "extractive", "generative", "refusal" or "closed-book".
    `prompt` is the exact prompt given to the model (None when no model ran), kept so an answer can be traced.
    """

    question: str
    answer: str
    refused: bool
    sources: list[Hit] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)
    mode: str = "extractive"
    model: str | None = None
    adapter: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    prompt: str | None = None
    notes: list[str] = field(default_factory=list)
    # why a generated answer may not be trusted (it cites nothing, states a number its passages lack): generative
    # mode checks its answer and says so here; auto mode answers with the extract instead
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "sources": [
                {
                    "n": n,
                    "source": h.chunk.source,
                    "page": h.chunk.page,
                    "chunk_id": h.chunk.id,
                    "score": round(float(h.score), 6),
                }
                for n, h in enumerate(self.sources, start=1)
            ],
            "citations": self.citations,
            "model": self.model,
            "adapter": self.adapter,
            "mode": self.mode,
            "timings": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.timings.items()},
            "notes": self.notes,
            "warnings": self.warnings,
        }
