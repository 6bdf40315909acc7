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
    require("peft", "peft", "loading adapters")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(Path(adapter_dir).expanduser()))
