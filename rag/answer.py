"""From retrieved passages to an answer: extractive selection, citation parsing and grounding checks.

Pure functions over hits and strings (the embedder, when given, only scores sentences):
- `extract`: the passage sentence that best answers the question (semantic similarity, overlap with the
  question's keywords, and the kind of answer the question asks for: a number, a price, a time ...).
- `parse_citations`, `looks_like_refusal`: reading a generated answer.
- `ungrounded`: numbers, codes and names in an answer that its cited passages do not contain; the automatic
  answer mode falls back to the extractive answer when there are any.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .keywords import tokenize
from .prompt import _FIELD, is_instruction_like, split_sentences
from .types import Hit

_CITATION = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]")
_REFUSALS = re.compile(
    r"could not find|couldn't find|cannot find|can't find|not (?:in|found in) the (?:knowledge base|context|passages)"
    r"|no information|not mentioned|does not (?:say|mention|contain)|don't know|do not know|unable to (?:find|answer)"
    r"|没有找到|未找到|无法回答|没有相关|不知道|未提及",
    re.IGNORECASE,
)
# facts that must be copied, never invented: numbers (with units), codes like NX-301, amounts, addresses
_FACT = re.compile(r"[A-Za-z]*\d[\w.:/-]*|[A-Z]{2,}[\w-]*")

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


_ITEM = re.compile(r"^\s*([-*+•]\s|\d+[.)]\s|\|)")


@dataclass
class Extract:
    text: str
    passage: int  # 1-based number of the hit it came from
    score: float


def expected_type(question: str) -> tuple[str, re.Pattern] | None:
    for name, asks, pattern in ANSWER_TYPES:
        if asks.search(question):
            return name, pattern
    return None


def _idf_weights(question_tokens: list[str], idf: dict[str, float] | None) -> dict[str, float]:
    return {t: (idf.get(t, 1.0) if idf else 1.0) for t in set(question_tokens)}


def keyword_overlap(question_tokens: list[str], text_tokens: set[str], weights: dict[str, float]) -> float:
    """IDF-weighted share of the question's keywords that occur in the text (0..1)."""
    total = sum(weights.values())
    if total == 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in text_tokens) / total


def extract(
    question: str,
    hits: Sequence[Hit],
    embedder=None,
    idf: dict[str, float] | None = None,
    max_sentences: int = 2,
) -> Extract | None:
    """The best-answering sentence of `hits` (plus its successor when it is short), or None.

    Each sentence is scored by semantic similarity to the question (weighted by how much of the question the
    embedder can read), IDF-weighted keyword overlap with the question (the sentence's heading path counts),
    a bonus when it has the kind of answer asked for, and a small prior for higher-ranked passages.
    Instruction-like sentences (prompt injection) are never chosen.
    """
    q_tokens = tokenize(question)
    weights = _idf_weights(q_tokens, idf)
    wanted = expected_type(question)
    candidates: list[tuple[int, str, str, int]] = []  # (hit number, sentence, with context, index in passage)
    for n, hit in enumerate(hits, start=1):
        sentences = split_sentences(hit.chunk.text)
        if any(is_instruction_like(s) for s in sentences):
            continue  # a passage that talks to the assistant is untrusted as a whole
        for i, sentence in enumerate(sentences):
            if len(sentence) < 2 or sentence.rstrip().endswith(("?", "？")):
                continue  # a question (an FAQ's "Q:" line) is never the answer
            candidates.append((n, sentence, f"{hit.chunk.context}\n{sentence}" if hit.chunk.context else sentence, i))
    if not candidates:
        return None
    semantic = np.zeros(len(candidates), dtype=np.float32)
    reads = 0.0
    if embedder is not None:
        reads = embedder.coverage(question)
        if reads > 0:
            qv = embedder.embed_queries([question])[0]
            sv = embedder.embed_documents([c[2] for c in candidates])
            semantic = sv @ qv
    scored = []
    typed = [bool(wanted[1].search(c[1])) for c in candidates] if wanted is not None else [True] * len(candidates)
    if not any(typed):
        return None  # the question asks for a number, price or time and no passage sentence has one
    for (n, sentence, with_context, _), sim, has_type in zip(candidates, semantic, typed):
        tokens = set(tokenize(with_context))
        lexical = keyword_overlap(q_tokens, tokens, weights)
        own = keyword_overlap(q_tokens, set(tokenize(sentence)), weights)
        score = reads * float(sim) + (1 - reads * 0.5) * (0.6 * lexical + 0.4 * own)
        if not has_type:
            score -= 10.0  # never chosen over a sentence that has the kind of answer asked for
        score -= 0.02 * (n - 1)
        scored.append(score)
    best = int(np.argmax(scored))
    n, sentence, _, index = candidates[best]
    # a short sentence often needs the next one ("Press RESET." + "Hold it for 12 seconds.")
    if max_sentences > 1 and len(sentence) < 40 and not _ITEM.match(sentence) and not _FIELD.match(sentence):
        following = [c for c in candidates if c[0] == n and c[3] == index + 1 and not _ITEM.match(c[1])]
        if following:
            sentence = f"{sentence} {following[0][1]}"
    # a list item or table row means little without the heading it sits under ("What is not covered")
    context = hits[n - 1].chunk.context
    if _ITEM.match(sentence) and context:
        item = re.sub(r"^\s*([-*+•]|\d+[.)])\s*", "", sentence).strip()
        if item.startswith("|"):  # a table row: its cells, without the pipes
            item = ", ".join(cell.strip() for cell in item.strip("| ").split("|") if cell.strip())
        sentence = f"{context.split(' > ')[-1]}: {item}"
    sentence = re.sub(r"^(A|Answer|答)[:：]\s*", "", sentence)  # an FAQ record's answer label
    return Extract(text=sentence, passage=n, score=float(scored[best]))


