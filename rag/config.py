"""Typed settings for every stage, with checks that name the field, the bad value and the fix.

Settings come from the dataclass defaults, then an optional TOML file (`rag.toml`, sections named after
the dataclasses' fields of `Config`), then command-line flags or per-call arguments. Unknown keys fail
loudly instead of being ignored, so a typo never silently falls back to a default. Configs are frozen:
a variant is derived with `Config.override(...)` (or `dataclasses.replace`), which checks it again, so an
invalid config cannot exist.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_INDEX = "indexes/default"
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_GENERATOR = "HuggingFaceTB/SmolLM2-135M-Instruct"
ANSWER_MODES = ("extractive", "generative", "auto")
RETRIEVAL_MODES = ("dense", "bm25", "hybrid")
EMBED_BACKENDS = ("torch", "onnx")
EMBED_QUANTIZE = ("none", "int8")
GENERATE_BACKENDS = ("auto", "transformers", "llamacpp", "openai")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut into chunks. Sizes are in the embedder's tokens."""

    size: int = 200  # leaves room under MiniLM's 256-token window for the heading path and special tokens
    overlap: int = 32  # keeps a sentence that straddles a boundary retrievable from either side

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 16:
            raise ConfigError(f"chunk `size` must be an integer of at least 16 tokens, got size={self.size!r}")
        if not isinstance(self.overlap, int) or self.overlap < 0:
            raise ConfigError(f"chunk `overlap` must be a non-negative integer, got overlap={self.overlap!r}")
        if self.overlap >= self.size:
            raise ConfigError(
                f"chunk `overlap` must be smaller than `size`, got overlap={self.overlap}, size={self.size}"
            )


