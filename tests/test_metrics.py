import math

import pytest

from rag.metrics import mrr_at_k, ndcg_at_k, recall_at_k, retrieval_metrics


def test_ndcg_hand_computed_graded():
    # ranks: d1 (grade 2), d2 (0), d3 (1); ideal: 2, 1
    dcg = 2 / math.log2(2) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["d1", "d2", "d3"], {"d1": 2, "d3": 1}, 10) == pytest.approx(dcg / idcg)


def test_ndcg_cutoff_and_perfect():
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a": 1}, 10) == 0.0


def test_recall_and_mrr():
    assert recall_at_k(["a", "b", "c"], {"c": 1, "d": 1}, 2) == 0.0
    assert recall_at_k(["a", "b", "c"], {"c": 1, "d": 1}, 3) == 0.5
    assert mrr_at_k(["a", "b"], {"b": 1}) == 0.5
    assert mrr_at_k(["a"] * 11 + ["b"], {"b": 1}, 10) == 0.0
    assert recall_at_k(["a"], {"a": 0}, 1) == 0.0  # grade 0 is not relevant


def test_retrieval_metrics_averages_over_judged_queries():
    run = {"q1": ["a"], "q2": ["x"]}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}  # q3 missing from the run counts as 0
    m = retrieval_metrics(run, qrels)
    assert m["recall@10"] == pytest.approx(1 / 3)
    assert m["mrr@10"] == pytest.approx(1 / 3)
