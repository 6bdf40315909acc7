"""Adapter tuning: `rag tune DATA --method M --out DIR`, on transformers' Trainer and PEFT.

Methods (one registry, `METHODS`): lora (default), adalora, ia3, prefix (P-tuning v2: trained prefixes on
every layer), prompt (prompt tuning), ptuning (P-tuning: a prompt encoder), bottleneck (Houlsby adapters,
`rag.bottleneck`), full (all weights), and qlora (LoRA on a 4-bit base; needs bitsandbytes and a GPU).

Output: PEFT's standard adapter folder (a full model folder for `full`), plus `rag_tune.json` (base model,
method, data hash, hyperparameters, metrics, lineage), `metrics.json` and `loss.png`. Training runs in
`<out>.partial/` (checkpoints there make `--resume` possible); only a finished run is moved to `<out>`, so an
interrupted run never leaves anything half-written there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .adapters import META
from .atomic import atomic_dir
from .config import DEFAULT_EMBEDDER, DEFAULT_GENERATOR
from .errors import ConfigError
from .methods import DEFAULT_LR, METHODS, SCORER_METHODS, TASKS, load_base, wrap
from .prompt import render
from .tunedata import Example, data_hash, read_records, to_examples, train_records


@dataclass(frozen=True)
class TuneOptions:
    """Budget and hyperparameters of a tuning run."""

    method: str = "lora"
    task: str = "generator"  # or "scorer": the evidence scorer, a cross-encoder on the embedder (rag.scorer);
    # or "asks" / "char-scorer": the ask model or the character scorer of Chinese reading (rag.asks,
    # rag.charscorer; method, base and batch settings do not apply)
    base: str | None = None  # None: the default generator, or the default embedder for the scorer
    max_steps: int = -1  # -1: run `epochs` epochs
    max_minutes: float | None = None  # stop (and save) after this much training time, whatever the steps
    epochs: float = 3.0
    lr: float | None = None  # None: the method's default (2e-4 for LoRA-like, 3e-2 for prompts, 2e-5 full)
    batch_size: int = 4
    max_length: int | None = None  # tokens per example (None: 768, or 128 for the scorer); longer supervised
    # examples are dropped and counted, documents and scorer passages are cut
    eval_share: float = 0.1  # validation split (when there are at least 10 examples)
    seed: int = 0
    rank: int = 8  # LoRA/AdaLoRA rank, bottleneck size is 8x this
    dropout: float = 0.05  # LoRA/AdaLoRA dropout (0 makes runs bit-for-bit repeatable across process counts)
    virtual_tokens: int = 16  # prefix / prompt / ptuning
    init_adapter: str | None = None  # continue from an earlier adapter (sequential fine-tuning)
    save_steps: int = 50
    resume: bool = False
    group_by_length: bool = False  # batch examples of similar length (less padding when lengths vary widely)
    format: str | None = None  # force a data format instead of detecting it

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"tune `task` must be one of {', '.join(TASKS)}, got task={self.task!r}")
        if self.epochs <= 0:
            raise ConfigError("`epochs` must be positive")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ConfigError(f"`lr` must be a positive learning rate below 1 (LoRA's default: 2e-4), got lr={self.lr}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"`max_minutes` must be positive, got max_minutes={self.max_minutes}")
        if not 0 <= self.eval_share < 1:
            raise ConfigError(f"`eval_share` must be in [0, 1), got eval_share={self.eval_share}")
        if self.task in ("asks", "char-scorer"):
            return
        if self.method not in (METHODS if self.task == "generator" else SCORER_METHODS):
            allowed = METHODS if self.task == "generator" else SCORER_METHODS
            raise ConfigError(
                f"tune `method` must be one of {', '.join(allowed)} for the {self.task}, got method={self.method!r}"
            )
        scorer = self.task == "scorer"
        if self.base is None:
            object.__setattr__(self, "base", DEFAULT_EMBEDDER if scorer else DEFAULT_GENERATOR)
        if self.max_length is None:
            object.__setattr__(self, "max_length", 128 if scorer else 768)
        if self.batch_size < 1 or self.max_length < 16:
            raise ConfigError(
                f"`batch_size` must be >= 1 and `max_length` >= 16, got {self.batch_size}, {self.max_length}"
            )
        if self.max_steps == 0:
            raise ConfigError("`max_steps` must be positive (or -1 for epochs) and `epochs` positive")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR.get(self.method, 2e-4)


@dataclass
class TuneResult:
    out: str
    method: str
    steps: int
    trainable_params: int
    total_params: int
    train_loss: float | None
    eval_loss: float | None
    seconds: float
    examples: int
    dropped_too_long: int
    lineage: list[dict] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # records of other splits than train, per split
    model: object = field(default=None, repr=False, compare=False)  # the trained model, for callers in-process

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


# --------------------------------------------------------------------------------------------- encoding


def encode(example: Example, tokenizer, max_length: int) -> dict | None:
    """Token ids and labels; supervised examples are masked (-100) everywhere but the answer. None if the
    example is longer than `max_length` (the caller counts those)."""
    if example.pair is not None:  # the scorer: question and passage as one input, the passage cut to fit
        question, passage = example.pair
        # "longest_first" cuts the passage alone while the question takes at most half the window, as
        # "only_second" would, and cuts both for a longer question (a pasted message in a feedback log), where
        # "only_second" raises
        enc = tokenizer(question, passage, truncation="longest_first", max_length=max_length)
        return {**{k: list(v) for k, v in enc.items()}, "labels": [float(example.label)]}
    eos = tokenizer.eos_token or ""
    if example.text is not None:
        ids = tokenizer(example.text + eos, add_special_tokens=False)["input_ids"]
        ids = ids[:max_length]  # documents are cut, not dropped: every window of text is useful
        return {"input_ids": ids, "labels": list(ids)}
    prompt = render(tokenizer, example.messages[:-1])
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(example.messages[-1]["content"] + eos, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + len(answer_ids) > max_length:
        return None
    return {"input_ids": prompt_ids + answer_ids, "labels": [-100] * len(prompt_ids) + answer_ids}


class _Collator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch):
        import torch

        if isinstance(batch[0]["labels"][0], float):  # scorer pairs: one float label per example
            width = max(len(b["input_ids"]) for b in batch)
            out = {"labels": torch.tensor([b["labels"] for b in batch], dtype=torch.float32)}
            for key, pad in (("input_ids", self.pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
                if key in batch[0]:
                    out[key] = torch.tensor([b[key] + [pad] * (width - len(b[key])) for b in batch])
            return out
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# ---------------------------------------------------------------------------------------------- methods


def _lineage_of(options: TuneOptions) -> list[dict]:
    """Where this run starts: an earlier adapter's lineage, a merged model's lineage, or the base model."""
    for path in (options.init_adapter, options.base):
        meta = Path(path) / META if path else None
        if meta is not None and meta.is_file():
            return json.loads(meta.read_text(encoding="utf-8")).get("lineage", [])
    return [{"method": "base", "out": options.base}]


# ------------------------------------------------------------------------------------------------- tune


def tune(
    data: str | Path | list[Example],
    out: str | Path,
    options: TuneOptions | None = None,
    progress: bool | None = None,
    source: dict | None = None,
) -> TuneResult:
    """Train `options.method` on `data` (a file, a folder, or ready examples) and write the result to `out`.
    Records of a file marked with another split than "train" (an eval question set's dev and test questions)
    are left out (`TuneResult.left_out` counts them). `source` describes where ready examples came from
    (`{"path": ..., "format": ...}`), for the adapter's `rag_tune.json`."""
    import random

    import torch
    from transformers import Trainer, TrainingArguments

    options = options or TuneOptions()
    started = time.perf_counter()
    out = Path(out)
    left_out: dict[str, int] = {}
    if isinstance(data, (str, Path)):
        records, left_out = train_records(read_records(data))
        if not records:
            raise ConfigError(
                f"tuning data {data}: every record is of the {' or '.join(left_out)} split; tuning "
                'learns from records marked "split": "train" (or with no split)'
            )
        fmt, examples = to_examples(records, options.format)
        data_info = {"path": str(data), "format": fmt, "hash": data_hash(records), "records": len(records)}
        if left_out:
            data_info["left_out"] = left_out
    else:
        examples = list(data)
        data_info = {
            "path": None,
            "format": "examples",
            "hash": data_hash([asdict(e) for e in examples]),
            "records": len(examples),
            **(source or {}),
        }
    if not examples:
        raise ConfigError("the tuning data holds no examples")
    torch.manual_seed(options.seed)
    model, tokenizer = load_base(options)
    encoded = [encode(e, tokenizer, options.max_length) for e in examples]
    dropped = sum(1 for e in encoded if e is None)
    encoded = [e for e in encoded if e is not None]
    if not encoded:
        raise ConfigError(f"every example is longer than --max-length {options.max_length} tokens; raise it")
    random.Random(options.seed).shuffle(encoded)
    n_eval = int(len(encoded) * options.eval_share) if len(encoded) >= 10 else 0
    eval_set, train_set = encoded[:n_eval], encoded[n_eval:]
    steps_per_epoch = math.ceil(len(train_set) / options.batch_size)
    total_steps = options.max_steps if options.max_steps > 0 else math.ceil(steps_per_epoch * options.epochs)

    lineage = _lineage_of(options)
    model = wrap(model, options, total_steps)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())

    partial = out.with_name(out.name + ".partial")
    main = _is_main_process()  # under `accelerate launch`, only rank 0 touches the output folders
    if main and partial.exists() and not options.resume:
        if any(partial.glob("checkpoint-*")):
            _note(
                f"starting afresh: the checkpoints of an interrupted run in {partial} are discarded (--resume goes on from them)"
            )
        shutil.rmtree(partial)
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(partial),
        max_steps=total_steps,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        eval_strategy="steps" if eval_set else "no",
        eval_steps=max(1, min(options.save_steps, total_steps)),
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=2,
        logging_steps=max(1, min(10, total_steps // 10 or 1)),
        seed=options.seed,
        report_to=[],
        disable_tqdm=not (progress if progress is not None else sys.stderr.isatty()),
        bf16=cuda and torch.cuda.is_bf16_supported(),
        **({"gradient_checkpointing": True} if cuda and options.method in ("lora", "qlora", "full") else {}),
        lr_scheduler_type="cosine" if total_steps > 20 else "constant",
        warmup_steps=min(10, total_steps // 10),
        remove_unused_columns=False,
        use_cpu=not cuda,
        dataloader_num_workers=0,
        **({"train_sampling_strategy": "group_by_length"} if options.group_by_length else {}),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set or None,
        data_collator=_Collator(tokenizer.pad_token_id),
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints log dicts to stdout, where `--json` output goes
    if options.max_minutes is not None:
        trainer.add_callback(_time_limit(options.max_minutes * 60))
    resume = options.resume and any(partial.glob("checkpoint-*"))
    if options.resume and not resume and main:
        _note(f"--resume: no checkpoint in {partial} (none was saved yet, or OUT differs); training from the start")
    train_output = trainer.train(resume_from_checkpoint=True if resume else None)
    eval_loss = trainer.evaluate()["eval_loss"] if eval_set else None
    done = int(trainer.state.global_step)
    if options.max_minutes is not None and done < total_steps and main:
        _note(
            f"--max-minutes {options.max_minutes:g} reached: stopped after {done} of {total_steps} steps (saved as usual)"
        )

    result = TuneResult(
        out=str(out),
        method=options.method,
        steps=int(trainer.state.global_step),
        trainable_params=int(trainable),
        total_params=int(total),
        train_loss=float(train_output.training_loss),
        eval_loss=eval_loss,
        seconds=round(time.perf_counter() - started, 2),
        examples=len(encoded),
        dropped_too_long=dropped,
        left_out=left_out,
    )
    stage = {"method": options.method, "out": str(out), "data_hash": data_info["hash"], "base": options.base}
    result.lineage = lineage + [stage]
    if main:
        if out.exists():
            _note(f"{out} held a previous result: replaced")
        _save(model, tokenizer, out, options, result, data_info, trainer.state.log_history)
        shutil.rmtree(partial, ignore_errors=True)
    result.model = model.eval()
    return result


def _is_main_process() -> bool:
    """True in a single-process run and on rank 0 of a distributed one (`accelerate launch`, torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def _time_limit(seconds: float):
    """A Trainer callback that ends training once `seconds` have passed (checked after every step); the
    run is then saved as usual."""
    from transformers import TrainerCallback

    deadline = time.perf_counter() + seconds

    class TimeLimit(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() > deadline:
                control.should_training_stop = True
            return control

    return TimeLimit()


def _note(message: str) -> None:
    import sys

    print(f"rag: {message}", file=sys.stderr, flush=True)


def _save(model, tokenizer, out: Path, options, result: TuneResult, data_info: dict, history: list[dict]) -> None:
    with atomic_dir(out) as tmp:
        if options.method == "full":
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
        elif options.method == "bottleneck":
            from .bottleneck import save_bottleneck

            save_bottleneck(model, tmp, options.base)
        else:
            model.save_pretrained(str(tmp))
            config_path = tmp / "adapter_config.json"
            config = json.loads(config_path.read_text())
            config["base_model_name_or_path"] = options.base  # the id users pass, not a cache path
            config_path.write_text(json.dumps(config, indent=2))
        meta = {
            "base_model": options.base,
            "task": options.task,
            "method": options.method,
            "data": data_info,
            "hyperparameters": {k: v for k, v in asdict(options).items() if k not in ("resume",)}
            | {"learning_rate": options.learning_rate},
            "metrics": {k: v for k, v in result.to_dict().items() if k not in ("out", "lineage")},
            "lineage": result.lineage,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (tmp / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        (tmp / "metrics.json").write_text(json.dumps({"log_history": history, **meta["metrics"]}, indent=2))
        _plot(history, tmp / "loss.png", options.method)


def _plot(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"rag tune --method {title}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