@dataclass(frozen=True)
class EmbedConfig:
    """Which sentence-transformers model embeds chunks and queries, and how."""

    model: str = DEFAULT_EMBEDDER  # a model id, a local folder, or "hash" (a fast fake for tests)
    query_prefix: str = ""  # e.g. "query: " for e5 models, the instruction for bge models
    document_prefix: str = ""  # e.g. "passage: " for e5 models
    batch_size: int = 128  # most texts per batch; batches are really bounded by batch_tokens
    batch_tokens: int | None = None  # padded tokens per batch; None: 2048 on CPU (measured fastest), 16384 on GPU
    device: str | None = None  # None: CUDA when available, else CPU
    languages: tuple[str, ...] | None = None  # what the model reads; None: from its model card ("language:")
    backend: str = "onnx"  # torch's vectors without torch in the process: cold starts 3x, indexing 2x faster (README)
    quantize: str = "none"  # "int8": dynamic int8 weights (onnx only); faster on CPU at a small cost in quality

    def __post_init__(self) -> None:
        if self.languages is not None:
            if isinstance(self.languages, str) or not all(isinstance(x, str) for x in self.languages):
                raise ConfigError(f"embedder `languages` must be a list of language codes, got {self.languages!r}")
            object.__setattr__(self, "languages", tuple(self.languages))
        if not self.model or not isinstance(self.model, str):
            raise ConfigError(f"embedder `model` must be a model id or a folder, got model={self.model!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"embedder `batch_size` must be a positive integer, got {self.batch_size!r}")
        if self.batch_tokens is not None and (not isinstance(self.batch_tokens, int) or self.batch_tokens < 1):
            raise ConfigError(f"embedder `batch_tokens` must be a positive integer, got {self.batch_tokens!r}")
        if self.backend not in EMBED_BACKENDS:
            raise ConfigError(f"embedder `backend` must be one of {', '.join(EMBED_BACKENDS)}, got {self.backend!r}")
        if self.quantize not in EMBED_QUANTIZE:
            raise ConfigError(f"embedder `quantize` must be one of {', '.join(EMBED_QUANTIZE)}, got {self.quantize!r}")
        if self.quantize != "none" and self.backend != "onnx":
            raise ConfigError(
                f"embedder `quantize` = {self.quantize!r} needs backend = 'onnx' (torch runs the model as it ships); "
                "set backend = 'onnx' or quantize = 'none'"
            )


@dataclass(frozen=True)
class IndexConfig:
    """How vectors are stored and searched."""

    factory: str = "Flat"  # exact search; e.g. "IVF1024,PQ48" or "HNSW32" for millions of chunks
    nprobe: int = 16  # inverted lists visited per query by IVF indexes (recall vs speed)
    refine: int = 0  # compressed indexes: re-score this many candidates exactly from the stored vectors
    shard_size: int = 0  # > 0: add vectors in shards of this size and merge them (bounded memory per step)
    device: str | None = None  # None: a GPU when the faiss GPU build sees one, else the CPU; "cpu" forces it

    def __post_init__(self) -> None:
        if not self.factory or not isinstance(self.factory, str):
            raise ConfigError(f"index `factory` must be a FAISS index_factory string, got {self.factory!r}")
        if not isinstance(self.nprobe, int) or self.nprobe < 1:
            raise ConfigError(f"index `nprobe` must be a positive integer, got nprobe={self.nprobe!r}")
        for name in ("refine", "shard_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"index `{name}` must be a whole number >= 0, got {name}={value!r}")


@dataclass(frozen=True)
class RetrieveConfig:
    """How a query finds chunks."""

    mode: str = "hybrid"  # dense + BM25 fused: robust to paraphrase and to codes/names alike
    k: int = 5
    dense_weight: float = 0.4  # hybrid = w * dense + (1 - w) * BM25, both normalised; tuned on SQuAD 2.0 dev
    candidates: int = 100  # hits taken from each retriever before fusion

    def __post_init__(self) -> None:
        if self.mode not in RETRIEVAL_MODES:
            raise ConfigError(f"retrieval `mode` must be one of {', '.join(RETRIEVAL_MODES)}, got mode={self.mode!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"retrieval `k` must be a positive integer, got k={self.k!r}")
        if not isinstance(self.candidates, int) or self.candidates < 1:
            raise ConfigError(f"retrieval `candidates` must be a positive integer, got {self.candidates!r}")
        if not isinstance(self.dense_weight, (int, float)) or not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(
                f"retrieval `dense_weight` must be between 0 and 1, got dense_weight={self.dense_weight!r}"
            )


@dataclass(frozen=True)
class GenerateConfig:
    """Which causal LM writes answers, where it runs (in process or behind an OpenAI-compatible server), and how."""

    model: str = DEFAULT_GENERATOR  # a causal LM id or folder, a .gguf file, or the served model's name (HTTP)
    # a PEFT adapter folder ("none": the bare model); over HTTP the server's adapter, by name. "bundled": the
    # reader adapter shipped for the bundled generator, applied to that model only (README: how reading works)
    adapter: str | None = "bundled"
    max_new_tokens: int = 96  # short support answers; loops are cut earlier
    temperature: float = 0.0  # 0: greedy, reproducible answers
    top_p: float = 1.0
    dtype: str = "auto"  # auto: float32 on CPU, bfloat16 on GPU
    device: str | None = None
    backend: str = "auto"  # auto: base_url -> openai, a .gguf model -> llamacpp, else transformers (README: measured)
    base_url: str | None = None  # an OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI, a hosted API), .../v1
    api_key_env: str | None = None  # the variable holding the server's key: a key never sits in a file or a flag
    timeout: float = 120.0  # seconds the server may stay silent (a long prompt's prefill on a busy server)
    connect_timeout: float = 5.0  # a server that takes longer to accept a connection is taken as down
    retries: int = 3  # retries after 429, 5xx or a dropped connection, with backoff (Retry-After honoured)
    threads: int | None = None  # CPU threads of an in-process model; None: the library's choice (all cores)
    context_window: int | None = None  # llama.cpp: context allocated; HTTP: what the server takes; None: the model's

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ConfigError(f"generator `model` must be a model id or a folder, got model={self.model!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"generator `max_new_tokens` must be a positive integer, got {self.max_new_tokens!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"generator `dtype` must be auto, float32, bfloat16 or float16, got dtype={self.dtype!r}")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ConfigError(f"generator `temperature` must be between 0 and 2, got {self.temperature!r}")
        if self.backend not in GENERATE_BACKENDS:
            raise ConfigError(
                f"generator `backend` must be one of {', '.join(GENERATE_BACKENDS)}, got backend={self.backend!r}"
            )
        if self.base_url is not None and (
            not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(
                f"generator `base_url` must be an http:// or https:// URL such as http://127.0.0.1:8080/v1, "
                f"got {self.base_url!r}"
            )
        if self.backend == "openai" and not self.base_url:
            raise ConfigError("generator backend 'openai' needs `base_url` (--base-url URL), the server's /v1 URL")
        if self.base_url and self.backend in ("transformers", "llamacpp"):
            raise ConfigError(
                f"generator `base_url` is for the HTTP backend, but backend = {self.backend!r}; "
                "drop one of them (backend = 'auto' picks HTTP when base_url is set)"
            )
        if self.api_key_env is not None and not _ENV_NAME.fullmatch(str(self.api_key_env)):
            raise ConfigError(
                "generator `api_key_env` is the NAME of an environment variable that holds the key (e.g. "
                "OPENAI_API_KEY), not the key itself; got a value that is not a variable name"  # never echo a key
            )
        for name in ("timeout", "connect_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"generator `{name}` must be a positive number of seconds, got {value!r}")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            raise ConfigError(f"generator `retries` must be a whole number from 0 to 10, got {self.retries!r}")
        for name in ("threads", "context_window"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"generator `{name}` must be a positive integer (or unset), got {value!r}")


@dataclass(frozen=True)
class AnswerConfig:
    """How an answer is produced from retrieved passages, and when to refuse instead."""

    mode: str = "extractive"  # extractive | generative | auto; the default is chosen by measurement (README)
    k: int = 3  # passages shown to the generator (and read for an extractive answer)
    candidates: int = 3  # passages read and reranked by the scorer before the best `k` are kept (>= k)
    # which sentence answers is read on each retrieved chunk with up to N chunks of its own section on either
    # side, hits whose spans touch merged (small-to-big: search on chunks the embedder sees whole, read them in
    # context; refusal stays on the chunks); 0: the chunk alone. eval/reports/reading/README.md: CMRC dev 84.9 -> 86.2
    window: int = 1
    scorer: str = "bundled"  # the evidence scorer: "bundled", a folder (`rag tune --task scorer`) or hub id, "none"
    reader: str = (
        "bundled"  # how evidence is weighed (reader.json): "bundled" or a file from `rag calibrate --questions Q.jsonl`
    )
    # what a question asks against what a sentence offers, for text the scorer cannot read (rag.asks):
    # "bundled", a folder (scripts/asks.py), or "none"
    asks: str = "bundled"
    # a character-level cross-encoder for the same text (rag.charscorer): "bundled", a folder
    # (scripts/char_scorer.py), or "none"
    char_scorer: str = "bundled"
    min_evidence: float | None = None  # refuse below this probability of an answer; None: the reader's threshold
    max_prompt_tokens: int = 1536  # prompt budget (the model's window permitting); prefill costs ~3.5 ms/token on CPU
    # generative and auto modes: the generator reads each passage's N most probable sentences (the reader's), not
    # the whole passage; 0: whole passages. 1 measured best (README > Answers: XQuAD en contains gold 43 -> 74%)
    focus: int = 1
    # generative and auto modes: show the generator only the passages whose best sentence has at least this share
    # of the best passage's probability (the reader's); 0 shows all k. A 135M generator copies a distractor the
    # reader ranked below the answer (README > Answers: XQuAD en contains gold 74 -> 81% at 0.05)
    show_floor: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in ANSWER_MODES:
            raise ConfigError(f"answer `mode` must be one of {', '.join(ANSWER_MODES)}, got mode={self.mode!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"answer `k` must be a positive integer, got k={self.k!r}")
        if not isinstance(self.candidates, int) or self.candidates < 1:
            raise ConfigError(f"answer `candidates` must be a positive integer, got candidates={self.candidates!r}")
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 0:
            raise ConfigError(
                f"answer `window` must be 0 (the retrieved chunk alone) or a positive integer, got window={self.window!r}"
            )
        if not isinstance(self.focus, int) or isinstance(self.focus, bool) or self.focus < 0:
            raise ConfigError(
                f"answer `focus` must be 0 (whole passages) or a positive integer, got focus={self.focus!r}"
            )
        if (
            isinstance(self.show_floor, bool)
            or not isinstance(self.show_floor, (int, float))
            or not (0.0 <= self.show_floor <= 1.0)
        ):
            raise ConfigError(
                f"answer `show_floor` must be between 0 (show all k passages) and 1, got show_floor={self.show_floor!r}"
            )
        if self.min_evidence is not None and (
            not isinstance(self.min_evidence, (int, float)) or not 0.0 <= self.min_evidence <= 1.0
        ):
            raise ConfigError(f"answer `min_evidence` must be between 0 and 1 (or unset), got {self.min_evidence!r}")
        for name in ("scorer", "reader", "asks", "char_scorer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"answer `{name}` must be 'bundled', a path, or 'none', got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Config:
    """All settings. `Config.load()` reads `rag.toml` (or the file in $RAG_CONFIG) when present."""

    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> Config:
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(f"{origin}: unknown section(s) {sorted(unknown)}; known sections are {sorted(sections)}")
        built = {}
        for name, fld in sections.items():
            section_cls = fld.default_factory  # type: ignore[misc]
            values = data.get(name, {})
            if not isinstance(values, dict):
                raise ConfigError(f"{origin}: section [{name}] must be a table, got {values!r}")
            built[name] = build_section(section_cls, values, name, origin)
        return cls(**built)

    def override(self, **sections: dict[str, Any] | None) -> Config:
        """A copy with some fields changed, section by section, checked again:
        `config.override(answer={"mode": "auto"}, generate={"model": "m"})`. Fields set to None are left as
        they are (an unset command-line flag); an unknown section or field is a `ConfigError`.

        >>> Config().override(answer={"mode": "auto", "k": None}).answer.mode
        'auto'
        >>> Config().override(answer={"mdoe": "auto"})
        Traceback (most recent call last):
        ...
        rag.errors.ConfigError: unknown key(s) ['mdoe'] in [answer]; known keys are ['asks', 'candidates', 'char_scorer', 'focus', 'k', 'max_prompt_tokens', 'min_evidence', 'mode', 'reader', 'scorer', 'show_floor', 'window']
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(sections) - known
        if unknown:
            raise ConfigError(f"unknown section(s) {sorted(unknown)}; known sections are {sorted(known)}")
        changed = {}
        for name, values in sections.items():
            values = {k: v for k, v in (values or {}).items() if v is not None}
            if values:
                section = getattr(self, name)
                changed[name] = build_section(type(section), {**dataclasses.asdict(section), **values}, name)
        return dataclasses.replace(self, **changed) if changed else self

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain values, section by section (what `from_dict` reads back)."""
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Config:
        """Defaults, overridden by a TOML file: `path`, else $RAG_CONFIG, else ./rag.toml if it exists."""
        import tomllib

        candidate = path or os.environ.get("RAG_CONFIG") or ("rag.toml" if Path("rag.toml").exists() else None)
        if candidate is None:
            return cls()
        p = Path(candidate)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; create it or unset RAG_CONFIG")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        return cls.from_dict(data, origin=str(p))


def build_section(section_cls, values: dict[str, Any], section: str, origin: str | None = None):
    """`section_cls(**values)`, with unknown keys and wrong value types reported as `ConfigError`s that name
    the section (and the file, `origin`)."""
    where = f"{origin}: " if origin else ""
    known = {f.name for f in dataclasses.fields(section_cls)}
    bad = set(values) - known
    if bad:
        raise ConfigError(f"{where}unknown key(s) {sorted(bad)} in [{section}]; known keys are {sorted(known)}")
    try:
        return section_cls(**values)
    except ConfigError as exc:
        if origin:
            raise ConfigError(f"{origin}: {exc}") from None
        raise
    except TypeError as exc:  # a value of the wrong type reached a comparison inside a check
        raise ConfigError(f"{where}[{section}]: a value has the wrong type ({exc})") from exc
