"""From retrieved passages to an answer text: extractive selection, and checks of a generated answer.

Pure functions over hits and strings (the embedder, when given, only scores sentences):
- `extract`: the passage sentence that best answers the question (semantic similarity, overlap with the
  question's keywords, and the kind of answer the question asks for: a number, a price, a time ...).
- `looks_like_refusal`: a generated reply that says the answer is not available.
- `ungrounded`, `is_looping`: numbers, codes and names in an answer that its cited passages do not contain,
  and replies that repeat themselves; the automatic answer mode falls back to the extractive answer then.

What this module does not do: decide whether there is evidence at all (`rag.evidence`), parse citations
(`rag.text`) or generate (`rag.generate`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .evidence import expected_type, idf_weights, keyword_overlap
from .keywords import tokenize
from .text import FIELD, ITEM, is_instruction_like, split_sentences, strip_citations
from .types import Hit

_REFUSALS = re.compile(
    r"could not find|couldn't find|cannot find|can't find|not (?:in|found in) the (?:knowledge base|context|passages)"
    r"|no information|not mentioned|does not (?:say|mention|contain)|don't know|do not know|unable to (?:find|answer)"
    r"|没有找到|未找到|无法回答|没有相关|不知道|未提及",
    re.IGNORECASE,
)
# facts that must be copied, never invented: numbers (with units), codes like NX-301, amounts, addresses
_FACT = re.compile(r"[A-Za-z]*\d[\w.:/-]*|[A-Z]{2,}[\w-]*")


@dataclass
class Extract:
    text: str
    passage: int  # 1-based number of the hit it came from
    score: float


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
    weights = idf_weights(q_tokens, idf)
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
    if max_sentences > 1 and len(sentence) < 40 and not ITEM.match(sentence) and not FIELD.match(sentence):
        following = [c for c in candidates if c[0] == n and c[3] == index + 1 and not ITEM.match(c[1])]
        if following:
            sentence = f"{sentence} {following[0][1]}"
    # a list item or table row means little without the heading it sits under ("What is not covered")
    context = hits[n - 1].chunk.context
    if ITEM.match(sentence) and context:
        item = re.sub(r"^\s*([-*+•]|\d+[.)])\s*", "", sentence).strip()
        if item.startswith("|"):  # a table row: its cells, without the pipes
            item = ", ".join(cell.strip() for cell in item.strip("| ").split("|") if cell.strip())
        sentence = f"{context.split(' > ')[-1]}: {item}"
    sentence = re.sub(r"^(A|Answer|答)[:：]\s*", "", sentence)  # an FAQ record's answer label
    return Extract(text=sentence, passage=n, score=float(scored[best]))


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
