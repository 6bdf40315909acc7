"""The embedder on ONNX Runtime: same vectors as torch, export once and atomically, nothing heavy on the answer path."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA, run_cli

from rag.config import EmbedConfig
from rag.embeddings import check_compatible
from rag.errors import ConfigError
from rag.onnx_embed import normalize, pool

HEAVY = ("torch", "transformers", "sentence_transformers")
SQUAD = SHARED_DATA / "squad2-dev-half" / "dev-v2.0.json"


# Settings and compatibility (no model) -------------------------------------------------------------------------


def test_backend_and_quantize_are_checked():
    assert EmbedConfig(backend="onnx", quantize="int8").quantize == "int8"
    with pytest.raises(ConfigError, match="backend"):
        EmbedConfig(backend="tensorrt")
    with pytest.raises(ConfigError, match="quantize"):
        EmbedConfig(backend="onnx", quantize="int4")
    with pytest.raises(ConfigError, match="needs backend = 'onnx'"):
        EmbedConfig(backend="torch", quantize="int8")


def test_an_index_of_one_backend_accepts_queries_of_the_other():
    torch_built = {"id": "m", "dim": 384, "query_prefix": "", "document_prefix": "", "backend": "torch"}
    check_compatible(torch_built, {**torch_built, "backend": "onnx", "quantize": "int8"})
    check_compatible({**torch_built, "backend": "onnx", "quantize": "int8"}, torch_built)
    old_manifest = {"id": "m", "dim": 384, "query_prefix": "", "document_prefix": ""}  # written before backends
    check_compatible(old_manifest, {**old_manifest, "backend": "onnx", "quantize": "none"})


# Pooling in numpy, checked against sentence-transformers' own --------------------------------------------------


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pool_matches_sentence_transformers(mode, side):
    import torch
    from sentence_transformers.models import Pooling

    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((4, 7, 5)).astype(np.float32)
    lengths = [7, 3, 1, 5]
    mask = np.zeros((4, 7), dtype=np.int64)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, 7 - n :] = 1
    ours = pool(tokens, mask, [mode])
    features = {"token_embeddings": torch.from_numpy(tokens), "attention_mask": torch.from_numpy(mask)}
    theirs = Pooling(5, pooling_mode=mode)(features)["sentence_embedding"].numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_pool_concatenates_modes_and_normalize_keeps_zero_rows():
    tokens = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    both = pool(tokens, np.array([[1, 1, 1]]), ["cls", "mean"])
    assert both.shape == (1, 8) and both[0, :4].tolist() == [0, 1, 2, 3] and both[0, 4:].tolist() == [4, 5, 6, 7]
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    with pytest.raises(ConfigError, match="backend = 'torch'"):
        pool(tokens, np.array([[1, 1, 1]]), ["median"])


# The real bundled model ----------------------------------------------------------------------------------------


def _real_texts() -> list[str]:
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"] if SQUAD.is_file() else []
    paragraphs = [p["context"] for article in data[:6] for p in article["paragraphs"][:10]]
    questions = [q["question"] for article in data[:3] for p in article["paragraphs"][:5] for q in p["qas"][:2]]
    return (
        paragraphs
        + questions
        + [
            "Hold the RESET button for 12 seconds until the LED blinks amber.",
            "Express shipping costs 14.90 euros and takes 1 business day.",
            "自签收之日起 7 天内可无理由退货。",
            "reset " * 400,  # past max_seq_length: both backends must cut at the same token
            "",
        ]
    )


@pytest.fixture(scope="module")
def backends():
    from rag.embeddings import load_embedder

    return {
        name: load_embedder(EmbedConfig(backend=backend, quantize=quantize))
        for name, backend, quantize in (("torch", "torch", "none"), ("onnx", "onnx", "none"), ("int8", "onnx", "int8"))
    }


@pytest.mark.slow
def test_onnx_vectors_match_torch_on_real_text(backends):
    texts = _real_texts()
    assert len(texts) > 40  # the SQuAD file is there: real paragraphs, not only the handful above
    torch_vecs = backends["torch"].embed_documents(texts)
    onnx_vecs = backends["onnx"].embed_documents(texts)
    int8_vecs = backends["int8"].embed_documents(texts)
    fp32 = np.sum(torch_vecs * onnx_vecs, axis=1)
    assert fp32.min() >= 0.999, (fp32.argmin(), fp32.min())
    int8 = np.sum(torch_vecs * int8_vecs, axis=1)
    assert int8.mean() >= 0.98 and int8.min() >= 0.95, (int8.mean(), int8.min())  # close, not equal
    queries = backends["onnx"].embed_queries(texts[:5])
    np.testing.assert_allclose(queries, backends["torch"].embed_queries(texts[:5]), atol=2e-3)


@pytest.mark.slow
def test_int8_vectors_stay_close_whatever_their_batch(backends):
    """Dynamic int8 scales activations per batch, so a text's vector moves a little with its batch-mates
    (fp32's does not); it must stay close to itself."""
    texts = _real_texts()[-12:-1]
    for name, floor in (("onnx", 0.99999), ("int8", 0.95)):
        batched = backends[name].embed_documents(texts)
        alone = np.stack([backends[name].embed_documents([t])[0] for t in texts])
        assert np.sum(batched * alone, axis=1).min() >= floor, name


@pytest.mark.slow
def test_onnx_counts_tokens_and_describes_itself_like_torch(backends):
    torch_e, onnx_e = backends["torch"], backends["onnx"]
    for text in _real_texts()[-6:] + ["LX-300 路由器 reset", "naïve café — “quotes”"]:
        assert onnx_e.count_tokens(text) == torch_e.count_tokens(text), text
        assert onnx_e.coverage(text) == pytest.approx(torch_e.coverage(text)), text
    assert (onnx_e.dim, onnx_e.max_tokens, onnx_e.max_seq_length) == (torch_e.dim, torch_e.max_tokens, 256)
    described = backends["int8"].describe()
    assert described["backend"] == "onnx" and described["quantize"] == "int8"
    assert torch_e.describe()["backend"] == "torch"
    assert {k: v for k, v in described.items() if k not in ("backend", "quantize")} == {
        k: v for k, v in torch_e.describe().items() if k not in ("backend", "quantize")
    }
    check_compatible(torch_e.describe(), described)


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAG_CACHE", str(cache))
    return cache


@pytest.mark.slow
def test_a_models_own_pooling_and_prefixes_are_kept(tmp_path, own_cache):
    """A model with CLS pooling (read from its 1_Pooling/config.json) and e5-style prefixes."""
    from sentence_transformers import SentenceTransformer, models

    from rag.embeddings import load_embedder
    from rag.models import bundled_embedder, onnx_export_path

    base = SentenceTransformer(str(bundled_embedder(EmbedConfig.model)), device="cpu")
    cls_model = SentenceTransformer(modules=[base[0], models.Pooling(384, pooling_mode="cls")], device="cpu")
    folder = tmp_path / "cls-model"
    cls_model.save(str(folder))
    config = EmbedConfig(model=str(folder), query_prefix="query: ", document_prefix="passage: ")
    texts = _real_texts()[:12]
    torch_e = load_embedder(config)
    onnx_e = load_embedder(dataclasses.replace(config, backend="onnx"))
    cos = np.sum(torch_e.embed_queries(texts) * onnx_e.embed_queries(texts), axis=1)
    assert cos.min() >= 0.999
    cos = np.sum(torch_e.embed_documents(texts) * onnx_e.embed_documents(texts), axis=1)
    assert cos.min() >= 0.999
    shuffled = np.sum(onnx_e.embed_documents(texts) * torch_e.embed_documents(texts)[::-1], axis=1)
    assert shuffled.min() < 0.99  # the comparison can fail: other texts give other vectors
    meta = json.loads((onnx_export_path(str(folder)) / "export.json").read_text())
    assert meta["pooling"] == ["cls"] and meta["inputs"] == ["input_ids", "token_type_ids", "attention_mask"]


@pytest.mark.slow
def test_export_is_made_once_atomically_and_redone_when_the_model_changes(tmp_path, own_cache):
    import shutil

    from rag.models import bundled_embedder, onnx_export_path, prepare_embedder

    model = tmp_path / "model"
    shutil.copytree(bundled_embedder(EmbedConfig.model), model)
    notes: list[str] = []
    target = prepare_embedder(str(model), progress=notes.append)
    assert target == onnx_export_path(str(model)) and target.parent == own_cache / "onnx"
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "export.json"} <= {p.name for p in target.iterdir()}
    assert os.path.getsize(target / "model.int8.onnx") < os.path.getsize(target / "model.onnx") / 3
    assert len(notes) == 1 and "exporting" in notes[0]
    made = (target / "export.json").stat().st_mtime_ns
    assert prepare_embedder(str(model), progress=notes.append) == target and len(notes) == 1  # reused
    assert (target / "export.json").stat().st_mtime_ns == made
    os.utime(model / "model.safetensors", ns=(made, made + 1))  # the weights changed: the export is stale
    prepare_embedder(str(model), progress=notes.append)
    assert len(notes) == 2 and (target / "export.json").stat().st_mtime_ns != made
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary folder left behind


