"""Training data for reading: (question, sentence, label) pairs from question-answering data.

The evidence scorer (`rag.scorer`) learns "this sentence answers this question" from public QA data in the
shape `rag.eval.datasets` reads (documents {"id", "title", "text"}, questions {"question", "answers",
"sources", "answerable"}): for each answerable question, the sentences of its gold paragraph that contain an
answer are positives; the other sentences of that paragraph (the hard negatives: same topic, same words,
not the answer) and sentences of other paragraphs about the same title are negatives. An unanswerable
question contributes only negatives. Each sentence is paired as the answer path shows it to the scorer:
its heading path (here the document title) on one line, the sentence on the next.

Unanswerable questions written against the very paragraph (SQuAD 2.0's kind: "When did the king of France
die?" over a paragraph about the king of England) look, word for word, like answerable ones. No such training
set is available under a license that lets a model ship, so `adversarial_pairs` makes them: it swaps a name,
number or content word that a question shares with its answer sentence for another one of the same shape from
the same paragraph (or reverses a comparison word: first/last, largest/smallest), and pairs the changed
question with the original answer sentence as a negative, next to the unchanged question as its positive.
(Measured as a second training stage of the shipped scorer: the scorer learns them, yet SQuAD 2.0 dev's real
unanswerable questions are refused no more often; eval/reports/reading/README.md.)

What this module does not do: train (`rag.tune`) or score (`rag.scorer`). Pure Python, no model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from .keywords import EN_STOP
from .text import split_sentences

_WORD = re.compile(r"\w+")


def scorer_text(context: str, sentence: str) -> str:
    """What the scorer reads for a candidate sentence: its heading path, then the sentence.

    >>> scorer_text("Router > Reset", "Hold RESET for 12 seconds.")
    'Router > Reset\\nHold RESET for 12 seconds.'
    """
    return f"{context}\n{sentence}" if context else sentence


def _overlap(question: str, sentence: str) -> float:
    q = set(_WORD.findall(question.lower()))
    return len(q & set(_WORD.findall(sentence.lower()))) / (len(q) or 1)


def scorer_pairs(
    documents: Sequence[dict],
    questions: Sequence[dict],
    negatives: int = 4,
    other_documents: int = 1,
    seed: int = 0,
) -> list[dict]:
    """Labelled pairs {"question", "text", "label"} (see the module docstring). Per question: every answer
    sentence (label 1), up to `negatives` other sentences of the gold document, half of them the ones that
    share most words with the question, and `other_documents` sentences from other documents with the same
    title (label 0). Questions whose answer occurs in no sentence of their document are skipped."""
    rng = random.Random(seed)
    by_id = {d["id"]: d for d in documents}
    by_title: dict[str, list[str]] = {}
    for d in documents:
        by_title.setdefault(d.get("title", ""), []).append(d["id"])
    sentences: dict[str, list[str]] = {}

    def sentences_of(doc_id: str) -> list[str]:
        if doc_id not in sentences:
            sentences[doc_id] = [s for s in split_sentences(by_id[doc_id]["text"]) if len(s) > 1]
        return sentences[doc_id]

    pairs = []
    for q in questions:
        gold = [s for s in q.get("sources", []) if s in by_id]
        if not gold:
            continue
        doc_id = gold[0]
        title = by_id[doc_id].get("title", "")
        answers = [a for a in q.get("answers", []) if a.strip()] if q.get("answerable", True) else []
        own = sentences_of(doc_id)
        positive = [s for s in own if any(a in s for a in answers)]
        if answers and not positive:
            continue  # the answer spans sentences (or the text was changed): no clean label
        rest = [s for s in own if s not in positive]
        by_overlap = sorted(rest, key=lambda s: -_overlap(q["question"], s))
        hard = by_overlap[: (negatives + 1) // 2]
        easy = [s for s in rest if s not in hard]
        chosen = hard + rng.sample(easy, min(len(easy), negatives - len(hard)))
        others = [d for d in by_title.get(title, []) if d != doc_id]
        for other in rng.sample(others, min(len(others), other_documents)):
            candidates = [s for s in sentences_of(other) if not any(a in s for a in answers)]
            if candidates:
                chosen.append(max(candidates, key=lambda s: _overlap(q["question"], s)))
        for sentence in positive:
            pairs.append({"question": q["question"], "text": scorer_text(title, sentence), "label": 1.0})
        for sentence in chosen:
            pairs.append({"question": q["question"], "text": scorer_text(title, sentence), "label": 0.0})
    rng.shuffle(pairs)
    return pairs


_NAME = re.compile(r"\b[A-Z][\w'-]*(?:\s+(?:of|the|de|von|van|and|&)?\s*[A-Z][\w'-]*)*")
_NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
# capitalised only because they open a sentence: never taken for a name
_OPENERS = EN_STOP | frozenset(
    "after although before despite during following he however many she since some while".split()
)
# reversals for data synthesis only (the scorer then learns what they change; nothing reads this list at answer time)
_REVERSE = {
    "first": "last",
    "last": "first",
    "largest": "smallest",
    "smallest": "largest",
    "most": "least",
    "least": "most",
    "before": "after",
    "after": "before",
    "highest": "lowest",
    "lowest": "highest",
    "earliest": "latest",
    "latest": "earliest",
    "longest": "shortest",
    "shortest": "longest",
    "more": "fewer",
    "increase": "decrease",
    "decrease": "increase",
    "biggest": "smallest",
    "oldest": "youngest",
    "youngest": "oldest",
    "best": "worst",
    "worst": "best",
    "minimum": "maximum",
    "maximum": "minimum",
}


_DETERMINER = r"(?:the|a|an|his|her|its|their|this|that|these|those)"


_AFTER_NOUN = r"\s*(?:[,.;:?!)]|$|(?:of|in|on|for|to|was|were|is|are|and|that|which|by|with|from|at)\b)"


def _shapes(text: str, common: set[str], lower: set[str] = frozenset()) -> dict[str, list[str]]:
    """Spans of `text` by shape: names (capitalised runs, less a leading common word such as a sentence's
    "The"), numbers, and uncommon lowercase words after a determiner (nouns, mostly: a swap keeps the
    question grammatical, so the scorer cannot tell the changed questions by their grammar)."""
    names, skip = [], common | lower | _OPENERS
    for m in _NAME.finditer(text):
        words = m.group().split()
        while words and words[0].lower() in skip:
            words = words[1:]
        if words:
            names.append(" ".join(words))
    nouns = re.findall(rf"\b{_DETERMINER}\s+([a-z][a-z-]{{3,}})\b(?={_AFTER_NOUN})", text)
    return {"name": names, "number": _NUMBER.findall(text), "word": [w for w in nouns if w not in common]}


def perturb(
    question: str,
    sentence: str,
    paragraph: str,
    rng: random.Random,
    common: set[str],
    lower: set[str] = frozenset(),
) -> str | None:
    """`question` changed so that `sentence` no longer answers it (see the module docstring), or None when it
    shares nothing swappable with the sentence. `common` holds words too frequent to be a question's point;
    `lower`, words seen in lower case (so a capitalised "Approximately" opening a sentence is not a name).

    >>> perturb("When was the SNES released in Japan?", "The SNES was released in 1990 in Japan.",
    ...         "The SNES was released in 1990 in Japan. Europe got it in 1992.", random.Random(0), set())
    'When was the SNES released in Europe?'
    """
    low = sentence.lower()
    reversible = [w for w in re.findall(r"\b[a-z]+\b", question) if w in _REVERSE and w in low.split()]
    mine = _shapes(question, common, lower)
    theirs = _shapes(paragraph, common, lower)
    options: list[tuple[str, list[str]]] = []
    wh = question.split(" ", 1)[0]
    for shape in ("name", "number", "word"):
        anchors = [a for a in mine[shape] if a != wh and a in sentence]
        pool = sorted({t for t in theirs[shape] if t not in sentence and t.lower() not in question.lower()})
        for anchor in anchors:
            mine_pool = [t for t in pool if anchor not in t and t not in anchor]
            if mine_pool:
                options.append((anchor, mine_pool))
    if reversible and (not options or rng.random() < 0.5):
        word = rng.choice(reversible)
        return re.sub(rf"\b{word}\b", _REVERSE[word], question, count=1)
    if not options:
        return None
    anchor, pool = rng.choice(options)
    return question.replace(anchor, rng.choice(pool), 1)


def adversarial_pairs(
    documents: Sequence[dict], questions: Sequence[dict], share: float = 0.5, seed: int = 0
) -> list[dict]:
    """For `share` of the answerable questions: the question with its answer sentence (label 1) and the
    question perturbed (`perturb`) with the same sentence (label 0), so that the two differ only in what the
    scorer must notice. Words in more than 1% of the questions (and more than 5) count as common (never
    swapped)."""
    rng = random.Random(seed)
    by_id = {d["id"]: d for d in documents}
    counts: dict[str, int] = {}
    for q in questions:
        for w in set(_WORD.findall(q["question"].lower())):
            counts[w] = counts.get(w, 0) + 1
    common = {w for w, n in counts.items() if n > max(5, 0.01 * len(questions))}
    lowercase: dict[str, int] = {}
    for q in questions:
        for w in re.findall(r"\b[a-z]+\b", q["question"]):
            lowercase[w] = lowercase.get(w, 0) + 1
    lower = {w for w, n in lowercase.items() if n >= 3}
    pairs = []
    for q in questions:
        gold = [s for s in q.get("sources", []) if s in by_id]
        answers = [a for a in q.get("answers", []) if a.strip()]
        if not gold or not answers or not q.get("answerable", True) or rng.random() >= share:
            continue
        doc = by_id[gold[0]]
        positive = [s for s in split_sentences(doc["text"]) if any(a in s for a in answers)]
        if not positive:
            continue
        changed = perturb(q["question"], positive[0], doc["text"], rng, common, lower)
        if changed is None:
            continue
        text = scorer_text(doc.get("title", ""), positive[0])
        pairs.append({"question": q["question"], "text": text, "label": 1.0})
        pairs.append({"question": changed, "text": text, "label": 0.0})
    rng.shuffle(pairs)
    return pairs


def worded_apart(pairs: Sequence[dict], share: float = 0.25, seed: int = 3) -> list[dict]:
    r"""A second training stage for the scorer, against reading words instead of meaning (measured, not
    shipped: eval/reports/reading/README.md): every pair of the `share` of questions whose best answer sentence shares the
    fewest of their keywords (`rag.keywords` tokens, so stems match; the sentence without its title line),
    mixed with as many pairs drawn from the other questions, so that what the first stage learned stays.
    SQuAD's questions mostly reuse their sentence's words, which teaches a scorer to count them; these are its
    questions asked in other words or about a sentence that names its subject "it".

    >>> pairs = [{"question": "Where do pandas live?", "text": "Pandas\nPandas live in China.", "label": 1.0},
    ...          {"question": "What do they eat?", "text": "Pandas\nThey feed on bamboo.", "label": 1.0},
    ...          {"question": "What do they eat?", "text": "Pandas\nPandas live in China.", "label": 0.0}]
    >>> sorted(p["question"] for p in worded_apart(pairs, share=0.5))
    ['What do they eat?', 'What do they eat?', 'Where do pandas live?']
    """
    from .keywords import tokenize

    by_question: dict[str, list[dict]] = {}
    for pair in pairs:
        by_question.setdefault(pair["question"], []).append(pair)

    def shared(question: str, text: str) -> float:
        asked = set(tokenize(question))
        return len(asked & set(tokenize(text.split("\n", 1)[-1]))) / (len(asked) or 1)

    ranked = sorted(
        (max(shared(q, p["text"]) for p in group if p["label"] >= 0.5), q)
        for q, group in by_question.items()
        if any(p["label"] >= 0.5 for p in group)
    )
    chosen = [q for _, q in ranked[: int(share * len(ranked))]]
    picked = [p for q in chosen for p in by_question[q]]
    apart = set(chosen)
    rng = random.Random(seed)
    rest = [p for p in pairs if p["question"] not in apart]
    mixed = picked + rng.sample(rest, min(len(picked), len(rest)))
    rng.shuffle(mixed)
    return mixed


def feedback_pairs(records: Sequence[dict], chunks: dict) -> tuple[list[dict], int]:
    """Scorer pairs from `rag serve`'s feedback log (records with the rated answer's question, answer, chunk ids,
    citations, rating and optional correction), over the index's chunks ({chunk id: Chunk}). A helpful answer
    (rating 1) makes the sentences it quoted positives and the rest of its passages negatives; an unhelpful
    one (rating -1) makes its quoted sentences negatives and, with a correction, the sentences of its passages
    that hold the correction positives. Returns the pairs and how many records could not be used (no question,
    neutral, or chunks no longer in the index)."""
    from .text import strip_citations

    pairs, unused = [], 0
    for r in records:
        question, rating = r.get("question"), r.get("rating")
        passages = [chunks[c] for c in r.get("chunk_ids") or [] if c in chunks]
        if not isinstance(question, str) or not question.strip() or rating not in (-1, 1) or not passages:
            unused += 1
            continue
        answer = strip_citations(r.get("answer") or "").lower()
        correction = (r.get("correction") or "").strip().lower()
        labelled = []
        for chunk in passages:
            for sentence in split_sentences(chunk.text):
                quoted = _quoted(sentence, answer) and not r.get("refused")
                if rating == 1:
                    labelled.append((chunk, sentence, 1.0 if quoted else 0.0))
                elif quoted:
                    labelled.append((chunk, sentence, 0.0))
                elif correction and correction in sentence.lower():
                    labelled.append((chunk, sentence, 1.0))
        if not any(label for _, _, label in labelled) and rating == 1:
            unused += 1  # a helpful answer none of whose sentences is found in its passages (generated)
            continue
        for chunk, sentence, label in labelled:
            pairs.append({"question": question, "text": scorer_text(chunk.context, sentence), "label": label})
    return pairs, unused


def qa_pairs(records: Sequence[dict], search) -> tuple[list[dict], int]:
    """Scorer pairs from a team's question/answer records ({"question", "answers" or "answer", "answerable"})
    over its own knowledge base: `search(question)` gives the passages (chunks) the answer path would read;
    their sentences that hold an answer are positives, the others negatives, as `scorer_pairs` labels public
    data. An unanswerable question's retrieved sentences are all negatives. Returns the pairs and how many
    answerable questions were left out because no retrieved sentence holds their answer (the answer is worded
    otherwise than the documents, or retrieval misses its passage: those cannot be labelled).

    >>> from types import SimpleNamespace as C
    >>> kb = [C(text="Deposits are 300 euros. Bikes are red.", context="Deposit")]
    >>> pairs, unused = qa_pairs([{"question": "How big is the deposit?", "answer": "300 euros"},
    ...                          {"question": "Do you rent boats?", "answerable": False}], lambda q: kb)
    >>> [(p["text"], p["label"]) for p in pairs], unused
    ([('Deposit\\nDeposits are 300 euros.', 1.0), ('Deposit\\nBikes are red.', 0.0), ('Deposit\\nDeposits are 300 euros.', 0.0), ('Deposit\\nBikes are red.', 0.0)], 0)
    """
    from .text import mentions

    pairs, unused = [], 0
    for r in records:
        question = r.get("question")
        answers = r.get("answers") if r.get("answers") is not None else [r.get("answer")]
        answers = [a for a in (answers if isinstance(answers, list) else [answers]) if isinstance(a, str) and a.strip()]
        answerable = bool(r.get("answerable", True)) and bool(answers)
        if not isinstance(question, str) or not question.strip():
            continue
        labelled = [
            (scorer_text(chunk.context, sentence), 1.0 if answerable and mentions(sentence, answers) else 0.0)
            for chunk in search(question)
            for sentence in split_sentences(chunk.text)
        ]
        if answerable and not any(label for _, label in labelled):
            unused += 1
            continue
        pairs += [{"question": question, "text": text, "label": label} for text, label in labelled]
    return pairs, unused


def _quoted(sentence: str, answer: str) -> bool:
    """Whether an answer quotes `sentence`: it contains it, or shares at least 60% of its words."""
    low = sentence.lower().strip()
    if low and low in answer:
        return True
    words = set(_WORD.findall(low))
    return bool(words) and len(words & set(_WORD.findall(answer))) / len(words) >= 0.6
