"""Houlsby-style bottleneck adapters (adapter tuning), saved and loaded like PEFT adapters.

PEFT has no bottleneck adapters, and the `adapters` library pins an older transformers, so this is a small
implementation: after each decoder layer's attention block and feed-forward block, a residual bottleneck
`h + W_up(act(W_down(h)))` (Houlsby et al. 2019). The up-projection starts at zero, so training starts from
the base model's behaviour. Only the adapters train. The folder holds `adapter_config.json` (peft_type
"BOTTLENECK") and `adapter_model.safetensors`, like a PEFT adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


def _targets(model) -> list[str]:
    """Names of the attention and feed-forward blocks of every decoder layer (Llama, Qwen, Mistral, ...)."""
    names = [n for n, _ in model.named_modules() if n.endswith((".self_attn", ".mlp"))]
    if not names:
        raise ConfigError("bottleneck adapters need a decoder with `self_attn` and `mlp` blocks (Llama-style models)")
    return names


def add_bottleneck(model, size: int = 64, targets: list[str] | None = None):
    """Freeze `model` and attach a zero-initialised bottleneck after each target block. Returns `model`."""
    import torch
    from torch import nn

    hidden = model.config.hidden_size
    targets = targets or _targets(model)

    class Bottleneck(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Linear(hidden, size)
            self.up = nn.Linear(size, hidden)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, h):
            return h + self.up(torch.nn.functional.gelu(self.down(h)))

    for p in model.parameters():
        p.requires_grad = False
    adapters = nn.ModuleDict({name.replace(".", "__"): Bottleneck() for name in targets})
    model.add_module("bottleneck_adapters", adapters)
    modules = dict(model.named_modules())
    for name in targets:
        adapter = adapters[name.replace(".", "__")]

        def hook(module, inputs, output, adapter=adapter):
            if isinstance(output, tuple):
                return (adapter(output[0]),) + tuple(output[1:])
            return adapter(output)

        modules[name].register_forward_hook(hook)
    model.bottleneck_config = {"size": size, "targets": targets}
    return model


def save_bottleneck(model, folder: str | Path, base: str) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.bottleneck_adapters.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    config = {"peft_type": "BOTTLENECK", "base_model_name_or_path": base, **model.bottleneck_config}
    (folder / CONFIG).write_text(json.dumps(config, indent=2))


def is_bottleneck(folder: str | Path) -> bool:
    path = Path(folder) / CONFIG
    return path.is_file() and json.loads(path.read_text()).get("peft_type") == "BOTTLENECK"


def load_bottleneck(model, folder: str | Path, trainable: bool = False):
    """`model` with the bottleneck adapters saved in `folder` attached."""
    from safetensors.torch import load_file

    config = json.loads((Path(folder) / CONFIG).read_text())
    model = add_bottleneck(model, config["size"], config["targets"])
    model.bottleneck_adapters.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))
    for p in model.bottleneck_adapters.parameters():
        p.requires_grad = trainable
    return model
