"""A FAISS index over normalised vectors: inner product = cosine similarity.

numpy arrays in and out; shapes and dtypes are checked at the boundary with precise errors. The index
knows nothing of models or chunks: row i of the vectors it was built from is id i. "Flat" (exact) is the
default; any FAISS `index_factory` string works, and indexes that need training are trained on a sample of
the vectors they are built from.

For millions of vectors: a compressed IVF-PQ index (e.g. "IVF1024,PQ48": 48 bytes a vector instead of
1,536) trained on a sample, filled in shards that are merged (`shard_size`), searched with `nprobe` lists
and, with `refine`, its candidates re-scored exactly from the memory-mapped stored vectors, which brings
recall back to near exact at little memory. `benchmarks/large_index.py` measures it on 1M vectors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import ConfigError

MAX_TRAIN = 200_000  # training on more than this sample gains nothing measurable for IVF/PQ
# FAISS scans a flat index with one SIMD pass per query; for a few queries a BLAS matrix-vector product over
# the same memory uses every core and is 2-3x faster here (100k x 384: 5 ms instead of 11-14 ms).
BLAS_QUERIES = 20


def _faiss():
    import faiss

    return faiss


def check_vectors(vectors: np.ndarray, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """Return `vectors` as a C-contiguous float32 (n, dim) array, or raise TypeError/ValueError."""
    if not isinstance(vectors, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(vectors).__name__}")
    if vectors.ndim != 2:
        raise ValueError(f"{what} must be 2-dimensional (n, dim), got shape {vectors.shape}")
    if vectors.dtype != np.float32:
        if not np.issubdtype(vectors.dtype, np.floating):
            raise TypeError(f"{what} must be float32, got {vectors.dtype}")
        vectors = vectors.astype(np.float32)
    if dim is not None and vectors.shape[1] != dim:
        raise ValueError(f"{what} dim {vectors.shape[1]} != index dim {dim}")
    return np.ascontiguousarray(vectors)


class VectorIndex:
    """Inner-product search over row-numbered vectors."""

    def __init__(self, index, factory: str = "Flat"):
        self.index = index
        self.factory = factory
        self._flat = _flat_view(index)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        factory: str = "Flat",
        nprobe: int = 16,
        dim: int | None = None,
        shard_size: int = 0,
    ) -> VectorIndex:
        """Build an index holding `vectors` (row i gets id i). `dim` is needed when `vectors` is empty.

        With `shard_size`, the trained empty index is cloned per shard of rows, each shard is filled
        separately (what a distributed build does on several machines) and the shards are merged; the result
        is the same index as one `add` of all rows."""
        if vectors.size == 0 and dim is not None:
            vectors = np.zeros((0, dim), dtype=np.float32)
        vectors = check_vectors(vectors)
        empty = cls.trained(vectors, factory)
        if shard_size and len(vectors) > shard_size:
            shards = [cls.fill(empty, vectors[i : i + shard_size]) for i in range(0, len(vectors), shard_size)]
            out = cls.merge(shards, factory)
        else:
            out = cls(cls.fill(empty, vectors), factory)
        out.set_nprobe(nprobe)
        return out

    @staticmethod
    def trained(vectors: np.ndarray, factory: str):
        """An empty FAISS index of `factory`, trained on (a sample of at most MAX_TRAIN of) `vectors`."""
        faiss = _faiss()
        try:
            index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"index `factory` {factory!r} is not a valid FAISS index_factory string: {exc}") from exc
        if not index.is_trained:
            if len(vectors) == 0:
                raise ConfigError(f"index factory {factory!r} needs training vectors, and there are none")
            sample = vectors
            if len(vectors) > MAX_TRAIN:
                rng = np.random.default_rng(0)
                sample = vectors[np.sort(rng.choice(len(vectors), MAX_TRAIN, replace=False))]
            try:
                index.train(np.ascontiguousarray(sample))
            except RuntimeError as exc:
                raise ConfigError(
                    f"index factory {factory!r} cannot be trained on {len(sample)} vectors ({exc}); "
                    "use 'Flat' for small corpora or fewer IVF lists"
                ) from exc
        return index

    @staticmethod
    def fill(empty, vectors: np.ndarray):
        """A copy of the trained `empty` index holding `vectors` (ids from 0)."""
        index = _faiss().clone_index(empty)
        if len(vectors):
            index.add(check_vectors(vectors, int(empty.d)))
        return index

    @classmethod
    def merge(cls, shards: list, factory: str) -> VectorIndex:
        """One index from shards filled in row order (shard j's ids continue where shard j-1's end)."""
        faiss = _faiss()
        merged = shards[0]
        for shard in shards[1:]:
            target = faiss.downcast_index(merged)
            # IVF lists store ids: shift the shard's; flat codes are numbered by position already
            shift = target.ntotal if isinstance(target, faiss.IndexIVF) else 0
            try:
                target.merge_from(faiss.downcast_index(shard), shift)
            except (AttributeError, RuntimeError) as exc:
                raise ConfigError(
                    f"index factory {factory!r} cannot be merged from shards ({exc}); use shard_size 0"
                ) from exc
        return cls(merged, factory)

    def to_device(self, device: str | None) -> VectorIndex:
        """This index on the GPU(s) when asked for, or by default when the faiss GPU build sees a GPU; the CPU
        copy stays for saving. Identical results up to float tolerance (tested where a GPU is present)."""
        faiss = _faiss()
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if device == "cpu" or (device is None and gpus == 0):
            return self
        if gpus == 0:
            raise ConfigError(
                f"index `device` {device!r} needs the faiss GPU build and a GPU: pip uninstall faiss-cpu && "
                "pip install 'rag[gpu]'"
            )
        self.cpu_index = self.index
        self.index = faiss.index_cpu_to_all_gpus(self.index)
        self._flat = None  # exact search then runs on the GPU
        return self

    def set_nprobe(self, nprobe: int) -> None:
        faiss = _faiss()
        try:
            ivf = faiss.extract_index_ivf(self.index)
        except RuntimeError:
            return  # not an IVF index
        ivf.nprobe = nprobe

    def search(
        self, queries: np.ndarray, k: int, exact: np.ndarray | None = None, refine: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` (scores, ids) per query row, best first; missing results have id -1.

        For an approximate index, `refine` > k fetches that many candidates and re-scores them exactly with
        `exact` (the stored vectors, usually memory-mapped: only the candidates' rows are read)."""
        queries = check_vectors(queries, self.dim, "queries")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        if len(self) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = min(k, len(self))
        if self._flat is not None and len(queries) < BLAS_QUERIES:
            return _exact_topk(self._flat, queries, k)
        if exact is None or refine <= k or self._flat is not None:
            return self.index.search(queries, k)
        _, candidates = self.index.search(queries, min(refine, len(self)))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        for i, (query, rows) in enumerate(zip(queries, candidates)):
            rows = np.unique(rows[rows >= 0])  # sorted: sequential reads from a memory map
            sims = np.asarray(exact[rows], dtype=np.float32) @ query
            top = np.lexsort((rows, -sims))[:k]
            scores[i, : len(top)], ids[i, : len(top)] = sims[top], rows[top]
        return scores, ids

    def save(self, path: Path) -> None:
        _faiss().write_index(getattr(self, "cpu_index", self.index), str(path))

    @classmethod
    def load(cls, path: Path, factory: str = "Flat", nprobe: int = 16, mmap: bool = False) -> VectorIndex:
        faiss = _faiss()
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        out = cls(faiss.read_index(str(path), flags), factory)
        out.set_nprobe(nprobe)
        return out


def _flat_view(index) -> np.ndarray | None:
    """A zero-copy (n, d) view of an exact inner-product index's vectors, or None for other index types."""
    faiss = _faiss()
    flat = faiss.downcast_index(index)
    if not isinstance(flat, faiss.IndexFlat) or flat.metric_type != faiss.METRIC_INNER_PRODUCT or flat.ntotal == 0:
        return None
    return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)


def _exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    torch = sys.modules.get("torch")
    if torch is not None:
        # torch is loaded (the query embedder runs on it): use its thread pool. Mixing it with numpy's BLAS
        # threads right after an embedding makes both spin for cores: 100k x 384 took 100 ms instead of 7 ms.
        sims = (torch.from_numpy(queries) @ torch.from_numpy(vectors).T).numpy()
    else:
        sims = queries @ vectors.T
    if k < sims.shape[1]:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        top = np.tile(np.arange(sims.shape[1]), (len(sims), 1))
    top_scores = np.take_along_axis(sims, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)  # by score, ties by id like FAISS
    ids = np.take_along_axis(top, order, axis=1).astype(np.int64)
    return np.take_along_axis(top_scores, order, axis=1), ids
