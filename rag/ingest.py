"""Build or update an index from files: discover -> load -> chunk -> embed -> store.

Incremental: a file whose size and mtime match the manifest is not even read; one whose bytes hash the
same is kept as is; only new or changed files are loaded, chunked and embedded, and the chunks of files
that disappeared from the indexed paths are dropped. When nothing changed nothing is written and no model
is loaded. A file that cannot be read is reported in the summary and skipped; if no file at all can be
indexed, `NothingIndexedError` is raised and the previous index is left as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import store
from .atomic import write_json
from .chunks import Chunker
from .config import Config
from .documents import Skipped, SourceFile, discover, load_file
from .embeddings import Embedder, embedder_id, load_embedder
from .errors import ConfigError, LoadError, NothingIndexedError, PartlyLoaded
from .keywords import TOKENIZER
from .types import Chunk

log = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    """What one `build_index` run did."""

    index: str
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0  # chunks in the index afterwards
    embedded: int = 0  # chunks embedded by this run
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "files": {
                "indexed": len(self.indexed),
                "unchanged": len(self.unchanged),
                "removed": len(self.removed),
                "skipped": [{"path": s.source, "reason": s.reason} for s in self.skipped],
            },
            "chunks": self.chunks,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
        }


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _under(source_path: Path, roots: list[Path]) -> bool:
    return any(source_path == root or root in source_path.parents for root in roots)


def build_index(
    paths: Iterable[str | os.PathLike] = ("corpora",),
    index_dir: str | os.PathLike = "indexes/default",
    config: Config | None = None,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    progress: bool | None = None,
    explicit: Iterable[str] = (),
    engine: str = "local",
    address: str | None = None,
) -> IndexSummary:
    """Index the files under `paths` into `index_dir`, embedding only what changed.

    An existing index keeps its own embedder and chunk settings unless `explicit` names the config
    sections the caller chose ("embed", "chunk"). A different embedder needs `rebuild=True`; different chunk
    settings re-chunk every file. `embedder` overrides the one `config` names (tests pass a HashEmbedder).
    Raises `NothingIndexedError` when no file can be indexed (the previous index stays as it was),
    `LoadError` for a path that does not exist, `IndexLockedError` when another process is writing.
    `engine="ray"` reads, chunks and embeds on a Ray cluster (`address`, else a local Ray instance; see
    `rag.distributed`); the index written is the same.
    """
    if engine not in ("local", "ray"):
        raise ConfigError(f"`engine` must be local or ray, got {engine!r}")
    if engine == "ray":
        from .distributed import require_ray

        require_ray()  # fail before any work when Ray is missing
    started = time.perf_counter()
    config = config or Config()
    explicit = set(explicit) | ({"embed"} if embedder is not None else set())
    folder = Path(index_dir)
    # one path given as a string is one path, not one path per character
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ConfigError("no paths to index: give files or folders of documents")
    if progress is None:
        progress = sys.stderr.isatty()
    summary = IndexSummary(index=folder.as_posix())
    files, summary.skipped = discover(paths)
    roots = [Path(p).expanduser().resolve() for p in paths]

    with store.write_lock(folder):
        previous = None if rebuild else store.read_manifest(folder)
        if previous is not None:
            config = _adopt_stored_settings(config, previous, explicit)
            wanted = embedder.id if embedder is not None else embedder_id(config.embed.model)
            if wanted != previous.embedder.get("id"):
                raise ConfigError(
                    f"index {folder} was built with embedder '{previous.embedder.get('id')}', not '{wanted}'; "
                    "rebuild it with `rag index --rebuild` to switch embedders"
                )
            if previous.index.get("factory") != config.index.factory or previous.chunker.get("requested") != _requested(
                config
            ):
                previous_for_rows = None  # index type or chunking changed: every file is re-done
            else:
                previous_for_rows = previous
        else:
            previous_for_rows = None

        old_files = previous_for_rows.files if previous_for_rows else {}
        if previous is not None:
            files = _known_names(files, previous.files)
        changed, entries = _classify(files, old_files, summary)
        seen = {sf.source for sf in files}
        kept_elsewhere = {}
        for source, entry in (previous.files if previous else {}).items():
            if source in seen:
                continue
            if _under(Path(entry["path"]) if entry.get("path") else Path(source).expanduser().resolve(), roots):
                summary.removed.append(source)
            elif source in old_files:
                kept_elsewhere[source] = entry  # indexed from other paths: not ours to drop
            else:
                summary.removed.append(source)  # cannot be kept: it would need re-chunking from files we lack

        stale_keywords = previous is not None and previous.index.get("keywords", 1) != TOKENIZER
        if not changed and not summary.removed and previous is not None and not stale_keywords:
            # nothing to do: no model loaded, nothing rewritten but fresher mtimes
            _refresh_mtimes(folder, previous, entries)
            summary.chunks = previous.chunks
            summary.seconds = time.perf_counter() - started
            return summary

        if not changed and not entries and not kept_elsewhere:
            raise NothingIndexedError(_nothing_message(paths, summary))
        if embedder is None:
            embedder = load_embedder(config.embed)
        chunker = Chunker(config.chunk, embedder.count_tokens, embedder.max_tokens)
        if engine == "ray":
            from . import distributed

            outcomes = [
                _Partly(o.documents, str(o)) if isinstance(o, PartlyLoaded) else o
                for o in distributed.load_and_chunk(changed, config.chunk, _embed_config(embedder), address)
            ]
        else:
            outcomes = (
                _chunk_file(sf, chunker) for sf in _progress(changed, progress and len(changed) > 20, "reading")
            )
        new_chunks = _collect(changed, outcomes, entries, old_files, summary)
        if not new_chunks and not summary.removed and previous_for_rows is not None and not stale_keywords:
            # every changed file failed and keeps its previous version: the index stays as it is
            summary.chunks = previous.chunks
            summary.seconds = time.perf_counter() - started
            return summary

        final_files = {**kept_elsewhere, **entries}
        if not final_files:
            raise NothingIndexedError(_nothing_message(paths, summary))

        keep_sources = set(final_files) - set(new_chunks)
        old_chunks: list[Chunk] = []
        old_vectors = np.zeros((0, embedder.dim), np.float32)
        if previous_for_rows is not None and keep_sources:
            gen = store.generation_path(folder, previous_for_rows)
            all_old = store.read_chunks(gen / store.CHUNKS)
            rows = [i for i, c in enumerate(all_old) if c.source in keep_sources]
            old_chunks = [all_old[i] for i in rows]
            old_vectors = np.asarray(store.load_vectors(gen)[rows], dtype=np.float32)

        fresh = [c for source in sorted(new_chunks) for c in new_chunks[source]]
        texts = [c.indexed_text for c in fresh]
        if engine == "ray":
            fresh_vectors = distributed.embed(texts, _embed_config(embedder), embedder.dim, address)
        else:
            fresh_vectors = embedder.embed_documents(texts, progress=progress and len(fresh) > 64)
        summary.embedded = len(fresh)

        chunks = old_chunks + fresh
        vectors = np.concatenate([old_vectors, fresh_vectors.reshape(-1, embedder.dim)])
        order = sorted(range(len(chunks)), key=lambda i: (chunks[i].source, chunks[i].ordinal))
        chunks = [chunks[i] for i in order]
        vectors = vectors[order]

        chunker_settings = {**chunker.settings(), "requested": _requested(config)}
        _write(folder, config, embedder, chunker_settings, chunks, vectors, final_files)
        summary.chunks = len(chunks)
        summary.seconds = time.perf_counter() - started
        return summary


def _requested(config: Config) -> dict:
    from .documents import PIPELINE_VERSION

    return {"size": config.chunk.size, "overlap": config.chunk.overlap, "pipeline": PIPELINE_VERSION}


def _adopt_stored_settings(config: Config, previous: store.Manifest, explicit: set[str]) -> Config:
    """`config` with the index's own embedder and chunk settings, except in the sections the caller chose."""
    embed, chunk = {}, {}
    if "embed" not in explicit:
        stored = previous.embedder
        embed = {
            "model": stored["id"],
            "query_prefix": stored.get("query_prefix", ""),
            "document_prefix": stored.get("document_prefix", ""),
        }
    if "chunk" not in explicit and previous.chunker.get("requested"):
        chunk = {"size": previous.chunker["requested"]["size"], "overlap": previous.chunker["requested"]["overlap"]}
    return config.override(embed=embed, chunk=chunk)


