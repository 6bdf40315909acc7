"""PEFT LoRA adapters as llama.cpp LoRA files: converted once, with the `gguf` package, and cached beside the
adapter (`adapter_model.gguf`, redone when the adapter's weights change).

The file is what llama.cpp's own `convert_lora_to_gguf.py` writes: `general.type = adapter`,
`adapter.type = lora`, `adapter.lora.alpha`, and for each adapted weight `<gguf name>.lora_a` (rank x in)
and `.lora_b` (out x rank) in float32. llama.cpp scales by alpha / rank, as PEFT does; rsLoRA's
alpha / sqrt(rank) is written as an equivalent alpha. Llama-architecture GGUFs store the query and key
projections with their rows permuted for llama.cpp's rotary embedding (the HF -> GGUF converter does it), so
their `lora_b` rows are permuted the same way. Every tensor is checked against the base GGUF's shapes, so an
adapter for another base fails here with a message rather than later with garbage.

What this module does not do: load models (`rag.llamacpp`), or convert adapters llama.cpp cannot apply:
only plain LoRA (`rag tune --method lora` or `qlora`) is a set of low-rank weight deltas; the others
(adalora, ia3, prefix, prompt, ptuning, bottleneck, full) need the transformers backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ConfigError, MissingDependencyError

FORMAT = 1  # bump when what is written changes: older cached files are then redone
CONVERTIBLE = ("lora", "qlora")  # rag tune methods whose adapters llama.cpp can apply
OTHER_METHODS = ("adalora", "ia3", "prefix", "prompt", "ptuning", "bottleneck", "full")
_PERMUTED_ARCHS = ("llama",)  # architectures whose GGUF converter permutes q/k rows (LlamaModel.permute)


def gguf_lora_path(adapter_dir: str | Path) -> Path:
    """Where an adapter's llama.cpp file is cached: beside its weights, or, for an adapter shipped inside the
    package or in a folder this user cannot write, in the model cache."""
    folder = Path(adapter_dir).expanduser()
    package = Path(__file__).resolve().parent
    if os.access(folder, os.W_OK) and package not in folder.resolve().parents:
        return folder / "adapter_model.gguf"
    from .models import cache_dir, folder_key

    return cache_dir() / "lora" / folder_key(folder) / "adapter_model.gguf"


def ensure_gguf_lora(adapter_dir: str | Path, base_gguf: str | Path) -> Path:
    """The llama.cpp LoRA file of the PEFT adapter in `adapter_dir` for the base model `base_gguf`, converted
    now unless a file made from the same weights for the same base exists. Written atomically. Raises
    `ConfigError` for an adapter llama.cpp cannot apply, naming the methods it can."""
    folder = Path(adapter_dir).expanduser()
    config = _adapter_config(folder)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{folder} has no adapter_model.safetensors; llama.cpp needs the adapter's LoRA weights")
    target = gguf_lora_path(folder)
    stamp = f"{FORMAT}:{weights.stat().st_size}:{weights.stat().st_mtime_ns}:{Path(base_gguf).name}"
    stamp_file = target.with_suffix(".gguf.source")
    if target.is_file() and stamp_file.is_file() and stamp_file.read_text(encoding="utf-8") == stamp:
        return target
    try:
        import gguf
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise MissingDependencyError(
            "converting an adapter for llama.cpp needs the packages 'gguf' and 'safetensors'; "
            "install them with: pip install gguf safetensors"
        ) from exc
    base = gguf.GGUFReader(str(base_gguf))
    arch = _field(base, "general.architecture")
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in base.tensors}
    heads = int(_field(base, f"{arch}.attention.head_count"))
    kv_heads = int(_field(base, f"{arch}.attention.head_count_kv") or heads)
    known = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in known:
        raise ConfigError(f"the gguf package does not know the architecture {arch!r} of {Path(base_gguf).name}")
    names = gguf.get_tensor_name_map(known[arch], int(_field(base, f"{arch}.block_count")))
    pairs = _pairs(load_file(str(weights)), folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, _alpha(config, pairs))
        for module, (a, b) in sorted(pairs.items()):
            name = names.get_name(module + ".weight", try_suffixes=(".weight",))
            if name is None or name not in shapes:
                raise ConfigError(f"{folder}: the adapted weight {module} has no counterpart in {Path(base_gguf).name}")
            if shapes[name] != (a.shape[1], b.shape[0]):
                raise ConfigError(
                    f"{folder} was trained for another base model: {module} is {b.shape[0]}x{a.shape[1]} in the "
                    f"adapter, {shapes[name][1]}x{shapes[name][0]} in {Path(base_gguf).name}"
                )
            if arch in _PERMUTED_ARCHS and name.endswith(("attn_q.weight", "attn_k.weight")):
                b = _permute(b, heads if name.endswith("attn_q.weight") else kv_heads)
            writer.add_tensor(name + ".lora_a", a.astype("float32"))
            writer.add_tensor(name + ".lora_b", b.astype("float32"))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"cannot write the llama.cpp adapter file {target}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    stamp_file.write_text(stamp, encoding="utf-8")
    return target


def _adapter_config(folder: Path) -> dict:
    path = folder / "adapter_config.json"
    method = None
    meta = folder / "rag_tune.json"
    if meta.is_file():
        try:
            method = json.loads(meta.read_text(encoding="utf-8")).get("method")
        except ValueError:
            method = None
    if not path.is_file():
        raise ConfigError(
            f"{folder} is not a LoRA adapter (no adapter_config.json{f'; method {method}' if method else ''}); "
            f"llama.cpp applies {' and '.join(CONVERTIBLE)} adapters only: use --backend transformers for it"
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    kind = str(config.get("peft_type", "")).upper()
    if kind != "LORA" or (method and method not in CONVERTIBLE):
        shown = method or kind.lower() or "unknown"
        raise ConfigError(
            f"llama.cpp cannot apply the {shown} adapter in {folder}: it applies {' and '.join(CONVERTIBLE)} "
            f"adapters only (not {', '.join(OTHER_METHODS)}); use --backend transformers for it"
        )
    problems = [
        what
        for what, bad in (
            ("DoRA", config.get("use_dora")),
            ("per-module alphas (alpha_pattern)", config.get("alpha_pattern")),
            ("fully trained modules (modules_to_save)", config.get("modules_to_save")),
            ("trained biases", config.get("bias", "none") != "none"),
        )
        if bad
    ]
    if problems:
        raise ConfigError(
            f"llama.cpp cannot apply the LoRA adapter in {folder}: it uses {', '.join(problems)}, and llama.cpp "
            f"applies plain {' and '.join(CONVERTIBLE)} adapters only; use --backend transformers for it"
        )
    return config


def _pairs(tensors: dict, folder: Path) -> dict:
    """{HF module name ("model.layers.0.self_attn.q_proj"): (lora_A, lora_B)} from PEFT's tensor names."""
    pairs: dict[str, list] = {}
    for key, value in tensors.items():
        for part, slot in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
            if key.endswith(part):
                module = key[: -len(part)].removeprefix("base_model.model.")
                pairs.setdefault(module, [None, None])[slot] = value
                break
        else:
            raise ConfigError(f"{folder}: unexpected tensor {key} (not a LoRA weight); llama.cpp cannot apply it")
    broken = [m for m, (a, b) in pairs.items() if a is None or b is None]
    if broken or not pairs:
        raise ConfigError(f"{folder}: incomplete LoRA weights ({broken[:3] or 'none found'})")
    return {m: (a, b) for m, (a, b) in pairs.items()}


def _alpha(config: dict, pairs: dict) -> float:
    """The alpha llama.cpp needs for PEFT's scaling: alpha / rank, or with rsLoRA alpha / sqrt(rank)."""
    alpha = float(config.get("lora_alpha") or config.get("r") or 8)
    if config.get("use_rslora"):
        ranks = {a.shape[0] for a, _ in pairs.values()}
        if len(ranks) != 1:
            raise ConfigError("rsLoRA adapters with several ranks cannot be expressed with llama.cpp's one alpha")
        alpha *= ranks.pop() ** 0.5
    return alpha


def _permute(b, heads: int):
    """Rows of a query/key projection in the order llama.cpp's GGUF stores them (convert_hf_to_gguf's
    LlamaModel.permute: each head's two rotary halves interleaved)."""
    rows = b.shape[0]
    return b.reshape(heads, 2, rows // heads // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def _field(reader, key: str):
    field = reader.fields.get(key)
    return field.contents() if field is not None else None
