"""From retrieved passages to an answer text: extractive selection, and checks of a generated answer.

Pure functions over hits, readings and strings:
- `compose`: the extractive answer from a reading of the passages (`rag.evidence`): the best sentence, the
  neighbouring sentences that belong to the same answer, a second passage that adds to it; cited.
- `looks_like_refusal`: a generated reply that says the answer is not available.
- `fix_citations`, `CitationFixer`: a generated citation that points at a passage without the facts the
  cited words state, moved to the one passage that has them all (also while the answer streams).
- `repeats_part`: a generated answer that only repeats part of the extractive answer (the automatic mode
  keeps the extract then).
- `ungrounded`, `is_looping`: numbers, codes and names in an answer that its cited passages do not contain,
  and replies that repeat themselves; the automatic answer mode falls back to the extractive answer then.

What this module does not do: decide whether there is evidence at all (`rag.evidence`), parse citations
(`rag.text`) or generate (`rag.generate`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .evidence import Candidate, Reading, record_key
from .text import CITATION, ITEM, split_sentences, strip_citations
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
    chosen = reading.run(best, span)
    parts = [(best.passage, _phrase(chosen, hits[best.passage - 1]))]
    others = [c for c in reading.candidates if c.passage != best.passage]
    runner = max(others, key=lambda c: c.probability, default=None)
    if runner is not None and runner.probability >= max(second * best.probability, 0.5):
        text = _phrase([runner], hits[runner.passage - 1])
        if text.lower() not in parts[0][1].lower() and parts[0][1].lower() not in text.lower():
            parts.append((runner.passage, text))
    return Extract(" ".join(f"{text} [{n}]" for n, text in parts), [n for n, _ in parts], best.probability)


# "2. ", "3.1. ", "一、": a section's number, which says nothing in an answer ("2. Buying: only for visitors")
_SECTION_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)*[.)、](?!\d)|[一二三四五六七八九十]+[、.])\s*")


def _phrase(sentences: list[Candidate], hit: Hit) -> str:
    """Sentences of one passage as answer text: a lone list item or table row with the heading it sits
    under ("What is not covered: water damage"), a lone field of a record with the record's first field
    ("channel: Phone; hours: 9-18"), an FAQ record's answer without its "A:" label."""
    texts = [c.text for c in sentences]
    context = hit.chunk.context
    key = record_key(split_sentences(hit.chunk.text), sentences[0].index) if len(texts) == 1 else ""
    if key:  # a lone field of a record, with the field that says whose it is
        texts = [f"{key}; {texts[0]}"]
    elif len(texts) == 1 and ITEM.match(texts[0]):
        item = re.sub(r"^\s*([-*+•]|\d+[.)])\s*", "", texts[0]).strip()
        if item.startswith("|"):  # a table row: its cells, without the pipes
            item = ", ".join(cell.strip() for cell in item.strip("| ").split("|") if cell.strip())
        heading = _SECTION_NUMBER.sub("", context.split(" > ")[-1]) if context else ""
        texts = [f"{heading}: {item}" if heading else item]
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
    return _lacks(facts(strip_citations(answer)), " ".join(passages))


def _lacks(stated: set[str], passage: str) -> list[str]:
    source = passage.lower()
    source_facts = facts(source)
    return [fact for fact in sorted(stated) if fact not in source_facts and fact not in source]


def fix_citations(text: str, passages: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each one-number citation marker moved to the passage that holds the facts (numbers,
    codes) of the words before it, back to the previous marker, and the (from, to) changes. A small generator
    copies the right sentence and cites the wrong number; a marker moves only when its passage lacks some of
    those facts and exactly one passage has them all, so a citation is never moved on a guess.

    >>> fix_citations("Hold it 8 seconds [1]. Free [2].", ["Wait 12 s.", "Hold for 8 seconds."])
    ('Hold it 8 seconds [2]. Free [2].', [(1, 2)])
    """
    out, changes, start = [], [], 0
    for match in CITATION.finditer(text):
        out.append(text[start : match.start()])
        marker = match.group()
        if match.group(1).isdigit():
            n = int(match.group(1))
            stated = facts(strip_citations(text[start : match.start()]))
            holds = [j for j, passage in enumerate(passages, start=1) if not _lacks(stated, passage)]
            if stated and 1 <= n <= len(passages) and n not in holds and len(holds) == 1:
                marker = f"[{holds[0]}]"
                changes.append((n, holds[0]))
        out.append(marker)
        start = match.end()
    out.append(text[start:])
    return "".join(out), changes


class CitationFixer:
    """Streams a generated answer with `fix_citations` applied: text passes through at once, except a marker
    that has begun ("[1") and is held until it closes (its passage is known by then)."""

    def __init__(self, passages: Sequence[str], emit: Callable[[str], None] | None):
        self.passages, self.emit = passages, emit
        self.raw, self.sent = "", ""

    def feed(self, piece: str) -> None:
        self.raw += piece
        held = re.search(r"\[[\d\s,，、]{0,12}$", self.raw)
        self._send(self.raw[: held.start()] if held else self.raw)

    def finish(self, text: str) -> tuple[str, list[tuple[int, int]]]:
        """The final answer `text` (the generator's, which may trim what streamed) fixed; sends the rest."""
        fixed, changes = fix_citations(text, self.passages)
        self._send(text, fixed)
        return fixed, changes

    def _send(self, raw: str, fixed: str | None = None) -> None:
        fixed = fix_citations(raw, self.passages)[0] if fixed is None else fixed
        # not after the final text was trimmed: what streamed stands, the answer carries the fix
        if self.emit and len(fixed) > len(self.sent) and fixed.startswith(self.sent):
            self.emit(fixed[len(self.sent) :])
            self.sent = fixed


def repeats_part(generated: str, extract: str) -> bool:
    """True when a generated answer only repeats words of the extractive answer (citations, case and spacing
    aside): the automatic mode then keeps the extract, which holds what the copied sentence leaves out.

    >>> repeats_part("Warranty: 36 months with Care+ [1].", "24 months. Warranty: 36 months with Care+. [2]")
    True
    """

    def norm(text: str) -> str:
        return " ".join(strip_citations(text).lower().split()).rstrip("。.")

    said = norm(generated)
    return bool(said) and said in norm(extract)


def is_looping(text: str) -> bool:
    """True when a phrase repeats back to back three times or more ("return return return", "1. 1. 1.")."""
    words = text.split()
    for size in range(1, 6):
        for start in range(0, max(0, len(words) - 3 * size + 1)):
            chunk = words[start : start + size]
            if chunk == words[start + size : start + 2 * size] == words[start + 2 * size : start + 3 * size]:
                return True
    return bool(re.search(r"(.{2,12}?)\1{3,}", text.replace(" ", "")))