@pytest.mark.slow
def test_a_model_the_runtime_cannot_run_is_refused_and_leaves_nothing(tmp_path, own_cache):
    from sentence_transformers import SentenceTransformer, models

    from rag.models import bundled_embedder, prepare_embedder

    base = SentenceTransformer(str(bundled_embedder(EmbedConfig.model)), device="cpu")
    dense = models.Dense(384, 16)
    SentenceTransformer(modules=[base[0], base[1], dense], device="cpu").save(str(tmp_path / "dense"))
    with pytest.raises(ConfigError, match="backend = 'torch'"):
        prepare_embedder(str(tmp_path / "dense"))
    assert not (own_cache / "onnx").exists() or not any((own_cache / "onnx").iterdir())


# The answer path ----------------------------------------------------------------------------------------------


def _run_and_list_modules(args: list[str], cwd) -> tuple[str, list[str]]:
    """Run `rag ARGS` in a fresh interpreter; return its output and the heavy modules it imported."""
    code = (
        "import json, sys\nfrom rag.cli import main\ncode = main(sys.argv[1:])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY + ('jieba',)!r})\n"
        "print('MODULES=' + json.dumps(heavy)); sys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    out, _, modules = res.stdout.rpartition("MODULES=")
    return out, json.loads(modules)


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory):
    """The tiny knowledge base indexed with the default embedder on the ONNX backend (exported beforehand)."""
    from rag.models import prepare_embedder

    prepare_embedder()
    work = tmp_path_factory.mktemp("onnx-kb")
    (work / "kb").mkdir()
    (work / "kb" / "router.md").write_text(
        "# Router\n\n## Reset\n\nHold the RESET button for 12 seconds until the LED blinks amber.\n\n"
        "## Lights\n\nSolid red means a hardware fault.\n",
        encoding="utf-8",
    )
    (work / "kb" / "shipping.txt").write_text("Express shipping costs 14.90 euros and takes 1 business day.\n")
    res = run_cli("index", "kb", "--index", "idx", "--embed-backend", "onnx", cwd=work)
    assert res.returncode == 0, res.stderr
    return work


