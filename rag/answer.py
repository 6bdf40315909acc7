"""From retrieved passages to an answer text: extractive selection, and checks of a generated answer.

Pure functions over hits, readings and strings:
- `compose`: the extractive answer from a reading of the passages (`rag.evidence`): the best sentence, the
  neighbouring sentences that belong to the same answer, a second passage that adds to it; cited.
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

from .evidence import Candidate, Reading
from .text import ITEM, strip_citations
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
    """An extractive answer: the text with its citations, and the passages it cites (1-based, in order)."""

    text: str
    citations: list[int]
    probability: float  # of its best sentence


def compose(reading: Reading, hits: Sequence[Hit], span: float = 0.5, second: float = 0.8) -> Extract | None:
    """The extractive answer from a reading of `hits` (numbered as the reading numbers them): the best
    sentence, with the neighbouring sentences of its passage whose probability is at least `span` times the
    best's (a procedure, a condition), in the passage's order; a list introduction ("To return a device:")
    brings its items. A second passage joins, with its own citation, when its best sentence has at least
    `second` times the best probability and says something else ("24 months [1] ... 36 months with
    Care+ [2]"). None when there is no candidate sentence."""
    best = reading.best()
    if best is None:
        return None
    floor = span * best.probability
    own = sorted((c for c in reading.candidates if c.passage == best.passage), key=lambda c: c.index)
    by_index = {c.index: c for c in own}
    chosen = [best]
    for step in (-1, 1):  # grow a contiguous run around the best sentence, at most 3 sentences
        i = best.index + step
        while i in by_index and len(chosen) < 3 and by_index[i].probability >= floor:
            chosen.append(by_index[i])
            i += step
    if best.text.rstrip().endswith((":", "：")):  # a list introduction: its items are the answer
        i = best.index + 1
        while i in by_index and ITEM.match(by_index[i].text) and len(chosen) < 8:
            chosen.append(by_index[i])
            i += 1
    chosen.sort(key=lambda c: c.index)
    parts = [(best.passage, _phrase(chosen, hits[best.passage - 1]))]
    others = [c for c in reading.candidates if c.passage != best.passage]
    runner = max(others, key=lambda c: c.probability, default=None)
    if runner is not None and runner.probability >= max(second * best.probability, 0.5):
        text = _phrase([runner], hits[runner.passage - 1])
        if text.lower() not in parts[0][1].lower() and parts[0][1].lower() not in text.lower():
            parts.append((runner.passage, text))
    return Extract(" ".join(f"{text} [{n}]" for n, text in parts), [n for n, _ in parts], best.probability)


def _phrase(sentences: list[Candidate], hit: Hit) -> str:
    """Sentences of one passage as answer text: a lone list item or table row with the heading it sits
    under ("What is not covered: water damage"), an FAQ record's answer without its "A:" label."""
    texts = [c.text for c in sentences]
    context = hit.chunk.context
    if len(texts) == 1 and ITEM.match(texts[0]):
        item = re.sub(r"^\s*([-*+•]|\d+[.)])\s*", "", texts[0]).strip()
        if item.startswith("|"):  # a table row: its cells, without the pipes
            item = ", ".join(cell.strip() for cell in item.strip("| ").split("|") if cell.strip())
        texts = [f"{context.split(' > ')[-1]}: {item}" if context else item]
    text = " ".join(texts)
    return re.sub(r"^(A|Answer|答)[:：]\s*", "", text)


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
