"""`rag index --engine ray`: Ray (local mode on this machine) builds the same index as the local engine."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import CORPUS

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def _read(index):
    from rag import store

    manifest = store.read_manifest(index)
    gen = store.generation_path(index, manifest)
    chunks = (gen / store.CHUNKS).read_text(encoding="utf-8")
    data = manifest.to_dict()
    data.pop("generation", None)
    data.pop("updated", None)
    data.pop("created", None)
    return data, chunks, np.load(gen / store.VECTORS)


def _same(a, b, atol=1e-6):
    ma, ca, va = _read(a)
    mb, cb, vb = _read(b)
    assert ma == mb
    assert ca == cb  # same chunks, same ids, same order
    np.testing.assert_allclose(va, vb, atol=atol)


def test_ray_engine_builds_the_same_index_incrementally(in_tmp, kb, hash_embedder):
    from rag.ingest import build_index

    (kb / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    # an FAQ file with one broken record: the others are indexed by either engine, the broken one reported
    (kb / "faq.jsonl").write_text('{"question": "Do you ship abroad?", "answer": "Yes."}\n{cut sh\n', encoding="utf-8")
    local = build_index([kb], "local", embedder=hash_embedder, progress=False)
    distributed = build_index([kb], "ray", embedder=hash_embedder, progress=False, engine="ray")
    assert distributed.to_dict()["files"] == local.to_dict()["files"]
    assert [(s.source, s.reason) for s in distributed.skipped] == [(s.source, s.reason) for s in local.skipped]
    assert sorted(s.source for s in distributed.skipped) == ["kb/broken.pdf", "kb/faq.jsonl"]
    assert "kb/faq.jsonl" in distributed.indexed
    _same(in_tmp / "local", in_tmp / "ray")

    (kb / "shipping.txt").write_text("Express shipping now costs 19.90 euros.\n", encoding="utf-8")
    (kb / "new.md").write_text("# New\n\nA new page about warranty claims.\n", encoding="utf-8")
    (kb / "router.md").unlink()
    local = build_index([kb], "local", embedder=hash_embedder, progress=False)
    distributed = build_index([kb], "ray", embedder=hash_embedder, progress=False, engine="ray")
    assert distributed.embedded == local.embedded == 2  # only what changed
    assert distributed.removed == local.removed == ["kb/router.md"]
    _same(in_tmp / "local", in_tmp / "ray")


def test_cli_engine_ray(in_tmp, kb):
    from conftest import run_cli

    done = run_cli("index", str(kb), "--index", "r", "--engine", "ray", "--embedder", "hash:64", "--json", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files"]["indexed"] == 3


@pytest.mark.slow
def test_ray_engine_matches_local_with_the_real_embedder(in_tmp, real_embedder):
    """The sample knowledge base (every format, English and Chinese) with all-MiniLM-L6-v2."""
    from rag.ingest import build_index

    shutil.copytree(CORPUS, in_tmp / "corpora")
    build_index(["corpora"], "local", embedder=real_embedder, progress=False)
    build_index(["corpora"], "ray", progress=False, engine="ray")
    _same(in_tmp / "local", in_tmp / "ray", atol=1e-5)
