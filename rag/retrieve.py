"""Find the chunks relevant to a query: dense (FAISS), keyword (BM25) or hybrid (weighted score fusion).

A `Retriever` opens an index folder lazily: the manifest on construction, chunks and indexes on the first
search, the embedder only for dense or hybrid search. It embeds queries with the embedder the index was
built with; naming a different one raises `EmbedderMismatchError` naming both.

Hybrid search combines normalised dense and BM25 scores, with the dense weight scaled by how much of the
query the embedder can read: all-MiniLM-L6-v2 declares English only, so a Chinese query is ranked by BM25
alone instead of being diluted by near-random dense hits. Every hit carries the cosine similarity of its chunk
to the query (`scores["dense"]`), whatever the mode, so that a relevance threshold has one scale.

Search runs on chunks small enough for the embedder to see whole; `Retriever.widen` gives a reader each hit
with the chunks of its section around it ("small-to-big").
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import store
from .chunks import open_table_header
from .config import DEFAULT_INDEX, EmbedConfig, RetrieveConfig
from .embeddings import Embedder, check_compatible, load_embedder
from .errors import ConfigError
from .text import unusable_text
from .types import Chunk, Hit

log = logging.getLogger(__name__)


class Retriever:
    """Search one index. Safe to share between threads once loaded (loading is guarded by a lock)."""

    def __init__(
        self,
        index_dir: str | os.PathLike = DEFAULT_INDEX,
        config: RetrieveConfig | None = None,
        embedder: Embedder | None = None,
        embed_config: EmbedConfig | None = None,
        mmap: bool = False,
        runtime: EmbedConfig | None = None,
    ):
        """`embedder` (an object) or `embed_config` (a model to load) replace the index's own embedder and are
        checked against it; otherwise the index's embedder is loaded with the runtime settings (backend,
        quantisation, device, batch sizes) of `runtime`, e.g. a rag.toml's [embed]."""
        self.folder = Path(index_dir) if index_dir is not None else None
        self.config = config or RetrieveConfig()
        self.manifest = store.require_manifest(self.folder) if index_dir is not None else None
        self._embedder = embedder
        self._embed_config = embed_config
        self._runtime = runtime
        self._mmap = mmap
        self._lock = threading.Lock()
        self._loaded = False
        self._by_place: dict[tuple[str, int], Chunk] | None = None
        if self.manifest is None:
            return
        if embedder is not None:
            check_compatible(self.manifest.embedder, embedder.describe())
        elif embed_config is not None and embed_config.model != self.manifest.embedder.get("id"):
            stored = self.manifest.embedder
            check_compatible(stored, {**stored, "id": embed_config.model})

    @classmethod
    def in_memory(
        cls,
        chunks: list[Chunk],
        embedder: Embedder,
        config: RetrieveConfig | None = None,
        vectors: np.ndarray | None = None,
        modes: tuple[str, ...] = ("dense", "bm25"),
        progress: bool = False,
    ) -> Retriever:
        """A retriever over `chunks` held in memory (no index folder), e.g. for benchmark corpora."""
        from .keywords import KeywordIndex
        from .vectors import VectorIndex

        self = cls(None, config, embedder)  # type: ignore[arg-type]
        texts = [c.indexed_text for c in chunks]
        if vectors is None:
            vectors = (
                embedder.embed_documents(texts, progress=progress)
                if "dense" in modes
                else np.zeros((len(chunks), embedder.dim), np.float32)
            )
        self._chunks = list(chunks)
        self.vectors = vectors
        self._refine = 0
        self.dense = VectorIndex.build(vectors, dim=embedder.dim)
        self.keywords = KeywordIndex.build(texts if "bm25" in modes else [])
        self._loaded = True
        return self

    # Loading -------------------------------------------------------------------------------------------

    def _read(self, path: Path, load):
        """`load(path)`, a damaged or missing file of the index (a disk error, an interrupted copy, an edit) raised
        as `IndexFormatError` naming it, not as the reader's own exception."""
        try:
            return load(path)
        except store.IndexFormatError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, EOFError, TypeError) as exc:  # JSON, numpy, FAISS, bm25s
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise store.IndexFormatError(
                f"index {self.folder} is damaged: {path.name} cannot be read ({type(exc).__name__}: {reason}); "
                "rebuild it with `rag index --rebuild` on its documents"
            ) from exc

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            from .keywords import TOKENIZER, KeywordIndex
            from .vectors import VectorIndex

            gen = store.generation_path(self.folder, self.manifest)
            self._chunks: list[Chunk] = self._read(gen / store.CHUNKS, store.read_chunks)
            self.vectors = self._read(gen / store.VECTORS, lambda path: store.load_vectors(path.parent, mmap=True))
            self.dense = self._read(
                gen / store.DENSE,
                lambda path: VectorIndex.load(
                    path,
                    self.manifest.index.get("factory", "Flat"),
                    self.manifest.index.get("nprobe", 16),
                    mmap=self._mmap,
                ),
            ).to_device(self.manifest.index.get("device"))
            self._refine = int(self.manifest.index.get("refine", 0) or 0)
            if self.manifest.index.get("keywords", 1) == TOKENIZER:
                self.keywords = self._read(gen / store.KEYWORDS, lambda path: KeywordIndex.load(path, mmap=self._mmap))
            else:  # built by an older `tokenize`: its vocabulary would not match today's query tokens
                log.warning(
                    "index %s was built with keyword tokenizer %s (this rag uses %s); its BM25 index is rebuilt in "
                    "memory on every load until `rag index` is run on it again",
                    self.folder,
                    self.manifest.index.get("keywords", 1),
                    TOKENIZER,
                )
                self.keywords = KeywordIndex.build([c.indexed_text for c in self._chunks])
            if not (len(self._chunks) == len(self.dense) == len(self.keywords) == len(self.vectors)):
                raise store.IndexFormatError(
                    f"index {self.folder} is inconsistent ({len(self._chunks)} chunks, {len(self.dense)} vectors); rebuild it"
                )
            self._loaded = True

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    stored = self.manifest.embedder
                    runtime = self._runtime or EmbedConfig()
                    cfg = self._embed_config or replace(
                        runtime,
                        model=stored["id"],
                        query_prefix=stored.get("query_prefix", ""),
                        document_prefix=stored.get("document_prefix", ""),
                        languages=runtime.languages if runtime.model == stored["id"] else None,
                    )
                    embedder = load_embedder(cfg)
                    check_compatible(stored, embedder.describe())
                    self._embedder = embedder
        return self._embedder

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk of the index, in row order."""
        self._load()
        return self._chunks

    def __len__(self) -> int:
        return self.manifest.chunks if self.manifest is not None else len(self._chunks)

    # Searching -----------------------------------------------------------------------------------------

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        """The `k` best chunks for `query` (defaults from the config), best first."""
        return self.search_many([query], k=k, mode=mode)[0]

    def search_many(self, queries: list[str], k: int | None = None, mode: str | None = None) -> list[list[Hit]]:
        settings = replace(self.config, **{n: v for n, v in (("k", k), ("mode", mode)) if v is not None})
        k, mode = settings.k, settings.mode  # checked like the config: a bad value is a ConfigError naming it
        for q in queries:
            problem = unusable_text(q, "the query")
            if problem:
                raise ConfigError(problem)
        self._load()
        if not self._chunks:
            return [[] for _ in queries]
        pool = max(k, self.config.candidates)
        qvecs = self.embedder.embed_queries(queries) if mode in ("dense", "hybrid") else None
        results = []
        for i, query in enumerate(queries):
            qvec = qvecs[i] if qvecs is not None else None
            dense: dict[int, float] = {}
            if qvec is not None:
                scores, ids = self.dense.search(
                    qvec[None, :], k if mode == "dense" else pool, exact=self.vectors, refine=self._refine
                )
                dense = {int(row): float(s) for row, s in zip(ids[0], scores[0]) if row >= 0}
            bm25: dict[int, float] = {}
            if mode in ("bm25", "hybrid"):
                scores, ids = self.keywords.search(query, k if mode == "bm25" else pool)
                bm25 = {int(row): float(s) for row, s in zip(ids, scores)}
            if mode == "dense":
                ranked = sorted(dense.items(), key=lambda item: (-item[1], item[0]))
            elif mode == "bm25":
                ranked = sorted(bm25.items(), key=lambda item: (-item[1], item[0]))
            else:
                weight = self.config.dense_weight * self.embedder.coverage(query)
                ranked = self._hybrid(qvec, dense, bm25, weight)
            ranked = ranked[:k]
            cosines = self._cosines(qvec, [row for row, _ in ranked])
            hits = []
            for rank, ((row, score), cosine) in enumerate(zip(ranked, cosines), start=1):
                found = {}
                if cosine is not None:
                    found["dense"] = cosine
                if row in bm25:
                    found["bm25"] = bm25[row]
                hits.append(Hit(rank=rank, score=float(score), chunk=self._chunks[row], scores=found))
            results.append(hits)
        return results

    def widen(self, hits: list[Hit], window: int) -> list[Hit]:
        """`hits` as a reader should see them: each chunk joined with up to `window` chunks on either side from
        the same section (file, heading path, page and record), and hits whose widened spans touch merged into
        one passage at the better hit's place; ranks renumbered from 1, ids and scores those of the hit. An
        answer that fell into the next chunk of its section, or a procedure's remaining steps, is read with it.
        `hits` itself is returned when there is nothing to add (`window` 0, one-chunk sections)."""
        if window <= 0 or not hits:
            return hits
        self._load()
        if self._by_place is None:  # built once; assignment is atomic, so racing threads build the same map
            self._by_place = {(c.source, c.ordinal): c for c in self._chunks}
        places = self._by_place
        spans: list[list] = []  # [hit, first ordinal, last ordinal]
        for hit in hits:
            chunk = hit.chunk
            stored = places.get((chunk.source, chunk.ordinal))
            if stored is None or stored.text != chunk.text:  # not from this index (or already widened): as it is
                spans.append([hit, chunk.ordinal, chunk.ordinal])
                continue
            first = last = chunk.ordinal
            while chunk.ordinal - first < window and _same_section(places.get((chunk.source, first - 1)), chunk):
                first -= 1
            while last - chunk.ordinal < window and _same_section(places.get((chunk.source, last + 1)), chunk):
                last += 1
            for span in spans:
                if _same_section(span[0].chunk, chunk) and first <= span[2] + 1 and last >= span[1] - 1:
                    span[1], span[2] = min(span[1], first), max(span[2], last)
                    break
            else:
                spans.append([hit, first, last])
        if all(first == last for _, first, last in spans) and len(spans) == len(hits):
            return hits  # nothing to add: every hit's section is that one chunk
        widened = []
        for rank, (hit, first, last) in enumerate(spans, start=1):
            text = hit.chunk.text
            if (first, last) != (hit.chunk.ordinal, hit.chunk.ordinal):
                text = places[(hit.chunk.source, first)].text
                for ordinal in range(first + 1, last + 1):
                    text = join_chunks(text, places[(hit.chunk.source, ordinal)].text)
            widened.append(replace(hit, rank=rank, chunk=replace(hit.chunk, text=text)))
        return widened

    def _hybrid(self, qvec, dense: dict[int, float], bm25: dict[int, float], weight: float) -> list[tuple[int, float]]:
        """Convex combination of normalised scores (Bruch et al. 2023 find it beats rank fusion): cosine
        min-max scaled over the dense candidates, BM25 divided by its best score; missing BM25 counts 0."""
        rows = np.array(sorted(set(dense) | set(bm25)), dtype=np.int64)
        if not len(rows):
            return []
        cos = (
            np.asarray(self._cosines(qvec, rows.tolist()), dtype=np.float32)
            if qvec is not None
            else np.zeros(len(rows), np.float32)
        )
        if dense:
            lo, hi = min(dense.values()), max(dense.values())
            d = np.clip((cos - lo) / (hi - lo), 0.0, None) if hi > lo else np.isin(rows, list(dense)).astype(np.float32)
        else:
            d = np.zeros(len(rows), np.float32)
        top_bm25 = max(bm25.values()) if bm25 else 1.0
        b = np.array([bm25.get(int(r), 0.0) for r in rows], dtype=np.float32) / top_bm25
        fused = weight * d + (1.0 - weight) * b
        order = np.lexsort((rows, -fused))
        return [(int(rows[i]), float(fused[i])) for i in order]

    def _cosines(self, qvec: np.ndarray | None, rows: list[int]) -> list[float | None]:
        if qvec is None or not rows:
            return [None] * len(rows)
        # exact similarity from the stored vectors, also where the FAISS index is approximate
        sims = np.asarray(self.vectors[np.asarray(rows)], dtype=np.float32) @ qvec
        return [float(s) for s in sims]


def _same_section(chunk: Chunk | None, of: Chunk) -> bool:
    """Whether `chunk` was cut from the same document as `of` (a Markdown section, a PDF page, a record)."""
    return (
        chunk is not None
        and chunk.source == of.source
        and chunk.context == of.context
        and chunk.page == of.page
        and chunk.meta == of.meta
    )


CLAUSE_ENDS = ("，", "、", ",", ";", "；", "：", ":")


def join_chunks(before: str, after: str, min_overlap: int = 5) -> str:
    r"""Two consecutive chunks of one section as one text. The chunker repeats the end of a chunk at the start
    of the next (`[chunk] overlap`), and a table's header in each chunk the table runs into: those repeats are
    dropped. Without an overlap, a chunk cut mid-sentence (at a clause separator) is continued on the same line,
    anything else on a new line, as the chunker cut at line breaks first.

    >>> join_chunks("Hold RESET for 12 seconds. The light blinks.", "The light blinks. Release it.")
    'Hold RESET for 12 seconds. The light blinks. Release it.'
    >>> join_chunks("保修期为24个月，", "延保服务另计。"), join_chunks("Step 1: unplug it", "Step 2: wait")
    ('保修期为24个月，延保服务另计。', 'Step 1: unplug it\nStep 2: wait')
    >>> join_chunks("| To | £ |\n|---|---|\n| Leeds | 9 |", "| To | £ |\n|---|---|\n| York | 7 |")
    '| To | £ |\n|---|---|\n| Leeds | 9 |\n| York | 7 |'
    """
    header = open_table_header(before)
    if header and after.startswith(header + "\n"):
        after = after[len(header) + 1 :]  # the chunker repeats a table's header in each chunk the table runs into
    for size in range(min(len(before), len(after)), min_overlap - 1, -1):
        if before.endswith(after[:size]):
            return before + after[size:]
    if before.endswith(CLAUSE_ENDS):
        latin = before[-1] in ",;:" and after[:1].isascii()
        return before + (" " if latin else "") + after
    return before + "\n" + after
