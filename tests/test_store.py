"""The index folder (rag.store) and the write-then-replace helpers (rag.atomic), on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from rag import atomic, store
from rag.errors import IndexFormatError, IndexLockedError
from rag.types import Chunk


def _manifest(**kw):
    return store.Manifest(embedder={"id": "hash:8", "dim": 8}, chunker={"size": 200}, index={"factory": "Flat"}, **kw)


def _write_generation(folder, chunks, vectors):
    writer = store.GenerationWriter(folder)
    store.write_chunks(writer.path / store.CHUNKS, chunks)
    store.save_vectors(writer.path, vectors)
    writer.commit(_manifest(chunks=len(chunks)))
    return writer.name


def test_generations_commit_through_the_manifest_and_the_old_one_goes(tmp_path):
    chunks = [Chunk(id=f"a.md#{i}", source="a.md", ordinal=i, text=f"text {i}", context="A > B") for i in range(3)]
    vectors = np.eye(3, 8, dtype=np.float32)
    first = _write_generation(tmp_path, chunks, vectors)
    second = _write_generation(tmp_path, chunks[:2], vectors[:2])
    manifest = store.require_manifest(tmp_path)
    assert (first, second) == ("gen-000001", "gen-000002") and manifest.generation == second
    assert not (tmp_path / first).exists() and manifest.chunks == 2 and manifest.created
    gen = store.generation_path(tmp_path, manifest)
    assert store.read_chunks(gen / store.CHUNKS) == chunks[:2]  # the human-readable twin round-trips
    assert np.array_equal(store.load_vectors(gen), vectors[:2])
    assert json.loads((tmp_path / store.MANIFEST).read_text())["format_version"] == store.FORMAT_VERSION


def test_an_aborted_generation_leaves_the_committed_one(tmp_path):
    chunks = [Chunk(id="a.md#0", source="a.md", ordinal=0, text="kept")]
    committed = _write_generation(tmp_path, chunks, np.ones((1, 8), np.float32))
    writer = store.GenerationWriter(tmp_path)
    store.write_chunks(writer.path / store.CHUNKS, [])
    writer.abort()
    assert store.require_manifest(tmp_path).generation == committed and not writer.path.exists()


def test_missing_corrupt_and_dangling_manifests_are_clear_errors(tmp_path):
    assert store.read_manifest(tmp_path) is None
    with pytest.raises(IndexFormatError, match="no index at .*rag index PATH --index"):
        store.require_manifest(tmp_path)
    (tmp_path / store.MANIFEST).write_text("{not json")
    with pytest.raises(IndexFormatError, match="cannot be read.*rebuild"):
        store.read_manifest(tmp_path)
    (tmp_path / store.MANIFEST).write_text(json.dumps({**_manifest().to_dict(), "generation": "gen-000009"}))
    with pytest.raises(IndexFormatError, match="gen-000009, which is missing"):
        store.generation_path(tmp_path, store.read_manifest(tmp_path))
    data = _manifest().to_dict()
    del data["embedder"]
    (tmp_path / store.MANIFEST).write_text(json.dumps(data))
    with pytest.raises(IndexFormatError, match="lacks 'embedder'"):
        store.read_manifest(tmp_path)


def test_the_write_lock_keeps_a_second_process_out(tmp_path):
    code = (
        "import sys; from pathlib import Path; from rag import store\n"
        "try:\n    with store.write_lock(Path(sys.argv[1])): pass\nexcept Exception as e: print(type(e).__name__)"
    )
    with store.write_lock(tmp_path):
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, check=True
        )
        assert out.stdout.strip() == IndexLockedError.__name__
    with store.write_lock(tmp_path):  # released again
        pass


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError), atomic.atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half-written")
        raise RuntimeError("crash while writing")
    assert (target / "weights").read_text() == "v1"  # untouched by the failed write
    with atomic.atomic_dir(target) as tmp:
        (tmp / "other").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["other"]  # replaced, not merged
    with atomic.atomic_dir(target, keep_existing=True) as tmp:
        (tmp / "other").write_text("v3")
    assert (target / "other").read_text() == "v2"  # someone finished first: theirs is kept
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary leftovers


def test_atomic_write_text_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    atomic.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
