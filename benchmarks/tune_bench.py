"""Tuning benchmarks, each run in its own process so that peak memory is its own (VmHWM).

python -m benchmarks.tune_bench ours lora 6      # rag tune, prints JSON
python -m benchmarks.tune_bench plain lora 6     # a plain PEFT + Trainer script on the same data and batch
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEQ = 256  # tokens per example: the "4 x 256 tokens" step
BATCH = 4


def _peak_mb() -> float:
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024


def _texts(tokenizer, n: int = 64) -> list[str]:
    """Sample knowledge base text cut to exactly SEQ tokens per example."""
    from rag.documents import discover, load_file

    files, _ = discover([ROOT / "corpora"])
    words = " ".join(d.text for f in files if f.path.suffix in (".md", ".txt") for d in load_file(f.path))
    ids = tokenizer(words, add_special_tokens=False)["input_ids"]
    return [tokenizer.decode(ids[i * SEQ : (i + 1) * SEQ]) for i in range(min(n, len(ids) // SEQ))]


def ours(method: str, steps: int) -> dict:
    from transformers import AutoTokenizer

    from rag.models import prepare_model
    from rag.tune import TuneOptions, tune
    from rag.tunedata import Example

    tok = AutoTokenizer.from_pretrained(prepare_model())
    examples = [Example(text=t) for t in _texts(tok)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        r = tune(
            examples,
            out,
            TuneOptions(
                method=method, max_steps=steps, batch_size=BATCH, max_length=SEQ + 1, eval_share=0.0, save_steps=10_000
            ),
        )
        total = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
        history = json.loads((out / "metrics.json").read_text())["log_history"]
    runtime = next(h["train_runtime"] for h in history if "train_runtime" in h)
    return {
        "method": method,
        "s_per_step": round(runtime / steps, 3),
        "trainable_share": r.trainable_params / r.total_params,
        "trainable_params": r.trainable_params,
        "adapter_mb": round(size / 2**20, 2),
        "total_s": round(total, 1),
        "peak_mb": round(_peak_mb(), 1),
    }


def plain(method: str, steps: int) -> dict:
    """The baseline: what a user would write with PEFT and Trainer directly (LoRA, same data and batch)."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from rag.models import prepare_model

    location = prepare_model()
    tok = AutoTokenizer.from_pretrained(location)
    tok.pad_token = tok.pad_token or tok.eos_token
    data = [tok(t + tok.eos_token, truncation=True, max_length=SEQ + 1) for t in _texts(tok)]
    model = AutoModelForCausalLM.from_pretrained(location)
    model = get_peft_model(
        model,
        LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear"),
    )
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=BATCH,
            learning_rate=2e-4,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=data, data_collator=DataCollatorForLanguageModeling(tok, mlm=False)
        )
        runtime = trainer.train().metrics["train_runtime"]
    return {"method": "plain-peft-trainer", "s_per_step": round(runtime / steps, 3), "peak_mb": round(_peak_mb(), 1)}


if __name__ == "__main__":
    kind, method, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps((ours if kind == "ours" else plain)(method, steps)))
