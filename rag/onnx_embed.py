"""Embed with onnxruntime from a one-time ONNX export of a sentence-transformers model: no torch, no transformers.

`OnnxEmbedder` has the `Embedder` interface of `rag.embeddings` and gives the vectors `SentenceTransformerEmbedder`
gives (cosine >= 0.999 in fp32, tested), so an index built with one backend is searched with the other. From the
export (`rag.models.prepare_embedder`: the transformer as ONNX in fp32 and int8, `tokenizer.json`, `export.json`)
it tokenizes with the `tokenizers` library, cuts at the model's max_seq_length, runs the graph, then pools with the
model's own sentence-transformers pooling (`pool`: mean, cls, max, lasttoken, ...) and normalises, in numpy.
A missing or stale export is made on first use, once (that one time imports torch); `rag prepare` makes it ahead.

What this module does not do: export models (`rag.models`), pick the backend (`rag.embeddings.load_embedder`),
or run models with sentence-transformers modules other than Transformer, Pooling and Normalize (the export
refuses them with a message that says to use the torch backend).
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np

from .config import EmbedConfig
from .embeddings import batches, coverage_of, encode_groups, model_card_languages
from .errors import ConfigError, require
from .models import prepare_embedder

# padded tokens per batch on a CPU, as for torch (`SentenceTransformerEmbedder._encode`); embed_bench measures both
CPU_BATCH_TOKENS = 2048


def pool(tokens: np.ndarray, mask: np.ndarray, modes: list[str]) -> np.ndarray:
    """Sentence vectors from token vectors (batch, seq, dim) and the attention mask (batch, seq), as
    sentence-transformers' `Pooling` computes them; several modes are concatenated in the order given.

    >>> tokens = np.array([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]], dtype=np.float32)
    >>> mask = np.array([[1, 1, 0]])
    >>> pool(tokens, mask, ["mean"]).tolist(), pool(tokens, mask, ["cls", "lasttoken"]).tolist()
    ([[2.0, 1.0]], [[1.0, 0.0, 3.0, 2.0]])
    """
    tokens = tokens.astype(np.float32, copy=False)
    weights = mask.astype(np.float32)[..., None]
    out = []
    for mode in modes:
        if mode == "cls":  # the first real token (left padding moves it)
            out.append(tokens[np.arange(len(tokens)), mask.argmax(axis=1)])
        elif mode == "lasttoken":  # the last real token, wherever the padding is
            last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            out.append(tokens[np.arange(len(tokens)), last] * mask[np.arange(len(tokens)), last, None])
        elif mode == "max":
            out.append(np.where(weights > 0, tokens, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            counts = np.clip(weights.sum(axis=1), 1e-9, None)
            out.append((tokens * weights).sum(axis=1) / (counts if mode == "mean" else np.sqrt(counts)))
        elif mode == "weightedmean":  # position weights 1, 2, ... counted from the first real token
            positions = np.arange(1, mask.shape[1] + 1, dtype=np.float32)[None, :] - mask.argmax(axis=1)[:, None]
            w = weights * positions[..., None]
            out.append((tokens * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None))
        else:
            raise ConfigError(f"pooling mode {mode!r} is not one the ONNX backend knows; use backend = 'torch'")
    return np.concatenate(out, axis=1) if len(out) > 1 else out[0]


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero), as torch.nn.functional.normalize does."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _note(message: str) -> None:
    print(f"rag: {message}", file=sys.stderr, flush=True)


class OnnxEmbedder:
    """A sentence-transformers model on onnxruntime. `id` is the name given in the config (recorded in the index)."""

    def __init__(self, config: EmbedConfig):
        self.config = config
        self.id = config.model
        self._session = None
        self._lock = threading.Lock()

    # Loading -------------------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            ort = require("onnxruntime", purpose="the ONNX embedder backend ([embed] backend = 'onnx')")
            from tokenizers import Tokenizer

            folder = prepare_embedder(self.id, progress=_note)
            meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
            self._folder, self._meta = folder, meta
            # two tokenizers: counting sees whole texts (chunk sizes), encoding sees what the model sees
            self._counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._counter.no_truncation()
            self._counter.no_padding()
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._tokenizer.enable_truncation(meta["max_seq_length"])
            self._tokenizer.no_padding()
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # onnxruntime warns about unused initialisers of the traced graph
            # idle worker threads that spin keep the cores from numpy's BLAS in the search right after a query
            # embedding (as torch's did, see rag.vectors): on 2 CPUs, under load, embedding a query and searching
            # 100k vectors took 9 + 18 ms without spinning, 21 + 40 ms with it
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(folder / meta["files"][self.config.quantize]), options, providers=self._providers(ort)
            )

    def _providers(self, ort) -> list[str]:
        device = self.config.device or "cpu"
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        raise ConfigError(
            f"embedder device {device!r} is not available to onnxruntime (it has {ort.get_available_providers()}); "
            "set [embed] device = 'cpu', use backend = 'torch' on a GPU, or pip install onnxruntime-gpu"
        )

    @property
    def model(self):
        """The onnxruntime session (loads the export, making it first when missing)."""
        self._load()
        return self._session

    @property
    def dim(self) -> int:
        self._load()
        return int(self._meta["dim"])

    @property
    def max_seq_length(self) -> int:
        self._load()
        return int(self._meta["max_seq_length"])

    @property
    def max_tokens(self) -> int:
        self._load()
        specials = len(self._counter.encode("", add_special_tokens=True).ids)
        prefix = self.count_tokens(self.config.document_prefix) if self.config.document_prefix else 0
        return self.max_seq_length - specials - prefix

    @property
    def languages(self) -> list[str] | None:
        """Languages the model was trained for: the config's, else its model card's, else None (unknown)."""
        if self.config.languages is not None:
            return list(self.config.languages)
        self._load()
        if not hasattr(self, "_languages"):
            self._languages = model_card_languages(self._folder)  # the export keeps a copy of the card
        return self._languages

    # Encoding ------------------------------------------------------------------------------------------

    def _token_ids(self, text: str) -> list[int]:
        self._load()
        return self._counter.encode(text, add_special_tokens=False).ids

    def count_tokens(self, text: str) -> int:
        return len(self._token_ids(text))

    def coverage(self, text: str) -> float:
        return coverage_of(text, self.languages, self._token_ids, self._meta.get("unk_id"))

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        budget = self.config.batch_tokens or (16384 if self.config.device not in (None, "cpu") else CPU_BATCH_TOKENS)
        groups = batches([len(e.ids) for e in encodings], self.config.batch_size, budget)
        return encode_groups(groups, self.dim, lambda rows: self._run([encodings[i] for i in rows]), progress)

    def _run(self, encodings) -> np.ndarray:
        meta = self._meta
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), meta["pad_id"], dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        left = meta.get("padding_side") == "left"
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            span = slice(width - n, width) if left else slice(0, n)
            ids[row, span], mask[row, span], types[row, span] = enc.ids, 1, enc.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (tokens,) = self._session.run(None, {name: feeds[name] for name in meta["inputs"]})
        return normalize(pool(tokens, mask, meta["pooling"]))

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        prefix = self.config.document_prefix
        return self._encode([prefix + t for t in texts] if prefix else list(texts), progress)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        prefix = self.config.query_prefix
        return self._encode([prefix + t for t in texts] if prefix else list(texts), False)

    def describe(self) -> dict:
        return {
            "id": self.id,
            "dim": self.dim,
            "max_seq_length": self.max_seq_length,
            "query_prefix": self.config.query_prefix,
            "document_prefix": self.config.document_prefix,
            "normalized": True,
            "languages": self.languages,
            "backend": "onnx",
            "quantize": self.config.quantize,
        }