def _known_names(files: list[SourceFile], stored: dict[str, dict]) -> list[SourceFile]:
    """`files` under the names the index already gives them: a file indexed before from another working
    directory, or by its absolute path, keeps its name rather than being stored twice."""
    named = {entry["path"]: source for source, entry in stored.items() if entry.get("path")}
    return [SourceFile(sf.path, named.get(str(sf.path), sf.source)) for sf in files]


def _classify(files: list[SourceFile], old_files: dict, summary: IndexSummary) -> tuple[list[SourceFile], dict]:
    """Split `files` into changed ones and unchanged ones (by size+mtime, else by content hash)."""
    changed: list[SourceFile] = []
    entries: dict[str, dict] = {}
    for sf in files:
        try:
            st = sf.path.stat()
            entry = old_files.get(sf.source)
            where = str(sf.path)  # the file on disk: a name is relative to the directory rag ran in
            if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
                entries[sf.source] = {**entry, "path": where}
                summary.unchanged.append(sf.source)
                continue
            digest = file_hash(sf.path)
        except OSError as exc:
            summary.skipped.append(Skipped(sf.source, f"cannot be read: {exc.strerror or exc}"))
            continue
        if entry and entry.get("sha256") == digest:
            entries[sf.source] = {**entry, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "path": where}
            summary.unchanged.append(sf.source)
            continue
        changed.append(sf)
        entries[sf.source] = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "path": where}
    return changed, entries


