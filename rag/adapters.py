"""PEFT adapters: load one onto a base model, checking that it was trained for that model.

Adapters are PEFT's standard folders (`adapter_config.json` + `adapter_model.safetensors`), so adapters
made by other tools load here and ours load elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError, require


def adapter_base(adapter_dir: str | Path) -> str | None:
    """The base model an adapter folder says it was trained on."""
    folder = Path(adapter_dir).expanduser()
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise ConfigError(
            f"{folder} is not a PEFT adapter folder (no adapter_config.json); give the folder `rag tune` wrote"
        )
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config} is not valid JSON ({exc.msg})") from exc


def same_base(recorded: str | None, model_id: str) -> bool:
    """True when an adapter's recorded base names the model (by id, folder or converted copy)."""
    if not recorded:
        return True  # nothing recorded: trust the user
    norm = lambda s: s.rstrip("/").replace("--", "/").lower()  # noqa: E731
    a, b = norm(recorded), norm(model_id)
    return (
        a == b
        or a.endswith("/" + b.split("/")[-1])
        and b.endswith("/" + a.split("/")[-1])
        or a.split("/")[-1] == b.split("/")[-1]
    )


def load_adapter(model, adapter_dir: str | Path, model_id: str):
    """`model` with the PEFT adapter in `adapter_dir` applied; ConfigError if it belongs to another base."""
    recorded = adapter_base(adapter_dir)
    if not same_base(recorded, model_id):
        raise ConfigError(
            f"adapter {adapter_dir} was trained for base model '{recorded}', not '{model_id}'; "
            f"load it with --model {recorded}"
        )
    from .bottleneck import is_bottleneck, load_bottleneck

    if is_bottleneck(adapter_dir):
        return load_bottleneck(model, adapter_dir)
    require("peft", "peft", "loading adapters")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(Path(adapter_dir).expanduser()))


def merge_adapter(adapter_dir: str | Path, out: str | Path) -> str:
    """Merge a LoRA-family adapter into its base model and save a full model folder at `out` (atomically)."""
    import os
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .generate import prepare_model

    base = adapter_base(adapter_dir)
    if not base:
        raise ConfigError(f"{adapter_dir} does not name its base model; cannot merge")
    location = prepare_model(base)
    model = load_adapter(AutoModelForCausalLM.from_pretrained(location), adapter_dir, base)
    if not hasattr(model, "merge_and_unload"):
        raise ConfigError(
            "only PEFT adapters with mergeable weights (lora, adalora, ia3) can be merged; "
            "prompt-style and bottleneck adapters are loaded with --adapter instead"
        )
    merged = model.merge_and_unload()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp), safe_serialization=True)
    AutoTokenizer.from_pretrained(location).save_pretrained(str(tmp))
    meta = Path(adapter_dir) / "rag_tune.json"
    if meta.exists():
        shutil.copy(meta, tmp / "rag_tune.json")
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    return str(out)
