"""Evaluation metrics: retrieval (as trec_eval computes them), answers (as SQuAD's script does), uncertainty.

Retrieval: pure functions over ranked id lists and graded relevance judgements (`qrels`: {doc_id: grade});
grades <= 0 count as not relevant. nDCG uses linear gains (gain = grade), like trec_eval's ndcg_cut, and
therefore MTEB and BEIR.
Answers: exact match, token F1, ROUGE-L and contains-gold, without an LLM judge.
Uncertainty: bootstrap confidence intervals and a paired randomisation test between two systems.
Names: `ANSWER_METRICS` (the per-question answer scores, in report order), their `LABELS`, and which metrics
are better low (`LOWER_IS_BETTER`).

What this module does not do: decide which score applies to which question (`rag.eval.harness.score_row`) or
aggregate a run (`rag.eval.report`).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from ..text import CHAR_OR_WORD, CJK_CHARS, CJK_WIDE_CHAR, strip_citations

# The answer scores every prediction row carries (None where one does not apply), in the order reports show them.
ANSWER_METRICS = (
    "accuracy",
    "contains",
    "em",
    "f1",
    "rouge_l",
    "refusal_accuracy",
    "false_refusal",
    "citation_precision",
    "ungrounded",
)
# metrics where a lower value is better: a bare number in a thresholds file is their maximum, not a minimum
LOWER_IS_BETTER = frozenset({"false_refusal", "ungrounded", "latency_s", "latency_p50_s", "latency_p95_s"})
LABELS = {
    "accuracy": "Accuracy",
    "contains": "Contains gold",
    "em": "EM",
    "f1": "F1",
    "rouge_l": "ROUGE-L",
    "refusal_accuracy": "Refusal acc.",
    "false_refusal": "False refusal",
    "citation_precision": "Citation prec.",
    "ungrounded": "Ungrounded",
    "latency_s": "Latency (s)",
}


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


# ------------------------------------------------------------------------------------------ answer metrics
# Answers are scored against every gold answer and the best score is kept, as the SQuAD evaluation script
# does. English text is normalised exactly like SQuAD's official script (lower case, ASCII punctuation and
# articles removed, whitespace collapsed) and compared word by word. Text with Chinese characters is compared
# character by character (runs of Latin letters or digits stay one token), with all punctuation removed, as
# CMRC 2018's script segments it. Citation markers ("[1]", "[1, 2]") are removed from predictions first.

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = set(string.punctuation)
_CJK_OR_REST = re.compile(f"[{CJK_CHARS}]|[^\\W_{CJK_CHARS}]+")


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation.

    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'
    """
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str, chinese: bool | None = None) -> list[str]:
    """Tokens compared by F1, exact match and ROUGE-L: SQuAD words, or characters for Chinese (`chinese`
    None: when `text` has Chinese characters; a pair is compared one way, see `_best`).

    >>> answer_tokens("The R7 router."), answer_tokens("按住 RESET 键12秒。")
    (['r7', 'router'], ['按', '住', 'reset', '键', '12', '秒'])
    """
    if chinese if chinese is not None else CJK_WIDE_CHAR.search(text):
        tokens = []
        for match in CHAR_OR_WORD.finditer(text.lower()):
            # a run of CJK and digits matched by [^\W_]+ is split into characters, digits kept together
            tokens.extend(_CJK_OR_REST.findall(match.group()))
        return tokens
    return normalize_answer(text).split()


def _pair_tokens(prediction: str, gold: str) -> tuple[list[str], list[str]]:
    """Both sides tokenised the same way: as Chinese when either has Chinese characters, as CMRC's script
    does (else "客服热线：400-820-7788" would never match the gold "400-820-7788", which SQuAD's
    normalisation makes one token)."""
    chinese = bool(CJK_WIDE_CHAR.search(prediction) or CJK_WIDE_CHAR.search(gold))
    return answer_tokens(prediction, chinese), answer_tokens(gold, chinese)


def _best(prediction: str, golds: Sequence[str], score) -> float:
    golds = [g for g in golds if g.strip()]
    if not golds:
        return 0.0
    prediction = strip_citations(prediction)
    return max(score(*_pair_tokens(prediction, g)) for g in golds)


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer.

    >>> exact_match("the Normans [2]", ["Normans"]), exact_match("Normans in France", ["Normans"])
    (1.0, 0.0)
    """
    return _best(prediction, golds, lambda p, g: float(p == g))


def _overlap_f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD's token-overlap F1 (character overlap for Chinese), best over the gold answers.

    >>> round(token_f1("held for 12 seconds", ["12 seconds"]), 4)   # p = 2/4, r = 2/2
    0.6667
    """
    return _best(prediction, golds, _overlap_f1)


def _lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _rouge_l(pred: list[str], gold: list[str]) -> float:
    lcs = _lcs_length(pred, gold)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, golds: Sequence[str]) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens), best over the gold answers.

    >>> round(rouge_l("press and hold reset", ["hold the reset button"]), 4)   # LCS "hold reset": p 2/4, r 2/3
    0.5714
    """
    return _best(prediction, golds, _rouge_l)


def _spaced_symbols(text: str) -> str:
    """`text` with punctuation and symbols outside ASCII (currency signs, full-width colons) as spaces."""
    return "".join(" " if ch > "\x7f" and unicodedata.category(ch)[0] in "PS" else ch for ch in text)


def contains_gold(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when a gold answer appears in the prediction, after normalisation on both sides. Symbols and
    punctuation outside ASCII (currency signs, full-width colons) separate words here; SQuAD's normalisation
    keeps them, so "€14.90" would never contain "14.90".

    >>> contains_gold("Hold RESET for 12 seconds. [1]", ["12 seconds", "twelve seconds"])
    1.0
    >>> contains_gold("Express: €14.90 [1]", ["14.90"]), contains_gold("热线：400-820-7788", ["400-820-7788"])
    (1.0, 1.0)
    """
    prediction = _spaced_symbols(strip_citations(prediction))
    for gold in golds:
        pred, tokens = _pair_tokens(prediction, _spaced_symbols(gold))
        if tokens and f" {' '.join(tokens)} " in f" {' '.join(pred)} ":
            return 1.0
    return 0.0


# ---------------------------------------------------------------------------------------------- uncertainty


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple:
    """Mean of `values` and its percentile bootstrap confidence interval: (mean, low, high).

    Resampling is seeded, so a report is reproducible. One value gives a zero-width interval; none gives
    (nan, nan, nan).
    """
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return (float(data.mean()), float(low), float(high))


def paired_test(a: Sequence[float], b: Sequence[float], resamples: int = 10000, seed: int = 0) -> dict:
    """Compare two systems on the same questions: mean difference a - b, its bootstrap 95% interval, and the
    two-sided p-value of a paired randomisation (sign-flip) test of "no difference"."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired scores need the same questions, got {len(a)} and {len(b)} values")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0:
        return {"n": 0, "diff": math.nan, "low": math.nan, "high": math.nan, "p": math.nan}
    mean, low, high = bootstrap_ci(diff, seed=seed)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(resamples, diff.size))
    flipped = np.abs((signs * diff).mean(axis=1))
    p = (np.sum(flipped >= abs(diff.mean()) - 1e-12) + 1) / (resamples + 1)
    return {"n": int(diff.size), "diff": mean, "low": low, "high": high, "p": float(min(1.0, p))}
