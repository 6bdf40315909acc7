"""A character-level cross-encoder for text the evidence scorer cannot read (Chinese, with the bundled MiniLM,
whose vocabulary has 488 CJK characters): does this sentence answer this question.

Overlap features count the question's words in a sentence, and the ask model (`rag.asks`) pairs what a question
asks with what a sentence offers, each as a bag; neither sees which of the question's words a sentence uses
where, so the sentence naming the subject ("黄足笛鲷，又称焦黄笛鲷……") beats the one answering with the subject
dropped ("栖息在珊瑚礁或岩石海岸"). This model reads both texts character by character: embeddings with two
exact-match channels (the character, or a bigram through it, occurs in the other text), one convolution,
attention each way, a comparison of every position with what it attends to, pooled (max and mean) into a
score, plus the same overlap features the ask model trains beside. It is the unread group's "ce" feature in
the reader (`rag.evidence`), whose fit decides its weight, as the cross-encoder's logit is the read group's.

The shipped model (`rag/weights/char-scorer`, about 1 MB, float16) is trained listwise on CMRC 2018 train and
trial (the sentence holding the answer should win among its paragraph's), leaving out the paragraphs the reader
is fitted on: `make char-scorer` (`scripts/char_scorer.py`, ~6 minutes on 2 CPUs). Its scores rank the
sentences of one paragraph; listwise training leaves their level across questions unanchored. On those held-out paragraphs
it picks the answer sentence for 84% of questions, against 81% for the ask model and 74% for overlap alone.

Text is read in Simplified characters, lower-cased, without spaces or punctuation, and cut at `max_chars`.
Inference is numpy; torch is imported only to train. What this module does not do: pick sentences or refuse
(`rag.evidence`), or read English (the MiniLM scorer does, `rag.scorer`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .asks import overlap_features, read_lineage, read_weights
from .atomic import atomic_dir, write_json
from .errors import ConfigError
from .keywords import squeeze

BUNDLED_CHAR_SCORER = Path(__file__).resolve().parent / "weights" / "char-scorer"
WEIGHTS_FILE = "char_scorer.npz"
TORCH_NAMES = {  # CharScorer's parameter -> the name it has in `network`'s state dict
    "embed": "embed.weight",
    "conv_w": "conv.weight",
    "conv_b": "conv.bias",
    "compare_w": "compare.weight",
    "compare_b": "compare.bias",
    "out_w": "out.weight",
    "out_b": "out.bias",
    "overlap_w": "overlap.weight",
    "overlap_b": "overlap.bias",
}
PARAMETERS = tuple(TORCH_NAMES)
PAD, UNKNOWN = 0, 1


def encode(text: str, other: str, vocab: dict[str, int], max_chars: int) -> tuple[list[int], list[list[float]]]:
    """`text`'s character ids (unknown ones 1) and, per character, whether it occurs in `other` and whether a
    bigram through it does; at most `max_chars` characters, never none.

    >>> encode("在哪里", "位于哪里", {"哪": 2, "里": 3}, 10)
    ([1, 2, 3], [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    """
    t = squeeze(text)[:max_chars] or " "
    o = squeeze(other)
    chars, pairs = set(o), {o[i : i + 2] for i in range(len(o) - 1)}
    ids = [vocab.get(c, UNKNOWN) for c in t]
    match = [
        [float(c in chars), float(t[i : i + 2] in pairs or (i > 0 and t[i - 1 : i + 1] in pairs))]
        for i, c in enumerate(t)
    ]
    return ids, match


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class CharScorer:
    """The character vocabulary (id 0 is padding, 1 unknown), the network's weights (`PARAMETERS`, as the
    torch modules of `train` name them), and `info`, the training record (rag_tune.json)."""

    vocab: dict[str, int]
    params: dict[str, np.ndarray]
    max_chars: int = 100
    info: dict = field(default_factory=dict)

    def _encode(self, ids: list[int], match: list[list[float]]) -> np.ndarray:
        p = self.params
        x = np.concatenate([p["embed"][ids], np.asarray(match, np.float32)], axis=1)
        x = np.pad(x, ((1, 1), (0, 0)))
        w = p["conv_w"]  # (out, in, 3), as torch's Conv1d with padding 1
        n = len(ids)
        h = sum(x[k : k + n] @ w[:, :, k].T for k in range(3)) + p["conv_b"]
        return np.maximum(h, 0.0)

    def _compare(self, h: np.ndarray, attended: np.ndarray) -> np.ndarray:
        both = np.concatenate([h, attended, h * attended, np.abs(h - attended)], axis=1)
        return np.maximum(both @ self.params["compare_w"].T + self.params["compare_b"], 0.0)

    def scores(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """The model's score of each sentence for `question` (higher: more likely to answer it)."""
        p = self.params
        out = np.zeros(len(sentences), dtype=np.float32)
        scale = math.sqrt(p["embed"].shape[1])
        for k, sentence in enumerate(sentences):
            hq = self._encode(*encode(question, sentence, self.vocab, self.max_chars))
            hs = self._encode(*encode(sentence, question, self.vocab, self.max_chars))
            a = hq @ hs.T / scale
            cq = self._compare(hq, _softmax(a, 1) @ hs)
            cs = self._compare(hs, _softmax(a, 0).T @ hq)
            pooled = np.concatenate([cq.max(0), cq.mean(0), cs.max(0), cs.mean(0)])
            overlap = np.asarray(overlap_features(question, sentence), np.float32)
            out[k] = float(pooled @ p["out_w"][0] + p["out_b"][0] + overlap @ p["overlap_w"][0] + p["overlap_b"][0])
        return out

    @classmethod
    def load(cls, folder: str | Path) -> CharScorer:
        folder = Path(folder)
        path = folder / WEIGHTS_FILE
        writers = "scripts/char_scorer.py (make char-scorer) or rag tune --task char-scorer"
        with read_weights(folder, WEIGHTS_FILE, "character scorer", "make char-scorer", writers) as z:
            chars = z["chars"].tolist()
            params = {name: z[name].astype(np.float32) for name in PARAMETERS}
            max_chars = int(z["max_chars"])
        vocab = {c: i + 2 for i, c in enumerate(chars)}
        dim = params["embed"].shape[1] if params["embed"].ndim == 2 else -1
        expected = {
            "embed": (len(vocab) + 2, dim),
            "conv_w": (dim, dim + 2, 3),
            "conv_b": (dim,),
            "compare_w": (dim, 4 * dim),
            "compare_b": (dim,),
            "out_w": (1, 4 * dim),
            "out_b": (1,),
            "overlap_w": (1, 3),
            "overlap_b": (1,),
        }
        wrong = [f"{n} {params[n].shape} (expected {s})" for n, s in expected.items() if params[n].shape != s]
        if max_chars < 1:
            wrong.append(f"max_chars {max_chars} (expected at least 1)")
        if wrong:
            raise ConfigError(f"{path} is not a consistent character scorer: {', '.join(wrong)}; retrain it")
        if not all(np.isfinite(v).all() for v in params.values()):
            raise ConfigError(f"{path} holds non-finite weights (training diverged); retrain it with a lower --lr")
        return cls(vocab, params, max_chars, read_lineage(folder, "make char-scorer"))

    def save(self, folder: str | Path) -> None:
        """Write the model to `folder` atomically (weights in float16)."""
        with np.errstate(over="ignore"):
            if not all(np.isfinite(v.astype(np.float16)).all() for v in self.params.values()):
                raise ConfigError(
                    "the character scorer's weights are not finite in float16 (training diverged); retrain with a "
                    "lower learning rate"
                )
        with atomic_dir(folder) as tmp:
            np.savez(
                tmp / WEIGHTS_FILE,
                chars=np.array(sorted(self.vocab, key=self.vocab.get)),
                max_chars=np.array(self.max_chars),
                **{name: self.params[name].astype(np.float16) for name in PARAMETERS},
            )
            write_json(tmp / "rag_tune.json", self.info)


def load_char_scorer(name: str | None) -> CharScorer | None:
    """The character scorer a config names: "bundled", a folder, or "none" (None)."""
    if name in (None, "", "none"):
        return None
    folder = BUNDLED_CHAR_SCORER if name == "bundled" else Path(name).expanduser()
    if name == "bundled" and not (folder / WEIGHTS_FILE).is_file():
        return None  # a checkout without the shipped weights reads without it
    return CharScorer.load(folder)


# ---------------------------------------------------------------------------------------------------- training


def tensors(question: str, sentences: Sequence[str], vocab: dict[str, int], max_chars: int):
    """`network`'s input for scoring `sentences` against `question`: both sides' character ids and match
    channels, padded, and the overlap features."""
    import torch

    def padded(items: list[tuple[list[int], list[list[float]]]]):
        length = max(len(ids) for ids, _ in items)
        ids = torch.zeros(len(items), length, dtype=torch.long)
        match = torch.zeros(len(items), length, 2)
        for k, (i, m) in enumerate(items):
            ids[k, : len(i)] = torch.tensor(i)
            match[k, : len(m)] = torch.tensor(m)
        return ids, match

    q = padded([encode(question, s, vocab, max_chars) for s in sentences])
    s = padded([encode(s, question, vocab, max_chars) for s in sentences])
    return q, s, torch.tensor([overlap_features(question, x) for x in sentences], dtype=torch.float32)


def network(rows: int, dim: int, dropout: float = 0.0):
    """The torch module `train` fits and `CharScorer.scores` computes in numpy: `rows` character embeddings
    (padding and unknown included) of `dim` values."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(rows, dim, padding_idx=PAD)
            self.conv = torch.nn.Conv1d(dim + 2, dim, 3, padding=1)
            self.compare = torch.nn.Linear(4 * dim, dim)
            self.out = torch.nn.Linear(4 * dim, 1)
            self.overlap = torch.nn.Linear(3, 1)
            self.drop = torch.nn.Dropout(dropout)

        def encode(self, ids, match):
            x = torch.cat([self.drop(self.embed(ids)), match], -1)
            return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2), ids > 0

        def forward(self, q, s, overlap):
            hq, mq = self.encode(*q)
            hs, ms = self.encode(*s)
            a = hq @ hs.transpose(1, 2) / math.sqrt(dim)
            aq = a.masked_fill(~ms[:, None, :], -1e4).softmax(-1) @ hs
            as_ = a.masked_fill(~mq[:, :, None], -1e4).softmax(1).transpose(1, 2) @ hq

            def compare(h, att, mask):
                c = torch.relu(self.compare(torch.cat([h, att, h * att, (h - att).abs()], -1)))
                top = c.masked_fill(~mask[..., None], -1e4).max(1).values
                mean = (c * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
                return [top, mean]

            pooled = torch.cat(compare(hq, aq, mq) + compare(hs, as_, ms), -1)
            return self.out(pooled).squeeze(-1) + self.overlap(overlap).squeeze(-1)

    return Net()


def train(
    data: Sequence[tuple[str, list[str], list[bool]]],
    dim: int = 96,
    epochs: int = 2,
    max_chars: int = 100,
    min_count: int = 3,
    learning_rate: float = 1e-3,
    dropout: float = 0.1,
    seed: int = 0,
    progress=None,
    init: CharScorer | None = None,
) -> CharScorer:
    """Train on `rag.asks.examples(...)` groups (question, its paragraph's sentences, which hold the answer):
    characters seen `min_count` times get an embedding; listwise softmax loss per question, AdamW with the
    learning rate falling linearly to 0, one question a step. With `init`, training continues from that model,
    on its characters (`dim`, `max_chars` and `min_count` are then its)."""
    import torch

    if not data:
        raise ConfigError("no training examples: each needs a question and a paragraph holding its answer")
    torch.manual_seed(seed)
    if init is not None:
        vocab, max_chars = init.vocab, init.max_chars
        dim = int(init.params["embed"].shape[1])
        min_count = init.info.get("hyperparameters", {}).get("min_count", min_count)
    else:
        counts: Counter = Counter()
        for question, sentences, _ in data:
            counts.update(squeeze(question))
            for s in sentences:
                counts.update(squeeze(s))
        vocab = {c: i + 2 for i, c in enumerate(sorted(c for c, n in counts.items() if n >= min_count))}
    if not vocab:
        raise ConfigError(
            f"too little training data: no character occurs {min_count} times; give more examples, or continue "
            "from the shipped model (rag tune --task char-scorer --init-adapter bundled)"
        )

    net = network(len(vocab) + 2, dim, dropout)
    if init is not None:
        net.load_state_dict({TORCH_NAMES[name]: torch.from_numpy(value) for name, value in init.params.items()})
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=0.01)
    total_steps = max(1, epochs * len(data))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total_steps))
    order = list(range(len(data)))
    history = []
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(order)
        total = 0.0
        for n in order:
            question, sentences, labels = data[n]
            z = net(*tensors(question, sentences, vocab, max_chars))
            wanted = torch.tensor(labels)
            loss = torch.logsumexp(z, 0) - torch.logsumexp(z[wanted], 0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        history.append({"epoch": epoch + 1, "loss": round(total / len(data), 4)})
        if progress:
            progress(f"epoch {epoch + 1}/{epochs}: listwise loss {total / len(data):.4f}")
    state = {name: value.detach().numpy().astype(np.float32) for name, value in net.state_dict().items()}
    params = {name: state[TORCH_NAMES[name]] for name in PARAMETERS}
    info = {
        "task": "char-scorer",
        "examples": len(data),
        "hyperparameters": {
            "dim": dim,
            "epochs": epochs,
            "max_chars": max_chars,
            "min_count": min_count,
            "learning_rate": learning_rate,
            "dropout": dropout,
            "seed": seed,
        },
        "characters": len(vocab),
        "history": history,
    }
    return CharScorer(vocab, params, max_chars, info)


def top1(model: CharScorer, data: Sequence[tuple[str, list[str], list[bool]]]) -> float:
    """Share of questions whose highest-scoring sentence holds the answer: a held-out check of a model."""
    hits = sum(bool(labels[int(np.argmax(model.scores(q, sentences)))]) for q, sentences, labels in data)
    return hits / (len(data) or 1)