@pytest.mark.slow
def test_ask_and_search_never_import_torch_or_transformers(onnx_index):
    out, modules = _run_and_list_modules(["ask", "How long do I hold the RESET button?", "--index", "idx"], onnx_index)
    assert "12 seconds" in out
    assert modules == []  # no torch, no transformers, and no jieba for an English question
    out, modules = _run_and_list_modules(["search", "reset button", "--index", "idx", "-k", "1"], onnx_index)
    assert "kb/router.md" in out and modules == []
    out, modules = _run_and_list_modules(["search", "退货", "--index", "idx", "--mode", "bm25"], onnx_index)
    assert modules and all(m.split(".")[0] == "jieba" for m in modules)  # Chinese text loads jieba, and only it


@pytest.mark.slow
def test_switching_backends_never_forces_a_rebuild(onnx_index):
    manifest = json.loads((onnx_index / "indexes" / "idx" / "manifest.json").read_text())
    assert manifest["embedder"]["backend"] == "onnx" and manifest["embedder"]["quantize"] == "none"
    hits = {}
    for backend in ("onnx", "torch"):
        res = run_cli(
            "search", "solid red light", "--index", "idx", "--json", "--embed-backend", backend, cwd=onnx_index
        )
        assert res.returncode == 0, res.stderr
        hits[backend] = json.loads(res.stdout)["hits"]
    assert [h["chunk_id"] for h in hits["onnx"]] == [h["chunk_id"] for h in hits["torch"]]
    assert [h["scores"]["dense"] for h in hits["onnx"]] == pytest.approx(
        [h["scores"]["dense"] for h in hits["torch"]], abs=1e-3
    )
    (onnx_index / "kb" / "notice.txt").write_text("The office is closed on public holidays.\n")
    res = run_cli(
        "index", "kb", "--index", "idx", "--embed-backend", "onnx", "--embed-quantize", "int8", "--json", cwd=onnx_index
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["files"]["indexed"] == 1 and summary["files"]["unchanged"] == 2  # only the new file embedded
    manifest = json.loads((onnx_index / "indexes" / "idx" / "manifest.json").read_text())
    assert manifest["embedder"]["quantize"] == "int8"  # recorded like any embedder setting


@pytest.mark.slow
def test_first_use_exports_by_itself(tmp_path, own_cache, onnx_index):
    res = run_cli("search", "reset", "--index", str(onnx_index / "indexes" / "idx"), "-k", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "exporting embedder" in res.stderr and "router.md" in res.stdout
    assert (own_cache / "onnx" / "sentence-transformers--all-MiniLM-L6-v2" / "export.json").is_file()
    res = run_cli("prepare", "--only", "embedder", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "embedder ready (ONNX)" in res.stdout and "exporting" not in res.stderr  # already there
