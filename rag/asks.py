"""What a question asks for against what a sentence offers, learned from data, for text the evidence scorer
cannot read (Chinese, with the bundled MiniLM).

Word overlap finds the sentences about a question's subject; it cannot tell which of them holds the kind of
thing asked: "在哪里" wants a place (位于, 省, 路), "为什么" a cause (因, 由于), "生活习性" a habitat (栖息). This
model learns such pairings from questions and the sentences that answer them. A question is the mean of
vectors for its characters and character bigrams; a sentence, the mean of vectors for the characters and
bigrams it adds beyond the question; their dot product is the score, one feature of the reader's "unread"
group (`rag.evidence`) whose weight the reader's fit decides. It is trained listwise: among the sentences of
a question's paragraph, the one holding the answer should score highest (with the overlap features alongside,
so it learns what overlap misses). The shipped model (`rag/weights/asks`, a few hundred KB, reproduced by
`make asks`) is trained on CMRC 2018 train and trial, leaving out the paragraphs the reader is fitted on.

Text is compared in Simplified characters, lower-cased, without spaces or punctuation. Units the model never
saw (names, rare words) add nothing; a question with none scores 0.

What this module does not do: pick sentences or decide refusals (`rag.evidence`); torch is imported only to
train.
"""

from __future__ import annotations

import json
import math
import random
import zipfile
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_dir, write_json
from .errors import ConfigError
from .keywords import bigrams, squeeze
from .text import split_sentences

BUNDLED_ASKS = Path(__file__).resolve().parent / "weights" / "asks"
WEIGHTS_FILE = "asks.npz"


def units(text: str) -> set[str]:
    """The characters and character bigrams of `text` (as `rag.keywords.squeeze` leaves it).

    >>> sorted(units("在哪里"))
    ['哪', '哪里', '在', '在哪', '里']
    """
    return set(squeeze(text)) | bigrams(text)


def overlap_features(question: str, sentence: str) -> list[float]:
    """What training puts beside the learned score (so the score learns what these miss): the share of the
    question's bigrams and characters in the sentence, and the sentence's log length."""
    q, s, qb = squeeze(question), squeeze(sentence), bigrams(question)
    return [
        len(qb & bigrams(sentence)) / (len(qb) or 1),
        len(set(q) & set(s)) / (len(set(q)) or 1),
        math.log1p(len(s)) / 5,
    ]


