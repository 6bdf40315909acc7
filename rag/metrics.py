"""Retrieval metrics, computed as trec_eval / pytrec_eval (and therefore MTEB and BEIR) compute them.

Pure functions over ranked id lists and graded relevance judgements (`qrels`: {doc_id: grade}); grades
<= 0 count as not relevant. nDCG uses linear gains (gain = grade), like trec_eval's ndcg_cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the top `k`.

    >>> round(ndcg_at_k(["a", "b", "c"], {"b": 1}, 10), 4)   # 1/log2(3) / 1
    0.6309
    """
    dcg = sum(qrels.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]) if qrels.get(doc, 0) > 0)
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top `k`.

    >>> recall_at_k(["a", "b"], {"b": 1, "z": 2}, 2)
    0.5
    """
    relevant = {doc for doc, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top `k`, else 0.

    >>> mrr_at_k(["a", "b", "c"], {"c": 1}, 10)
    0.3333333333333333
    """
    for i, doc in enumerate(ranked[:k]):
        if qrels.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def retrieval_metrics(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, recall@10, recall@100 and MRR@10 over the judged queries (those in `qrels`).

    A judged query missing from `run` scores 0 on every metric.
    """
    names = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
    totals = dict.fromkeys(names, 0.0)
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    for qid in judged:
        ranked = list(run.get(qid, ()))
        rel = qrels[qid]
        totals["ndcg@10"] += ndcg_at_k(ranked, rel, 10)
        totals["recall@10"] += recall_at_k(ranked, rel, 10)
        totals["recall@100"] += recall_at_k(ranked, rel, 100)
        totals["mrr@10"] += mrr_at_k(ranked, rel, 10)
    n = len(judged)
    return {name: (value / n if n else 0.0) for name, value in totals.items()}
