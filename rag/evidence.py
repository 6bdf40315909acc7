"""Does a passage hold evidence for a question? Scores that decide refusal, and the features behind them.

Today these are rules with a few learned constants: the best passage's relevance (cosine similarity where
the embedder reads the question, IDF-weighted keyword overlap where it does not), discounted by question
keywords the knowledge base never uses; names the knowledge base never mentions; and the kind of answer a
question asks for (a price, a time, a number). `calibrate_min_evidence` picks the refusal threshold from
labelled questions. The extractive answer (`rag.answer`) scores sentences with the same features.

What this module does not do: retrieve (`rag.retrieve`) or write answers (`rag.answer`, `rag.generate`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .keywords import tokenize
from .text import has_cjk
from .types import Hit

# words that frame a question ("how long", "how much") rather than name what it is about; a knowledge base
# that never uses them can still hold the answer (stemmed, as the keyword tokenizer leaves them)
QUESTION_FRAME = frozenset(
    "long much mani far often soon quick quickli big larg old kind type way thing get need want know tell pleas "
    "happen possibl mean exact usual typic 多久 多长 多少 多大 多远 怎么样 为什么 是否 可以 需要 知道 告诉".split()
)

# (name, what asks for it, what answers it)
ANSWER_TYPES = [
    (
        "price",
        re.compile(r"how much|price|cost|fee|多少钱|价格|费用|收费", re.I),
        re.compile(r"[€$¥£%]|\b(EUR|USD|euros?|dollars?|percent)\b|\d\s*元|free|免费", re.I),
    ),
    (
        "time",
        re.compile(r"\bwhen\b|what time|hours|几点|时间", re.I),
        re.compile(
            r"\d{1,2}[:.]\d{2}|\d+\s*(am|pm|days?|hours?|minutes?|weeks?|months?|years?)|monday|tuesday|friday|every day|\d{4}|点|周|\d+\s*(天|小时|分钟)",
            re.I,
        ),
    ),
    (
        "number",
        re.compile(
            r"how (?:long|many|much|far|quickly|big|large)|what (?:is the )?(?:maximum|minimum|largest|range)|多少|几|多久|多长|多大|多远|最大",
            re.I,
        ),
        re.compile(
            r"(?<![A-Za-z\d-])\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve)\b|[一二三四五六七八九十两]",
            re.I,
        ),
    ),
]


@dataclass
class Evidence:
    """How well the retrieved passages match the question (0..1), and from what."""

    score: float
    dense: float
    keywords: float
    unknown: float  # IDF-weighted share of the question's keywords that occur nowhere in the index


def expected_type(question: str) -> tuple[str, re.Pattern] | None:
    """The kind of answer `question` asks for, with the pattern an answer of that kind matches.

    >>> expected_type("How much does express shipping cost?")[0], expected_type("Who makes it?")
    ('price', None)
    """
    for name, asks, pattern in ANSWER_TYPES:
        if asks.search(question):
            return name, pattern
    return None


def idf_weights(question_tokens: list[str], idf: dict[str, float] | None) -> dict[str, float]:
    return {t: (idf.get(t, 1.0) if idf else 1.0) for t in set(question_tokens)}


def keyword_overlap(question_tokens: list[str], text_tokens: set[str], weights: dict[str, float]) -> float:
    """IDF-weighted share of the question's keywords that occur in the text (0..1).

    >>> keyword_overlap(["reset", "router"], {"reset", "button"}, {"reset": 3.0, "router": 1.0})
    0.75
    """
    total = sum(weights.values())
    if total == 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in text_tokens) / total


def corpus_idf(keyword_index) -> dict[str, float]:
    """IDF of every token in a bm25s keyword index (rare words matter more in keyword overlap)."""
    retriever = getattr(keyword_index, "retriever", None)
    if retriever is None:
        return {}
    n_docs = max(1, len(keyword_index))
    matrix = retriever.scores
    indptr = np.asarray(matrix["indptr"])
    df = np.diff(indptr)
    return {
        token: math.log(1 + (n_docs - df[i] + 0.5) / (df[i] + 0.5))
        for token, i in retriever.vocab_dict.items()
        if i < len(df)
    }


def score(question: str, hits: Sequence[Hit], idf: dict[str, float], reads: float) -> Evidence:
    """Relevance of the best hit: cosine similarity where the embedder can read the question (`reads`, the
    share of it the embedder reads), keyword overlap where it cannot, lowered by question keywords the
    knowledge base never mentions."""
    if not hits:
        return Evidence(0.0, 0.0, 0.0, 1.0)
    q_tokens = [t for t in tokenize(question) if t not in QUESTION_FRAME]
    top_idf = max(idf.values()) if idf else 1.0
    weights = {t: idf.get(t, top_idf) for t in set(q_tokens)}
    total = sum(weights.values()) or 1.0
    unknown = sum(w for t, w in weights.items() if t not in idf) / total
    best = Evidence(0.0, 0.0, 0.0, unknown)
    for hit in hits:
        dense = max(0.0, hit.scores.get("dense", 0.0))
        overlap = keyword_overlap(q_tokens, set(tokenize(hit.chunk.indexed_text)), weights)
        value = (reads * dense + (1 - reads) * overlap) * (1 - unknown)
        if value > best.score:
            best = Evidence(value, dense, overlap, unknown)
    return best


_PROPER = re.compile(r"(?<![.?!:]\s)(?<!^)\b[A-Z][A-Za-z]+\b|\b[A-Z]{2,}\b")
_ZH_ENTITY_TAGS = {"ns", "nr", "nt", "nrt", "nz"}  # jieba part-of-speech tags of places, people, organisations


def entities(question: str) -> list[str]:
    """Names in a question: capitalised words not at a sentence start, acronyms, and Chinese place, person
    and organisation names (jieba's part-of-speech tags).

    >>> entities("What are the opening hours of the Paris service centre?")
    ['Paris']
    """
    found = [m.group() for m in _PROPER.finditer(question.strip())]
    if has_cjk(question):
        import jieba.posseg as pseg

        found += [w.word for w in pseg.cut(question) if w.flag in _ZH_ENTITY_TAGS and len(w.word) >= 2]
    return list(dict.fromkeys(found))


def missing_entities(question: str, vocabulary) -> list[str]:
    """The question's names that the knowledge base never mentions: it cannot hold the answer about them."""
    missing = []
    for name in entities(question):
        tokens = tokenize(name)
        if tokens and not any(t in vocabulary for t in tokens):
            missing.append(name)
    return missing


def calibrate_min_evidence(rag, questions: list[dict], split: str | None = "train", margin: float = 0.9) -> dict:
    """The refusal threshold from labelled questions: the highest evidence level that still lets 98% of the
    answerable questions through, times `margin`. Returns the threshold and the evidence of every question,
    so that the choice can be inspected. `rag` is a `rag.RAG`; questions are {"question", "answerable",
    "split"} records. Raises ValueError without answerable questions."""
    rows = []
    for q in questions:
        if split and q.get("split") != split:
            continue
        hits = rag.retrieve(q["question"])
        rows.append(
            {
                "id": q.get("id"),
                "answerable": bool(q["answerable"]),
                "evidence": rag.evidence(q["question"], hits).score,
            }
        )
    answerable = [r["evidence"] for r in rows if r["answerable"]]
    if not answerable:
        raise ValueError("calibration needs answerable questions")
    threshold = float(np.quantile(answerable, 0.02, method="lower")) * margin
    refused = [r for r in rows if not r["answerable"] and r["evidence"] < threshold]
    return {
        "min_evidence": round(threshold, 3),
        "questions": len(rows),
        "unanswerable_refused": f"{len(refused)}/{sum(1 for r in rows if not r['answerable'])}",
        "rows": rows,
    }