def parse_citations(text: str, passages: int) -> list[int]:
    """Passage numbers cited as [n] or [n, m] in `text`, in order, without duplicates or out-of-range ones.

    >>> parse_citations("Hold it 12 s [2]. See also [1, 2] and [9].", 3)
    [2, 1]
    """
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,，、]", match.group(1)):
            n = int(part)
            if 1 <= n <= passages and n not in seen:
                seen.append(n)
    return seen


def strip_citations(text: str) -> str:
    return re.sub(r"\s*" + _CITATION.pattern, "", text).strip()


def looks_like_refusal(text: str) -> bool:
    """True for a reply that says the answer is not available."""
    return bool(_REFUSALS.search(text)) or not text.strip()


def facts(text: str) -> set[str]:
    """Numbers, codes and all-caps names in `text`, normalised for comparison.

    >>> sorted(facts("Call +31 20 555 0199 about NX-301, costs €14.90."))
    ['0199', '14.90', '20', '31', '555', 'nx-301']
    """
    return {m.group().strip(".:/-").lower() for m in _FACT.finditer(text) if m.group().strip(".:/-")}


def ungrounded(answer: str, passages: Sequence[str]) -> list[str]:
    """Facts in `answer` that none of `passages` contains (the check behind the automatic mode)."""
    source = " ".join(passages).lower()
    source_facts = facts(source)
    missing = []
    for fact in sorted(facts(strip_citations(answer))):
        if fact not in source_facts and fact not in source:
            missing.append(fact)
    return missing


def is_looping(text: str) -> bool:
    """True when a phrase repeats back to back three times or more ("return return return", "1. 1. 1.")."""
    words = text.split()
    for size in range(1, 6):
        for start in range(0, max(0, len(words) - 3 * size + 1)):
            chunk = words[start : start + size]
            if chunk == words[start + size : start + 2 * size] == words[start + 2 * size : start + 3 * size]:
                return True
    return bool(re.search(r"(.{2,12}?)\1{3,}", text.replace(" ", "")))


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


_PROPER = re.compile(r"(?<![.?!:]\s)(?<!^)\b[A-Z][A-Za-z]+\b|\b[A-Z]{2,}\b")
_ZH_ENTITY_TAGS = {"ns", "nr", "nt", "nrt", "nz"}  # jieba part-of-speech tags of places, people, organisations


def entities(question: str) -> list[str]:
    """Names in a question: capitalised words not at a sentence start, acronyms, and Chinese place, person
    and organisation names (jieba's part-of-speech tags).

    >>> entities("What are the opening hours of the Paris service centre?")
    ['Paris']
    """
    found = [m.group() for m in _PROPER.finditer(question.strip())]
    if re.search(r"[\u4e00-\u9fff]", question):
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
