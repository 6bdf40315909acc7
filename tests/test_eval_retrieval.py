"""rag.eval.retrieval (`rag eval retrieval`): retrieval metrics alone, on BEIR-shaped data."""

import json

import pytest
from conftest import run_cli
from test_datasets import SQUAD, write_beir

from rag.embeddings import HashEmbedder
from rag.errors import ConfigError
from rag.eval.datasets import read_beir
from rag.eval.retrieval import evaluate


@pytest.fixture
def beir_dir(tmp_path):
    return write_beir(tmp_path / "tiny")


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_evaluate_perfect_on_easy_data(beir_dir, mode):
    report = evaluate(read_beir(beir_dir), modes=[mode], embedder=HashEmbedder(64))
    assert report["queries"] == 2 and report["documents"] == 3 and report["dataset"] == "tiny"
    assert report["modes"][mode]["ndcg@10"] == pytest.approx(1.0)
    assert report["modes"][mode]["mrr@10"] == pytest.approx(1.0)


def test_evaluate_limit_and_bad_mode(beir_dir):
    report = evaluate(read_beir(beir_dir), modes=["bm25"], limit=1, embedder=HashEmbedder(64))
    assert report["queries"] == 1
    with pytest.raises(ConfigError, match="mode must be dense, bm25 or hybrid, got 'sparse'"):
        evaluate(read_beir(beir_dir), modes=["sparse"], embedder=HashEmbedder(64))


def test_eval_retrieval_cli_on_squad(tmp_path):
    (tmp_path / "squad.json").write_text(json.dumps(SQUAD), encoding="utf-8")
    done = run_cli(
        "eval", "retrieval", "--squad", "squad.json", "--mode", "bm25", "--embedder", "hash:64", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dataset"] == "squad" and report["documents"] == 3 and report["queries"] == 2
    assert set(report["modes"]["bm25"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    done = run_cli("eval", "retrieval", "--cmrc", "missing.json", cwd=tmp_path)
    assert done.returncode == 1 and "cmrc data missing.json does not exist" in done.stderr
