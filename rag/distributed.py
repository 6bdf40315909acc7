"""Distributed ingestion on Ray Data: `rag index --engine ray [--address ADDR]`.

The two expensive steps of `build_index` run on a Ray cluster (or, without `--address`, a Ray instance on
this machine); everything else (change detection, the index files, the atomic commit) stays in
`rag.ingest`, so both engines write the same index for the same input:

1. files are read, parsed and chunked in parallel by a pool of actors (each loads the embedder's tokenizer
   once, because chunks are measured in its tokens);
2. the chunks' texts are embedded by a pool of actors that each load the model once, in batches sized for
   the device (a GPU per actor when the cluster has them).

Results come back in input order. Ray is an optional extra (`pip install 'rag[ray]'`); this module imports
it only when called.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np

from .config import ChunkConfig, EmbedConfig
from .errors import ConfigError
from .types import Chunk

CPU_BATCH, GPU_BATCH = 256, 2048  # texts per embedding batch handed to an actor


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "--engine ray needs Ray Data: pip install 'rag[ray]' (or pip install 'ray[data]'); "
            "without it, use the default local engine"
        ) from exc
    return ray


def connect(address: str | None = None):
    """Join the Ray cluster at `address` (or $RAY_ADDRESS), else start a local Ray instance."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        try:
            ray.init(
                address=address,
                ignore_reinit_error=True,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    return ray


def _workers(ray, per_worker: float = 1.0) -> int:
    cpus = ray.cluster_resources().get("CPU", 1)
    return max(1, int(cpus // per_worker))


def _gpus(ray) -> float:
    return float(ray.cluster_resources().get("GPU", 0))


class _ChunkFiles:
    """Ray actor: read and chunk files, with the embedder's tokenizer loaded once."""

    def __init__(self, chunk: dict, embed: dict):
        from .chunks import Chunker
        from .embeddings import load_embedder

        embedder = load_embedder(EmbedConfig(**embed))
        self.chunker = Chunker(ChunkConfig(**chunk), embedder.count_tokens, embedder.max_tokens)

    def __call__(self, batch: dict) -> dict:
        from .documents import load_file
        from .errors import LoadError, PartlyLoaded

        out = {"i": [], "chunks": [], "error": [], "expected": [], "partly": []}
        for i, path, source in zip(batch["i"], batch["path"], batch["source"]):
            chunks, error, expected, partly = [], "", True, False
            try:
                chunks = self.chunker.split(load_file(_path(path), str(source)))
            except PartlyLoaded as exc:  # its readable records are indexed, the broken ones reported
                chunks, error, partly = self.chunker.split(exc.documents), str(exc), True
            except Exception as exc:  # as the local engine: one hostile file never stops the run
                expected = isinstance(exc, LoadError)
                error = str(exc) if expected else f"cannot be read ({type(exc).__name__}: {exc})"
            out["i"].append(int(i))
            out["chunks"].append(json.dumps([c.to_dict() for c in chunks], ensure_ascii=False))
            out["error"].append(error)
            out["expected"].append(expected)
            out["partly"].append(partly)
        return {k: np.asarray(v, dtype=object if k in ("chunks", "error") else None) for k, v in out.items()}


class _Embed:
    """Ray actor: embed texts with the model loaded once."""

    def __init__(self, embed: dict):
        from .embeddings import load_embedder

        self.embedder = load_embedder(EmbedConfig(**embed))

    def __call__(self, batch: dict) -> dict:
        vectors = self.embedder.embed_documents([str(t) for t in batch["text"]])
        return {"i": batch["i"], "vector": np.asarray(vectors, dtype=np.float32)}


def _path(value):
    from pathlib import Path

    return Path(str(value))


def load_and_chunk(files: list, chunk: ChunkConfig, embed: EmbedConfig, address: str | None = None) -> list:
    """For each SourceFile, in order: its chunks, or the exception that stopped it (LoadError when expected;
    PartlyLoaded, whose `documents` are the chunks of the records that could be read)."""
    from .errors import LoadError, PartlyLoaded

    if not files:
        return []
    ray = connect(address)
    items = [{"i": i, "path": str(sf.path), "source": sf.source} for i, sf in enumerate(files)]
    workers = min(_workers(ray), len(files))
    ds = ray.data.from_items(items).map_batches(
        _ChunkFiles,
        fn_constructor_kwargs={"chunk": asdict(chunk), "embed": asdict(embed)},
        batch_size=4,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    rows = sorted(ds.take_all(), key=lambda r: int(r["i"]))
    results = []
    for row in rows:
        chunks = [Chunk.from_dict(c) for c in json.loads(row["chunks"])]
        if row["partly"]:
            results.append(PartlyLoaded(row["error"], chunks))
        elif row["error"]:
            results.append(LoadError(row["error"]) if row["expected"] else RuntimeError(row["error"]))
        else:
            results.append(chunks)
    return results


def embed(texts: list[str], config: EmbedConfig, dim: int, address: str | None = None) -> np.ndarray:
    """Embeddings of `texts`, in order, computed by a pool of actors."""
    if not texts:
        return np.zeros((0, dim), np.float32)
    ray = connect(address)
    gpus = _gpus(ray)
    batch = GPU_BATCH if gpus else CPU_BATCH
    workers = max(1, min(int(gpus) if gpus else _workers(ray), -(-len(texts) // batch)))
    ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)]).map_batches(
        _Embed,
        fn_constructor_kwargs={"embed": asdict(config)},
        batch_size=batch,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else 1,
    )
    rows = sorted(ds.take_all(), key=lambda r: int(r["i"]))
    return np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows])
