"""A LangChain retriever over a `rag` index, for bots already written with LangChain (LCEL chains, agents).

    from rag import LangChainRetriever
    docs = LangChainRetriever.from_index("indexes/default", k=3).invoke("How do I reset the router?")

Each hit becomes a `langchain_core.documents.Document` whose `page_content` is the chunk's text and whose
`metadata` holds `source`, `page`, `chunk_id`, `rank`, `score` (the ranking score of the mode used),
`scores` (each retriever's own score: `dense` cosine, `bm25`) and `context` (the heading path). Searching
runs on rag's `Retriever`, so the index, its embedder and hybrid ranking are exactly those of `rag search`;
the async path (`ainvoke`) searches in a worker thread and never blocks the event loop.

What this module does not do: answer (use `rag.RAG`, or your own LangChain chain over these documents).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import require

require("langchain_core", "langchain-core", "the LangChain retriever")

from langchain_core.callbacks import (  # noqa: E402 - only after the dependency check above
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict  # noqa: E402


def to_document(hit) -> Document:
    """A rag `Hit` as a LangChain `Document` (text, and where it came from in the metadata)."""
    chunk = hit.chunk
    return Document(
        id=chunk.id,
        page_content=chunk.text,
        metadata={
            "source": chunk.source,
            "page": chunk.page,
            "chunk_id": chunk.id,
            "rank": hit.rank,
            "score": float(hit.score),
            "scores": {k: float(v) for k, v in hit.scores.items()},
            "context": chunk.context,
        },
    )


class LangChainRetriever(BaseRetriever):
    """LangChain's `BaseRetriever` over a rag `Retriever`: `k` hits (default: the retriever's) in `mode`
    (dense, bm25 or hybrid; default: the retriever's), checked like `rag search` checks them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any  # a rag.Retriever (shared: it is safe to use from several threads)
    k: int | None = None
    mode: str | None = None

    @classmethod
    def from_index(cls, index: str | os.PathLike = "indexes/default", **kwargs) -> LangChainRetriever:
        """A retriever over the index folder `index` (loaded on the first search)."""
        from ..retrieve import Retriever

        return cls(retriever=Retriever(index), **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(hit) for hit in self.retriever.search(query, k=self.k, mode=self.mode)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = await asyncio.to_thread(self.retriever.search, query, self.k, self.mode)
        return [to_document(hit) for hit in hits]
