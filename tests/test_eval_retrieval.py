import json

import pytest
from conftest import SHARED_DATA

from rag.beir import evaluate, from_cmrc, from_squad, load_beir
from rag.embeddings import HashEmbedder
from rag.errors import ConfigError


@pytest.fixture
def beir_dir(tmp_path):
    d = tmp_path / "tiny"
    (d / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Router", "text": "Hold the reset button for twelve seconds."},
        {"_id": "d2", "title": "Shipping", "text": "Express delivery takes one business day."},
        {"_id": "d3", "title": "", "text": "Refunds arrive within five business days."},
    ]
    (d / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus) + "\n")
    queries = [
        {"_id": "q1", "text": "reset button seconds"},
        {"_id": "q2", "text": "refund days"},
        {"_id": "q9", "text": "unjudged"},
    ]
    (d / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\n")
    return d


def test_load_keeps_judged_queries_only(beir_dir):
    data = load_beir(beir_dir)
    assert set(data.queries) == {"q1", "q2"} and data.qrels["q2"] == {"d3": 2}
    assert data.corpus["d1"]["title"] == "Router"


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_evaluate_perfect_on_easy_data(beir_dir, mode):
    report = evaluate(load_beir(beir_dir), modes=[mode], embedder=HashEmbedder(64))
    assert report["queries"] == 2 and report["documents"] == 3
    assert report["modes"][mode]["ndcg@10"] == pytest.approx(1.0)
    assert report["modes"][mode]["mrr@10"] == pytest.approx(1.0)


def test_bad_beir_folders_are_explained(tmp_path, beir_dir):
    with pytest.raises(ConfigError, match="does not exist"):
        load_beir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="dev.tsv is missing"):
        load_beir(beir_dir, split="dev")
    (beir_dir / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n{broken\n')
    with pytest.raises(ConfigError, match="line 2"):
        load_beir(beir_dir)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data not present")
def test_public_data_converters():
    squad = from_squad(SHARED_DATA / "squad2-dev-half" / "dev-v2.0.json")
    assert len(squad.corpus) == 646 and len(squad.queries) == 2910  # answerable questions only
    cmrc = from_cmrc(SHARED_DATA / "cmrc2018-dev" / "cmrc2018_dev.json")
    assert len(cmrc.corpus) == 848 and len(cmrc.queries) == 3219
