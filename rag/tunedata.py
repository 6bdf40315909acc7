"""Tuning data: read records, detect their format, and turn them into chat examples.

Formats, detected from the records (one JSON object per line, a JSON list, or a folder of documents):
- alpaca: {"instruction", "input"?, "output"}
- chat: {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
- qa: {"question", "answer"} (also "answers": [...], as in eval/questions.jsonl)
- text: {"text"}, or a folder of documents: plain language modelling (knowledge injection)
Supervised formats train on the assistant's tokens only. Retrieval-augmented examples (RAFT) are built with
exactly the prompt `rag ask` serves (`rag.prompt.build_messages`). Pure: no model is loaded here.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .prompt import REFUSAL, build_messages
from .records import parse_jsonl
from .text import language, mentions, split_sentences
from .types import Chunk, Hit

FORMATS = ("alpaca", "chat", "qa", "text", "pairs")


@dataclass
class Example:
    """One training example: `messages` (supervised: the last one is the assistant's answer), `text`
    (language modelling), or a (question, passage) `pair` with its `label` (1.0: it answers; for the scorer)."""

    messages: list[dict] | None = None
    text: str | None = None
    meta: dict = field(default_factory=dict)
    pair: tuple[str, str] | None = None
    label: float | None = None


def read_records(path: str | Path) -> list[dict]:
    """Records from a .jsonl file, a .json list, or {"text"} records from a folder of documents."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"tuning data {path} does not exist")
    if path.is_dir():
        from .documents import discover, load_file

        files, _ = discover([path])
        records = []
        for sf in files:
            try:
                text = "\n\n".join(d.text for d in load_file(sf.path, sf.source))
            except Exception:  # unreadable documents are simply not training data
                continue
            records.append({"text": text, "source": sf.source})
        if not records:
            raise ConfigError(f"no readable documents under {path}")
        return records
    raw = path.read_text(encoding="utf-8-sig")
    if not raw.strip():
        raise ConfigError(f"tuning data {path} is empty")
    if path.suffix == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: line {exc.lineno} column {exc.colno} ({exc.msg})") from exc
        if _is_public_qa(data):
            return qa_dataset_pairs(path, "cmrc" if isinstance(data, list) else "squad")
        if not isinstance(data, list):
            raise ConfigError(f"{path} must hold a JSON list of records (or SQuAD/CMRC 2018 data)")
        return data
    records = parse_jsonl(raw, str(path))
    if not records:
        raise ConfigError(f"tuning data {path} has no records")
    return records


def detect_format(records: Sequence[dict]) -> str:
    """The format of `records` (see the module doc), from the first record; ConfigError if unknown."""
    first = records[0] if records else {}
    if "label" in first and "question" in first and "text" in first:
        return "pairs"
    if "messages" in first:
        return "chat"
    if "instruction" in first and "output" in first:
        return "alpaca"
    if "question" in first and ("answer" in first or "answers" in first):
        return "qa"
    if "text" in first:
        return "text"
    raise ConfigError(
        f"unknown tuning data format (first record has keys {sorted(first)}); expected alpaca "
        "(instruction/input/output), chat (messages), qa (question/answer), text, or pairs (question/text/label)"
    )


def to_examples(records: Sequence[dict], fmt: str | None = None) -> tuple[str, list[Example]]:
    """Convert records to examples, checking each; errors name the record (1-based)."""
    fmt = fmt or detect_format(records)
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    examples = []
    for number, r in enumerate(records, start=1):
        where = f"record {number}"
        if fmt == "alpaca":
            if not _text(r.get("instruction")) or not _text(r.get("output")):
                raise ConfigError(f"{where}: alpaca records need non-empty 'instruction' and 'output'")
            prompt = r["instruction"] + (f"\n\n{r['input']}" if _text(r.get("input")) else "")
            examples.append(
                Example(messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": r["output"]}])
            )
        elif fmt == "chat":
            msgs = r.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise ConfigError(f"{where}: 'messages' must be a non-empty list")
            for m in msgs:
                if (
                    not isinstance(m, dict)
                    or m.get("role") not in ("system", "user", "assistant")
                    or not isinstance(m.get("content"), str)
                ):
                    raise ConfigError(
                        f"{where}: every message needs a role (system/user/assistant) and a string content"
                    )
            if msgs[-1]["role"] != "assistant":
                raise ConfigError(f"{where}: the last message must be the assistant's answer")
            examples.append(Example(messages=[{"role": m["role"], "content": m["content"]} for m in msgs]))
        elif fmt == "qa":
            answer = r.get("answer") or (r.get("answers") or [None])[0]
            if not _text(r.get("question")) or not _text(answer):
                if r.get("answerable") is False:
                    answer = REFUSAL[language(r.get("question", ""))]
                else:
                    raise ConfigError(f"{where}: qa records need a non-empty 'question' and 'answer'")
            # the closed-book prompt `rag ask --closed-book` (and the eval's ft system) serves it with
            messages = build_messages(r["question"], []) + [{"role": "assistant", "content": answer}]
            examples.append(Example(messages=messages, meta=r))
        elif fmt == "pairs":
            label = r.get("label")
            if not _text(r.get("question")) or not _text(r.get("text")) or label not in (0, 1, 0.0, 1.0, True, False):
                raise ConfigError(f"{where}: pairs need a non-empty 'question' and 'text' and a 'label' of 0 or 1")
            examples.append(Example(pair=(r["question"], r["text"]), label=float(label)))
        else:
            if not _text(r.get("text")):
                raise ConfigError(f"{where}: text records need a non-empty 'text'")
            examples.append(Example(text=r["text"]))
    return fmt, examples


def train_records(records: Sequence[dict]) -> tuple[list[dict], dict[str, int]]:
    """The records tuning may learn from, and how many of each other split were left out: a question set
    written for `rag eval` marks its records "split": "train" / "dev" / "test", and a model must never learn
    the questions it is judged on. Records without a split are training data.

    >>> train_records([{"q": 1}, {"q": 2, "split": "train"}, {"q": 3, "split": "test"}, {"q": 4, "split": "test"}])
    ([{'q': 1}, {'q': 2, 'split': 'train'}], {'test': 2})
    """
    kept, left = [], {}
    for r in records:
        split = r.get("split", "train") if isinstance(r, dict) else "train"
        if split == "train":
            kept.append(r)
        else:
            left[str(split)] = left.get(str(split), 0) + 1
    return kept, left


def left_out_note(left: dict[str, int]) -> str:
    """What `train_records` left out, for the user ("" when nothing).

    >>> left_out_note({"test": 2, "dev": 1})
    'left out 3 records of the dev and test splits (a model never learns the questions it is judged on)'
    """
    if not left:
        return ""
    n = sum(left.values())
    return (
        f"left out {n} record{'s' if n != 1 else ''} of the {' and '.join(sorted(left))} split"
        f"{'s' if len(left) > 1 else ''} (a model never learns the questions it is judged on)"
    )


def is_feedback(records: Sequence[dict]) -> bool:
    """Records from `rag serve`'s feedback log (POST /v1/feedback)."""
    return bool(records) and isinstance(records[0], dict) and {"answer_id", "rating"} <= set(records[0])


def _is_public_qa(data) -> bool:
    """SQuAD-shaped JSON ({"data": [articles]}) or the CMRC 2018 dev file's list of contexts."""
    if isinstance(data, dict):
        return isinstance(data.get("data"), list)
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "context_text" in data[0]


def qa_dataset_pairs(path: str | Path, kind: str = "squad", seed: int = 0) -> list[dict]:
    """Scorer pairs (`rag.readerdata.scorer_pairs`) from a SQuAD (or SQuAD-shaped) or CMRC 2018 JSON file."""
    from .eval.datasets import read_public
    from .readerdata import scorer_pairs

    documents, questions = read_public(kind, path)
    return scorer_pairs(documents, questions, seed=seed)


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def data_hash(records: Sequence[dict]) -> str:
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- RAFT


def raft_examples(
    records: Sequence[dict],
    retriever,
    k: int = 3,
    without_gold: float = 0.2,
    seed: int = 0,
    focus: Callable[[str, list[Hit]], list[Hit]] | None = None,
) -> list[Example]:
    """Retrieval-augmented fine-tuning examples (Zhang et al. 2024) in the exact prompt `rag ask` serves.

    For each question/answer record: the gold chunk (the retrieved chunk from a gold `source` that contains
    the answer, else the best one from a gold source; without `sources`, the retrieved chunk that contains the
    answer) among distractors retrieved for the
    question, in shuffled order; the target is the answer followed by the gold passage's citation. A share
    `without_gold` of the examples, and every unanswerable record, have no gold chunk and the refusal as
    target, which teaches the model to refuse.

    `focus(question, passages)` gives the passages as the generator is shown them (`rag ask` orders them by
    the reader and cuts each to its most probable sentence, `[answer] focus`). A question whose gold passage
    loses its answer that way is left out: what the generator should say then is the reader's call.
    """
    rng = random.Random(seed)
    examples = []
    for r in records:
        question = r["question"]
        answers = r.get("answers") or ([r["answer"]] if r.get("answer") else [])
        sources = r.get("sources") or []
        hits = retriever.search(question, k=max(k * 4, 12))
        gold = _gold_chunk(hits, sources, answers)
        distractors = [h for h in hits if gold is None or h.chunk.source not in {gold.chunk.source}]
        drop_gold = gold is None or not answers or rng.random() < without_gold
        passages = distractors[:k] if drop_gold else distractors[: k - 1] + [gold]
        if not drop_gold:
            rng.shuffle(passages)
        passages = [Hit(rank=i + 1, score=h.score, chunk=h.chunk, scores=h.scores) for i, h in enumerate(passages)]
        if focus is not None:
            passages = focus(question, passages)
        if drop_gold:
            target = REFUSAL[language(question)]
        else:
            n = next(i for i, h in enumerate(passages, start=1) if h.chunk.id == gold.chunk.id)
            if focus is not None and not mentions(passages[n - 1].chunk.text, answers):
                continue
            target = f"{answer_sentence(passages[n - 1].chunk.text, answers)} [{n}]"
        messages = build_messages(question, passages)
        messages.append({"role": "assistant", "content": target})
        examples.append(Example(messages=messages, meta={"id": r.get("id"), "gold": not drop_gold}))
    return examples


def _gold_chunk(hits: list[Hit], sources: Sequence[str], answers: Sequence[str]) -> Hit | None:
    """The retrieved chunk that holds an answer, from a gold source when the record names its sources."""
    from_gold = [h for h in hits if not sources or any(h.chunk.source.endswith(s) for s in sources)]
    for h in from_gold:
        if mentions(h.chunk.text, answers):
            return h
    return from_gold[0] if from_gold and sources else None


def answer_sentence(text: str, answers: Sequence[str]) -> str:
    """The sentence of `text` that contains an answer string (the target a RAFT example teaches)."""
    for sentence in split_sentences(text):
        if any(a.lower() in sentence.lower() for a in answers):
            return sentence
    return answers[0] if answers else ""


_FACTUAL = re.compile(r"\d|[A-Z]{2,}")


def qa_from_chunks(chunks: Sequence[Chunk], per_chunk: int = 2) -> list[dict]:
    """Question/answer records drawn from a knowledge base's own sentences with specific facts (numbers,
    codes), so that a user with no labelled questions can still build RAFT data. The "question" is the
    sentence with its fact masked; the answer is the sentence itself."""
    records = []
    for chunk in chunks:
        taken = 0
        for sentence in split_sentences(chunk.text):
            match = _FACTUAL.search(sentence)
            if not match or len(sentence) < 25 or taken >= per_chunk:
                continue
            fact = re.search(r"[\w.:/-]*\d[\w.:/-]*|[A-Z]{2,}[\w-]*", sentence).group()
            lead = f"{chunk.context}: " if chunk.context else ""
            masked = sentence.replace(fact, "___", 1)
            question = (
                f"{lead}{masked} 空白处是什么？"
                if language(sentence) == "zh"
                else f"{lead}{masked} What goes in the blank?"
            )
            records.append({"question": question, "answers": [fact], "sources": [chunk.source], "answerable": True})
            taken += 1
    return records