@dataclass
class AskModel:
    """Vectors for question units and sentence units; `info` is the training record (rag_tune.json)."""

    question_vocab: dict[str, int]
    sentence_vocab: dict[str, int]
    question_vectors: np.ndarray  # (len(question_vocab), dim), float32 (stored as float16)
    sentence_vectors: np.ndarray
    info: dict = field(default_factory=dict)

    def scores(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """The score of each sentence for `question` (0 where either side has no known unit).

        >>> m = AskModel({"哪": 0}, {"位": 0, "年": 1}, np.array([[1.0]]), np.array([[2.0], [-1.0]]))
        >>> m.scores("总部在哪里？", ["总部位于上海。", "成立于1990年。", "好"]).tolist()
        [2.0, -1.0, 0.0]
        """
        asked = units(question)
        q = [self.question_vocab[u] for u in asked if u in self.question_vocab]
        out = np.zeros(len(sentences), dtype=np.float32)
        if not q:
            return out
        qv = self.question_vectors[q].mean(axis=0)
        for i, sentence in enumerate(sentences):
            s = [self.sentence_vocab[u] for u in units(sentence) - asked if u in self.sentence_vocab]
            if s:
                out[i] = float(self.sentence_vectors[s].mean(axis=0) @ qv)
        return out

    @classmethod
    def load(cls, folder: str | Path) -> AskModel:
        folder = Path(folder)
        path = folder / WEIGHTS_FILE
        with read_weights(folder, WEIGHTS_FILE, "ask model", "make asks", "rag.asks.AskModel.save (make asks)") as z:
            qv = {u: i for i, u in enumerate(z["question_units"].tolist())}
            sv = {u: i for i, u in enumerate(z["sentence_units"].tolist())}
            vectors = [z[name].astype(np.float32) for name in ("question_vectors", "sentence_vectors")]
            model = cls(qv, sv, *vectors)
        q, s = model.question_vectors.shape, model.sentence_vectors.shape
        if q[0] != len(qv) or s[0] != len(sv) or q[1:] != s[1:] or len(q) != 2:
            raise ConfigError(
                f"{path} is not a consistent ask model: {len(qv)} question units for vectors {q}, {len(sv)} sentence "
                f"units for vectors {s}; retrain it (make asks)"
            )
        if not (np.isfinite(model.question_vectors).all() and np.isfinite(model.sentence_vectors).all()):
            raise ConfigError(f"{path} holds non-finite vectors (training diverged); retrain it with a lower --lr")
        model.info = read_lineage(folder, "make asks")
        return model

    def save(self, folder: str | Path) -> None:
        """Write the model to `folder` atomically (vectors in float16: the scores need no more)."""
        for vectors in (self.question_vectors, self.sentence_vectors):
            with np.errstate(over="ignore"):
                finite = np.isfinite(vectors.astype(np.float16)).all()
            if not finite:
                raise ConfigError(
                    "the ask model's vectors are not finite in float16 (training diverged); retrain with a lower "
                    "learning rate (--lr)"
                )
        with atomic_dir(folder) as tmp:
            np.savez(
                tmp / WEIGHTS_FILE,
                question_units=np.array(sorted(self.question_vocab, key=self.question_vocab.get)),
                sentence_units=np.array(sorted(self.sentence_vocab, key=self.sentence_vocab.get)),
                question_vectors=self.question_vectors.astype(np.float16),
                sentence_vectors=self.sentence_vectors.astype(np.float16),
            )
            write_json(tmp / "rag_tune.json", self.info)


@contextmanager
def read_weights(folder: Path, file: str, what: str, retrain: str, writers: str):
    """`np.load` (no pickles) of a model's weights, `folder / file`; a folder without the file is a ConfigError
    naming the `writers` that make one, and a file that is not a readable archive, or lacks an array the body
    asks for, one naming `what` and how to `retrain` it."""
    path = folder / file
    if not path.is_file():
        raise ConfigError(
            f"{folder} is not {'an' if what[0] in 'aeiou' else 'a'} {what} folder (no {file}); give 'bundled', "
            f"'none', or a folder that {writers} wrote"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            yield z
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path} is not a readable {what} ({exc}); retrain it ({retrain})") from exc


def read_lineage(folder: Path, retrain: str) -> dict:
    """The training record (rag_tune.json) beside a model's weights, {} when there is none."""
    lineage = folder / "rag_tune.json"
    if not lineage.is_file():
        return {}
    try:
        info = json.loads(lineage.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{lineage} is not readable JSON ({exc}); retrain the model ({retrain})") from exc
    if not isinstance(info, dict):
        raise ConfigError(f"{lineage} is not a JSON object; retrain the model ({retrain})")
    return info


def load_asks(name: str | None) -> AskModel | None:
    """The ask model a config names: "bundled", a folder, or "none" (None)."""
    if name in (None, "", "none"):
        return None
    folder = BUNDLED_ASKS if name == "bundled" else Path(name).expanduser()
    if name == "bundled" and not (folder / WEIGHTS_FILE).is_file():
        return None  # a checkout without the shipped weights reads without it
    return AskModel.load(folder)


# ---------------------------------------------------------------------------------------------------- training


def examples(documents: Sequence[dict], questions: Sequence[dict]) -> list[tuple[str, list[str], list[bool]]]:
    """(question, the sentences of its paragraph, which of them hold a gold answer) for each question whose
    answer is in some but not all of its paragraph's sentences (split as the reader splits them). Documents and
    questions as `rag.eval.datasets.read_public` gives them."""
    text = {d["id"]: d["text"] for d in documents}
    cache: dict[str, list[str]] = {}
    out = []
    for q in questions:
        pid = q["sources"][0] if q.get("sources") else None
        if pid not in text:
            continue
        if pid not in cache:
            cache[pid] = [s for s in split_sentences(text[pid]) if len(squeeze(s)) >= 2]
        sentences = cache[pid]
        answers = [squeeze(a) for a in q.get("answers", []) if squeeze(a)]
        labels = [any(a in squeeze(s) for a in answers) for s in sentences]
        if any(labels) and not all(labels):
            out.append((q["question"], sentences, labels))
    return out


def train(
    data: Sequence[tuple[str, list[str], list[bool]]],
    dim: int = 16,
    epochs: int = 2,
    question_min: int = 20,
    sentence_min: int = 100,
    learning_rate: float = 3e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    progress=None,
    init: AskModel | None = None,
) -> AskModel:
    """Train an ask model on `examples(...)`: units seen in at least `question_min` questions or
    `sentence_min` sentences get a vector; listwise softmax loss per question, AdamW, one question a step.
    With `init`, training continues from that model, on its units (`dim` and the minimums are then its)."""
    import torch

    if not data:
        raise ConfigError("no training examples: each needs a question and a paragraph holding its answer")
    torch.manual_seed(seed)
    if init is not None:
        qv = {u: i + 1 for u, i in init.question_vocab.items()}
        sv = {u: i + 1 for u, i in init.sentence_vocab.items()}
        dim = int(init.question_vectors.shape[1])
        known = init.info.get("hyperparameters", {})
        question_min = known.get("question_min", question_min)
        sentence_min = known.get("sentence_min", sentence_min)
    else:
        q_count: Counter = Counter()
        s_count: Counter = Counter()
        for question, sentences, _ in data:
            q_count.update(units(question))
            for s in sentences:
                s_count.update(units(s))
        qv = {u: i + 1 for i, u in enumerate(sorted(u for u, n in q_count.items() if n >= question_min))}
        sv = {u: i + 1 for i, u in enumerate(sorted(u for u, n in s_count.items() if n >= sentence_min))}
    if not qv or not sv:
        raise ConfigError(
            f"too little training data: no unit is in {question_min} questions and another in {sentence_min} "
            "sentences; give more examples, or continue from the shipped model (rag tune --task asks "
            "--init-adapter bundled)"
        )

    encoded = []
    for question, sentences, labels in data:
        asked = units(question)
        q_ids = [qv[u] for u in asked if u in qv] or [0]
        s_ids = [[sv[u] for u in units(s) - asked if u in sv] or [0] for s in sentences]
        offsets = np.cumsum([0] + [len(x) for x in s_ids[:-1]])
        base = torch.tensor([overlap_features(question, s) for s in sentences])
        flat = torch.tensor([i for x in s_ids for i in x])
        encoded.append((base, torch.tensor(q_ids), flat, torch.tensor(offsets), torch.tensor(labels)))

    q_bag = torch.nn.EmbeddingBag(len(qv) + 1, dim, mode="mean", padding_idx=0)
    s_bag = torch.nn.EmbeddingBag(len(sv) + 1, dim, mode="mean", padding_idx=0)
    for bag in (q_bag, s_bag):
        torch.nn.init.normal_(bag.weight, 0.0, 0.1)
        with torch.no_grad():
            bag.weight[0].zero_()
    linear = torch.nn.Linear(3, 1)
    if init is not None:
        with torch.no_grad():
            q_bag.weight[1:] = torch.from_numpy(init.question_vectors.astype(np.float32))
            s_bag.weight[1:] = torch.from_numpy(init.sentence_vectors.astype(np.float32))
            if "overlap_weights" in init.info:
                linear.weight[0] = torch.tensor(init.info["overlap_weights"], dtype=torch.float32)
    params = [*q_bag.parameters(), *s_bag.parameters(), *linear.parameters()]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    order = list(range(len(encoded)))
    history = []
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(order)
        total = 0.0
        for n in order:
            base, q_ids, flat, offsets, labels = encoded[n]
            z = linear(base).squeeze(-1) + (s_bag(flat, offsets) @ q_bag(q_ids[None]).T).squeeze(-1)
            loss = torch.logsumexp(z, 0) - torch.logsumexp(z[labels], 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append({"epoch": epoch + 1, "loss": round(total / len(encoded), 4)})
        if progress:
            progress(f"epoch {epoch + 1}/{epochs}: listwise loss {total / len(encoded):.4f}")
    q_vectors = q_bag.weight.detach().numpy()[1:]
    s_vectors = s_bag.weight.detach().numpy()[1:]
    info = {
        "task": "asks",
        "examples": len(encoded),
        "hyperparameters": {
            "dim": dim,
            "epochs": epochs,
            "question_min": question_min,
            "sentence_min": sentence_min,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "seed": seed,
        },
        "units": {"question": len(qv), "sentence": len(sv)},
        "overlap_weights": [round(float(w), 4) for w in linear.weight.detach().numpy()[0]],
        "history": history,
    }
    return AskModel({u: i - 1 for u, i in qv.items()}, {u: i - 1 for u, i in sv.items()}, q_vectors, s_vectors, info)


def listwise(pairs: Sequence[tuple[str, str, float]]) -> list[tuple[str, list[str], list[bool]]]:
    """(question, texts, labels) groups from (question, text, label) pairs, in first-seen order, keeping the
    questions with both an answering text (label >= 0.5) and another.

    >>> listwise([("q", "a", 1.0), ("r", "c", 1.0), ("q", "b", 0.0)])
    [('q', ['a', 'b'], [True, False])]
    """
    groups: dict[str, tuple[list[str], list[bool]]] = {}
    for question, text, label in pairs:
        texts, labels = groups.setdefault(question, ([], []))
        texts.append(text)
        labels.append(label >= 0.5)
    return [(q, t, y) for q, (t, y) in groups.items() if any(y) and not all(y)]


def top1(model: AskModel, data: Sequence[tuple[str, list[str], list[bool]]], ask: bool = True) -> float:
    """Share of questions whose highest-scoring sentence (the ask score, unless not `ask`, plus the overlap
    features as training weighed them) holds the answer: a held-out check of a trained model."""
    weights = model.info.get("overlap_weights", [1.0, 1.0, 0.0])
    hits = 0
    for question, sentences, labels in data:
        z = (model.scores(question, sentences) if ask else 0.0) + np.array(
            [np.dot(weights, overlap_features(question, s)) for s in sentences]
        )
        hits += bool(labels[int(np.argmax(z))])
    return hits / (len(data) or 1)
