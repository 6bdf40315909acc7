"""Retrieval-only evaluation on BEIR-shaped data (`rag eval retrieval`): nDCG@10, recall@10/100 and MRR@10.

As MTEB does, each document is embedded whole as `title + " " + text` (the embedder truncates at its window)
and ranked by the chosen retrieval mode; metrics are computed like pytrec_eval's (`rag.eval.metrics`). The
data comes from `rag.eval.datasets` (`read_beir`, or `retrieval_data` for SQuAD/CMRC files), so the document
ids are those suites use.

What this module does not do: chunk documents, answer questions, or write reports (`rag.eval.harness` and
`rag.eval.report` do, for suites).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..config import Config, RetrieveConfig
from ..errors import ConfigError
from ..types import Chunk
from .datasets import BeirData
from .metrics import retrieval_metrics


def doc_text(doc: dict) -> str:
    """MTEB's document text: title and text joined by a space.

    >>> doc_text({"title": "Router", "text": "Hold RESET."}), doc_text({"title": "", "text": "x"})
    ('Router Hold RESET.', 'x')
    """
    return f"{doc['title']} {doc['text']}".strip() if doc.get("title") else doc["text"]


def evaluate(
    data: BeirData,
    config: Config | None = None,
    modes: Sequence[str] = ("dense",),
    limit: int | None = None,
    embedder=None,
    ignore_identical_ids: bool = False,
    progress: bool = False,
) -> dict:
    """Metrics per retrieval mode ("dense", "bm25", "hybrid") over the first `limit` queries of `data`, with
    `embedder` (default: the configured one). Returns {"dataset", "queries", "documents", "embedder",
    "index_seconds", "modes": {mode: metrics}}. An unknown mode is a `ConfigError`."""
    from ..embeddings import load_embedder
    from ..retrieve import Retriever

    config = config or Config()
    for mode in modes:
        if mode not in ("dense", "bm25", "hybrid"):
            raise ConfigError(f"mode must be dense, bm25 or hybrid, got {mode!r}")
    embedder = embedder or load_embedder(config.embed)
    ids = list(data.corpus)
    chunks = [Chunk(id=d, source=d, ordinal=0, text=doc_text(data.corpus[d])) for d in ids]
    qids = list(data.queries)[:limit]
    needs = ("dense", "bm25") if "hybrid" in modes else tuple(modes)
    started = time.perf_counter()
    retriever = Retriever.in_memory(chunks, embedder, RetrieveConfig(candidates=100), modes=needs, progress=progress)
    build_s = time.perf_counter() - started
    report = {
        "dataset": data.name,
        "queries": len(qids),
        "documents": len(ids),
        "embedder": embedder.id,
        "index_seconds": round(build_s, 2),
        "modes": {},
    }
    texts = [data.queries[q] for q in qids]
    for mode in modes:
        # one more hit when the query's own id may come back, so 100 remain after dropping it
        hits = retriever.search_many(texts, k=101 if ignore_identical_ids else 100, mode=mode)
        run = {}
        for qid, found in zip(qids, hits):
            ranked = [h.chunk.id for h in found if not (ignore_identical_ids and h.chunk.id == qid)]
            run[qid] = ranked[:100]
        report["modes"][mode] = retrieval_metrics(run, {q: data.qrels[q] for q in qids})
    return report
