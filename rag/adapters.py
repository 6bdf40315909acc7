"""PEFT adapters: find them, load one onto a base model (checking it was trained for that model), merge one.

Adapters are PEFT's standard folders (`adapter_config.json` + `adapter_model.safetensors`), so adapters
made by other tools load here and ours load elsewhere. `rag tune --method full` writes a full model folder
instead (`config.json` + weights + `rag_tune.json`); it is listed here too and loads with `--model`.

What this module does not do: train (`rag.tune`) or locate base models (`rag.models`).
"""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_dir
from .errors import ConfigError, require
from .models import prepare_model

META = "rag_tune.json"  # what `rag tune` writes beside the weights: base, method, data hash, metrics, lineage


def is_adapter_folder(folder: str | Path) -> bool:
    """True for a folder `rag` can use as a tuned model: a PEFT adapter (ours or another tool's), a bottleneck
    adapter, or a full model written by `rag tune`."""
    folder = Path(folder).expanduser()
    return (folder / "adapter_config.json").is_file() or (folder / META).is_file()


def read_meta(folder: str | Path) -> dict:
    """`rag_tune.json` of a tuned folder ({} for adapters made by other tools)."""
    path = Path(folder) / META
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc.msg})") from exc


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


def list_adapters(root: str | Path = "adapters", recursive: bool = True) -> list[dict]:
    """Tuned folders under `root` (all depths, or only its children): path, name, method, base model, steps,
    eval loss and lineage, sorted by path. An unreadable `rag_tune.json` is listed with method "?"."""
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = root.rglob("*") if recursive else root.iterdir()
    rows = []
    for folder in sorted(p for p in candidates if p.is_dir() and is_adapter_folder(p)):
        try:
            meta = read_meta(folder)
        except ConfigError:
            meta = {}
        base = meta.get("base_model")
        if base is None and (folder / "adapter_config.json").is_file():
            try:
                base = adapter_base(folder)
            except ConfigError:
                base = None
        metrics = meta.get("metrics", {})
        rows.append(
            {
                "path": str(folder),
                "name": folder.name,
                "method": meta.get("method", "?"),
                "base": base,
                "steps": metrics.get("steps"),
                "eval_loss": metrics.get("eval_loss"),
                "lineage": [s.get("method") for s in meta.get("lineage", [])],
                "modified": int(folder.stat().st_mtime),
            }
        )
    return rows


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


WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # PEFT's weight files


def check_adapter(adapter_dir: str | Path) -> Path:
    """`adapter_dir` as a folder, if it holds an adapter that can be loaded: its config and its weights, whose
    header is read (a copy cut short is caught here, not at a bot's first answer). ConfigError saying what is
    missing or damaged otherwise. Bottleneck adapters (`rag.bottleneck`) pass on their own files."""
    folder = Path(adapter_dir).expanduser()
    if not folder.exists():
        raise ConfigError(f"adapter folder {folder} does not exist; give the folder `rag tune` wrote")
    adapter_base(folder)  # the config is there and is JSON
    from .bottleneck import is_bottleneck

    if is_bottleneck(folder):
        return folder
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict) or not config.get("peft_type"):
        raise ConfigError(f"{folder}/adapter_config.json is not a PEFT adapter config (no peft_type)")
    weights = next((folder / name for name in WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        raise ConfigError(
            f"adapter {folder} has a config but no weights ({' or '.join(WEIGHTS)}): copy the whole folder "
            "`rag tune` wrote, or retrain it"
        )
    if weights.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(weights), framework="np") as f:
                names = list(f.keys())
        except Exception as exc:  # safetensors raises its own error types for a damaged header
            raise ConfigError(f"{weights} is damaged ({exc}); copy it again or retrain the adapter") from exc
        if not names:
            raise ConfigError(f"{weights} holds no tensors; copy it again or retrain the adapter")
    return folder


def load_adapter(model, adapter_dir: str | Path, model_id: str):
    """`model` with the PEFT adapter in `adapter_dir` applied; ConfigError if it belongs to another base or
    cannot be loaded (`check_adapter`)."""
    recorded = adapter_base(adapter_dir)
    if not same_base(recorded, model_id):
        raise ConfigError(
            f"adapter {adapter_dir} was trained for base model '{recorded}', not '{model_id}'; "
            f"load it with --model {recorded}"
        )
    check_adapter(adapter_dir)
    from .bottleneck import is_bottleneck, load_bottleneck

    if is_bottleneck(adapter_dir):
        return load_bottleneck(model, adapter_dir)
    require("peft", "peft", "loading adapters")
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(Path(adapter_dir).expanduser()))
    except (RuntimeError, ValueError, KeyError) as exc:  # weights of another shape or method than the config says
        raise ConfigError(f"adapter {adapter_dir} cannot be applied to '{model_id}': {exc}") from exc


def merge_adapter(adapter_dir: str | Path, out: str | Path) -> str:
    """Merge a LoRA-family adapter into its base model and save a full model folder at `out` (atomically)."""
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    with atomic_dir(out) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        AutoTokenizer.from_pretrained(location).save_pretrained(str(tmp))
        meta = Path(adapter_dir) / META
        if meta.exists():
            shutil.copy(meta, tmp / META)
    return str(out)