@dataclass
class _Partly:
    """The chunks of the records of a file that could be read, and what was wrong with the others."""

    chunks: list[Chunk]
    reason: str


def _chunk_file(sf: SourceFile, chunker: Chunker) -> list[Chunk] | _Partly | Exception:
    try:
        return chunker.split(load_file(sf.path, sf.source))
    except PartlyLoaded as exc:
        return _Partly(chunker.split(exc.documents), str(exc))
    except Exception as exc:  # LoadError, or a parser bug on one hostile file: never abort the run
        if not isinstance(exc, LoadError):
            log.debug("unexpected error reading %s", sf.source, exc_info=True)
        return exc


def _collect(changed, outcomes, entries, old_files, summary) -> dict[str, list[Chunk]]:
    """Chunks per source from each file's outcome (its chunks or the exception that stopped it)."""
    new_chunks: dict[str, list[Chunk]] = {}
    for sf, outcome in zip(changed, outcomes):
        if isinstance(outcome, _Partly):  # indexed without its broken records, which are reported
            summary.skipped.append(Skipped(sf.source, outcome.reason))
            outcome = outcome.chunks
        if isinstance(outcome, list) and not outcome:
            outcome = LoadError("no text found in the file")
        if isinstance(outcome, Exception):
            reason = str(outcome) if isinstance(outcome, LoadError) else _unexpected(outcome)
            if sf.source in old_files:
                # nothing stored is lost to a file that broke: its previous version stays searchable (and its
                # old hash makes the next run try the file again); deleting the file removes it
                entries[sf.source] = old_files[sf.source]
                reason += "; its previously indexed version is kept"
            else:
                entries.pop(sf.source, None)
            summary.skipped.append(Skipped(sf.source, reason))
            continue
        new_chunks[sf.source] = outcome
        entries[sf.source]["chunks"] = len(outcome)
        summary.indexed.append(sf.source)
    return new_chunks


def _unexpected(exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith("cannot be read") else f"cannot be read ({type(exc).__name__}: {exc})"


def _embed_config(embedder: Embedder):
    """The settings that rebuild `embedder` in another process (Ray workers)."""
    from .config import EmbedConfig

    return getattr(embedder, "config", None) or EmbedConfig(model=embedder.id)


def _write(folder, config, embedder, chunker_settings, chunks, vectors, files) -> None:
    from .keywords import KeywordIndex
    from .vectors import VectorIndex

    writer = store.GenerationWriter(folder)
    try:
        store.write_chunks(writer.path / store.CHUNKS, chunks)
        store.save_vectors(writer.path, vectors)
        dense = VectorIndex.build(
            vectors, config.index.factory, config.index.nprobe, dim=embedder.dim, shard_size=config.index.shard_size
        )
        dense.save(writer.path / store.DENSE)
        KeywordIndex.build([c.indexed_text for c in chunks]).save(writer.path / store.KEYWORDS)
        manifest = store.Manifest(
            embedder=embedder.describe(),
            chunker=chunker_settings,
            index={
                "keywords": TOKENIZER,
                "factory": config.index.factory,
                "nprobe": config.index.nprobe,
                "refine": config.index.refine,
                "device": config.index.device,
            },
            files=dict(sorted(files.items())),
            chunks=len(chunks),
        )
        writer.commit(manifest)
    except BaseException:
        writer.abort()
        raise


def _refresh_mtimes(folder: Path, previous: store.Manifest, entries: dict[str, dict]) -> None:
    """Record new mtimes of files whose content did not change, so the next run need not hash them."""
    if all(previous.files.get(k) == v for k, v in entries.items()):
        return
    previous.files = {**previous.files, **entries}
    write_json(folder / store.MANIFEST, previous.to_dict())


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", file=sys.stderr)


def _nothing_message(paths, summary: IndexSummary) -> str:
    shown = ", ".join(str(p) for p in paths)
    if not summary.skipped:
        return f"no documents found under {shown}; supported files are .txt .md .html .pdf .docx .json .jsonl .csv"
    reasons = "; ".join(f"{s.source}: {s.reason}" for s in summary.skipped[:5])
    more = f" (and {len(summary.skipped) - 5} more)" if len(summary.skipped) > 5 else ""
    return f"no file under {shown} could be indexed: {reasons}{more}"
