"""The on-disk index: a folder with a manifest and one complete generation of data.

    indexes/<name>/
      manifest.json       format version, embedder, chunker settings, one content hash per source file,
                          and the name of the current generation. Replacing this file commits a change.
      gen-000007/
        chunks.jsonl      one chunk per line (human-readable twin of the vectors)
        vectors.npy       float32 (n, dim), row i = line i of chunks.jsonl
        dense.faiss       the FAISS index over those rows
        bm25/             the keyword index over the same rows

Writes are atomic: a new generation is written and flushed in a temporary folder, renamed into place, and
only then does the manifest (written to a temporary file and renamed) point at it. A process killed at any
moment leaves either the old or the new state, both loadable. One writer at a time (a lock file).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import fsync_dir, fsync_tree, write_json
from .errors import ConfigError, IndexFormatError, IndexLockedError
from .types import Chunk

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
KEYWORDS = "bm25"


@dataclass
class Manifest:
    """What an index holds and how it was built. `files` maps each source to its hash, size, mtime, chunks."""

    embedder: dict
    chunker: dict
    index: dict
    files: dict[str, dict] = field(default_factory=dict)
    generation: str = ""
    created: str = ""
    updated: str = ""
    format_version: int = FORMAT_VERSION
    chunks: int = 0

    def to_dict(self) -> dict:
        return {
            "format_version": self.format_version,
            "generation": self.generation,
            "created": self.created,
            "updated": self.updated,
            "embedder": self.embedder,
            "chunker": self.chunker,
            "index": self.index,
            "chunks": self.chunks,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, data: dict, where: Path) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexFormatError(
                f"index {where} has format version {version!r}; this rag reads version {FORMAT_VERSION}. "
                "Rebuild it with `rag index --rebuild`."
            )
        try:
            return cls(
                embedder=data["embedder"],
                chunker=data["chunker"],
                index=data["index"],
                files=data.get("files", {}),
                generation=data["generation"],
                created=data.get("created", ""),
                updated=data.get("updated", ""),
                chunks=int(data.get("chunks", 0)),
            )
        except KeyError as exc:
            raise IndexFormatError(f"index manifest {where / MANIFEST} lacks {exc}; rebuild the index") from exc


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(folder: Path) -> Manifest | None:
    """The committed manifest of the index in `folder`, or None when there is no index there yet."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexFormatError(
            f"index manifest {path} cannot be read ({exc}); rebuild with `rag index --rebuild`"
        ) from exc
    return Manifest.from_dict(data, folder)


def require_manifest(folder: Path) -> Manifest:
    manifest = read_manifest(folder)
    if manifest is None:
        hint = (
            "run `make index`"
            if folder.as_posix().endswith("indexes/default")
            else f"run `rag index PATH --index {folder}`"
        )
        raise IndexFormatError(f"no index at {folder}: {hint} first")
    return manifest


def write_chunks(path: Path, chunks: list[Chunk]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")


def read_chunks(path: Path) -> list[Chunk]:
    with open(path, encoding="utf-8") as fh:
        return [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]


def generation_path(folder: Path, manifest: Manifest) -> Path:
    path = folder / manifest.generation
    if not path.is_dir():
        raise IndexFormatError(f"index {folder} points at {manifest.generation}, which is missing; rebuild the index")
    return path


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """Hold the index's writer lock (released when the process dies, so a crash never leaves it stuck)."""
    import fcntl

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"index {folder} is a file, not an index folder; name a folder (e.g. indexes/mine)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the index folder {folder}: {exc.strerror or exc}; name a folder you can write to"
        ) from exc
    with open(folder / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise IndexLockedError(f"another process is writing the index {folder}; wait for it to finish") from exc
            raise
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class GenerationWriter:
    """Write a new generation next to the current one, then commit it. Use inside `write_lock`."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            previous = read_manifest(folder)  # what is committed now, whatever the caller reuses of it
        except IndexFormatError:
            previous = None  # unreadable: it will be replaced, and nothing of it is worth keeping
        self.previous = previous
        number = 1
        if previous is not None and previous.generation.startswith("gen-"):
            number = int(previous.generation[4:]) + 1
        existing = [p.name for p in folder.glob("gen-*")]
        while f"gen-{number:06d}" in existing:  # a leftover from a crash after rename, before commit
            number += 1
        self.name = f"gen-{number:06d}"
        self.tmp = folder / f".{self.name}.tmp-{os.getpid()}"
        self.clean_leftovers()
        self.tmp.mkdir(parents=True)

    @property
    def path(self) -> Path:
        return self.tmp

    def clean_leftovers(self) -> None:
        """Remove temporary folders of crashed writers and generations no manifest points at."""
        current = self.previous.generation if self.previous else None
        for child in self.folder.iterdir():
            if child.name.startswith(".gen-") or (child.name.startswith("gen-") and child.name != current):
                shutil.rmtree(child, ignore_errors=True)
            elif child.name.startswith(f".{MANIFEST}.tmp"):
                child.unlink(missing_ok=True)

    def commit(self, manifest: Manifest) -> None:
        fsync_tree(self.tmp)
        os.rename(self.tmp, self.folder / self.name)  # a new name: nothing is replaced yet
        fsync_dir(self.folder)
        manifest.generation = self.name
        manifest.updated = now()
        manifest.created = self.previous.created if self.previous and self.previous.created else manifest.updated
        write_json(self.folder / MANIFEST, manifest.to_dict())  # replacing the manifest commits
        # the old generation is garbage now; readers that already opened it keep their file handles
        if self.previous is not None and self.previous.generation != self.name:
            shutil.rmtree(self.folder / self.previous.generation, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def load_vectors(gen: Path, mmap: bool = True) -> np.ndarray:
    return np.load(gen / VECTORS, mmap_mode="r" if mmap else None)


def save_vectors(gen: Path, vectors: np.ndarray) -> None:
    np.save(gen / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
