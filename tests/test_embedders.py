"""A contract every embedder satisfies (the hash fake and the real bundled model alike), and calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from rag.embeddings import HashEmbedder, check_compatible
from rag.errors import EmbedderMismatchError

TEXTS = ["Hold the RESET button for 12 seconds.", "Express shipping costs 14.90 euros.", "退货需要7天。", ""]


def _hash():
    return HashEmbedder(64, query_prefix="q: ", document_prefix="d: ")


def _real(request):
    return request.getfixturevalue("real_embedder")


_TORCH = []


def _real_on_torch(request):
    """The same model on the other backend (the default is onnx), loaded once."""
    if not _TORCH:
        from rag.config import EmbedConfig
        from rag.embeddings import load_embedder

        _TORCH.append(load_embedder(EmbedConfig(backend="torch")))
    return _TORCH[0]


# int8 is not here: its activation scales are per batch, so batching moves its vectors a little (tests/test_onnx.py)
EMBEDDERS = [
    pytest.param(lambda request: _hash(), id="hash"),
    pytest.param(_real, id="minilm", marks=pytest.mark.slow),
    pytest.param(_real_on_torch, id="minilm-torch", marks=pytest.mark.slow),
]


@pytest.fixture(params=EMBEDDERS)
def embedder(request):
    return request.param(request)


def test_vectors_are_normalised_float32_rows_in_input_order(embedder):
    docs = embedder.embed_documents(TEXTS)
    assert docs.dtype == np.float32 and docs.shape == (len(TEXTS), embedder.dim) and docs.flags["C_CONTIGUOUS"]
    norms = np.linalg.norm(docs[:3], axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    one_by_one = np.stack([embedder.embed_documents([t])[0] for t in TEXTS[:3]])
    np.testing.assert_allclose(docs[:3], one_by_one, atol=1e-5)  # batching never changes a vector
    assert embedder.embed_documents([]).shape == (0, embedder.dim)
    queries = embedder.embed_queries(TEXTS[:2])
    assert queries.shape == (2, embedder.dim) and float(queries[0] @ docs[0]) > float(queries[0] @ docs[1])


def test_tokens_coverage_and_description(embedder):
    assert embedder.count_tokens("Hold the RESET button") > 0 and embedder.count_tokens("") == 0
    assert 0 < embedder.max_tokens <= 512
    assert 0.0 <= embedder.coverage("退货需要几天") <= embedder.coverage("How long is the warranty?") == 1.0
    described = embedder.describe()
    assert {"id", "dim", "query_prefix", "document_prefix", "normalized"} <= set(described)
    assert described["dim"] == embedder.dim and described["id"] == embedder.id
    check_compatible(described, embedder.describe())  # an index built with it accepts it
    with pytest.raises(EmbedderMismatchError, match="rebuild"):
        check_compatible(described, {**described, "id": "another-model"})


def test_calibrate_fits_the_refusal_threshold_on_labelled_questions(tmp_path, kb):
    from rag.evidence import ReaderModel

    assert run_cli("index", "kb", "--index", "idx", "--embedder", "hash", cwd=tmp_path).returncode == 0
    (tmp_path / "rag.toml").write_text('[answer]\nscorer = "none"\n', encoding="utf-8")
    rows = [
        ("How long do I hold the RESET button?", ["12 seconds"], "router.md"),
        ("What colour does the LED blink after a reset?", ["amber"], "router.md"),
        ("What does solid red mean?", ["hardware fault"], "router.md"),
        ("How much does express shipping cost?", ["14.90 euros"], "shipping.txt"),
        ("How fast is express shipping?", ["1 business day"], "shipping.txt"),
        ("退货期限是几天？", ["7 天"], "退货.md"),
    ]
    records = [
        {"question": q, "answers": a, "sources": [s], "answerable": True, "split": "train"} for q, a, s in rows
    ] + [
        {"question": "Who won the football world cup in 1990?", "answers": [], "answerable": False, "split": "train"},
        {"question": "What does solid red mean?", "answers": ["fault"], "answerable": True, "split": "test"},
    ]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    res = run_cli("calibrate", "--questions", "q.jsonl", "--index", "idx", "--out", "r.json", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)  # 5 answerable English questions: too few to choose a 5% quantile from
    assert info["groups"]["read"]["kept"] == "base" and info["groups"]["read"]["too_few"] == 20
    args = ("calibrate", "--questions", "q.jsonl", "--index", "idx", "--out", "r.json", "--false-refusal", "0.2")
    res = run_cli(*args, "--json", cwd=tmp_path)  # a 20% quantile: 5 are enough
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["questions"] == 7 and info["groups"]["read"]["threshold_from"] == 6  # English: threshold only
    unread = info["groups"]["unread"]  # one Chinese question: kept as shipped, how it does on it reported
    assert unread["kept"] == "base" and unread["questions"] == 1 and unread["threshold"] == unread["base_threshold"]
    fitted = ReaderModel.load(tmp_path / "r.json")
    assert 0 < fitted.refusal["read"]["threshold"] < 1
    (tmp_path / "rag.toml").write_text('[answer]\nscorer = "none"\nreader = "r.json"\n', encoding="utf-8")
    asked = run_cli("ask", "How long do I hold the RESET button?", "--index", "idx", "--json", cwd=tmp_path)
    assert asked.returncode == 0 and "12 seconds" in json.loads(asked.stdout)["answer"], asked.stderr
    res = run_cli("calibrate", "--questions", "missing.jsonl", "--index", "idx", cwd=tmp_path)
    assert res.returncode == 1 and "missing.jsonl does not exist" in res.stderr
    (tmp_path / "bad.jsonl").write_text('{"question": "x", "answerable": false, "split": "train"}\n', encoding="utf-8")
    res = run_cli("calibrate", "--questions", "bad.jsonl", "--index", "idx", cwd=tmp_path)
    assert res.returncode == 1 and "needs" in res.stderr and "Traceback" not in res.stderr


def test_a_chinese_question_naming_a_product_is_mostly_unread_by_an_english_model():
    """Coverage counts a Chinese character as a word, whatever number of subword tokens a Latin name makes:
    "如何设置 HomeHub R7？" is a Chinese question for a model that reads English only (the reader then scores it
    with the Chinese models), "What is 宁巴's phone number?" an English one."""
    from rag.embeddings import coverage_of

    letters = lambda text: [c for c in text if not c.isspace()]  # noqa: E731  (a tokenizer splitting every letter)
    assert coverage_of("如何设置 HomeHub R7？", ["en"], letters, None) < 0.5
    assert coverage_of("What is 宁巴's phone number?", ["en"], letters, None) > 0.5
    assert coverage_of("如何设置 HomeHub R7？", ["zh"], letters, None) == 1.0
