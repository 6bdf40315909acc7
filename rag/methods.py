"""The tuning methods, registered in one place: how each wraps a base model for training.

lora (default), adalora, ia3, prefix (P-tuning v2: trained prefixes on every layer), prompt (prompt
tuning), ptuning (P-tuning: a prompt encoder) and qlora (LoRA on a 4-bit base; needs bitsandbytes and a
CUDA GPU) are PEFT's; bottleneck (Houlsby adapters) is `rag.bottleneck`; full trains every weight.

What this module does not do: run training (`rag.tune`) or load trained adapters (`rag.adapters`).
"""

from __future__ import annotations

from .errors import ConfigError, require
from .models import embedder_location, prepare_model

METHODS = ("lora", "adalora", "ia3", "prefix", "prompt", "ptuning", "bottleneck", "full", "qlora")
# what can be tuned: the generator (a causal LM), the evidence scorer (a cross-encoder on the embedder), or the
# ask model of reading text the scorer cannot read (rag.asks: vectors, no method to choose)
TASKS = ("generator", "scorer", "asks", "char-scorer")
SCORER_METHODS = ("lora", "ia3", "full")
# learning rates that work for each method on small models (prompt-style methods need far larger steps)
DEFAULT_LR = {"prompt": 3e-2, "ptuning": 1e-2, "prefix": 1e-2, "full": 2e-5, "ia3": 3e-3}


def peft_config(method: str, options, total_steps: int):
    """The PEFT config of a method (None for `full` and `bottleneck`, which do not use PEFT)."""
    import peft

    task = peft.TaskType.SEQ_CLS if getattr(options, "task", "generator") == "scorer" else peft.TaskType.CAUSAL_LM
    if method in ("lora", "qlora"):
        return peft.LoraConfig(
            task_type=task,
            r=options.rank,
            lora_alpha=2 * options.rank,
            lora_dropout=options.dropout,
            target_modules="all-linear",
        )
    if method == "adalora":
        return peft.AdaLoraConfig(
            task_type=task,
            init_r=options.rank + 4,
            target_r=options.rank,
            total_step=max(total_steps, 2),
            tinit=0,
            tfinal=0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        )
    if method == "ia3":
        return peft.IA3Config(task_type=task)
    if method == "prefix":
        return peft.PrefixTuningConfig(task_type=task, num_virtual_tokens=options.virtual_tokens)
    if method == "prompt":
        return peft.PromptTuningConfig(task_type=task, num_virtual_tokens=options.virtual_tokens)
    if method == "ptuning":
        return peft.PromptEncoderConfig(
            task_type=task, num_virtual_tokens=options.virtual_tokens, encoder_hidden_size=128
        )
    return None


def load_base(options):
    """The model and tokenizer a run starts from: the generator, or for the scorer task the embedder's
    encoder with a one-logit classification head ("does this passage answer the question?")."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if getattr(options, "task", "generator") == "scorer":
        from transformers import AutoModelForSequenceClassification

        location = embedder_location(options.base)
        tokenizer = AutoTokenizer.from_pretrained(location)
        # one logit trained with binary cross-entropy: a probability after a sigmoid
        model = AutoModelForSequenceClassification.from_pretrained(
            location, num_labels=1, problem_type="multi_label_classification"
        )
        return model, tokenizer
    location = prepare_model(options.base)
    kwargs = {}
    if options.method == "qlora":
        if not torch.cuda.is_available():
            raise ConfigError(
                "qlora needs a CUDA GPU (4-bit weights run on bitsandbytes' GPU kernels); use --method lora on a CPU"
            )
        require("bitsandbytes", "bitsandbytes", "QLoRA")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
        )
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    return model, tokenizer


def wrap(model, options, total_steps: int):
    if options.method == "full":
        for p in model.parameters():
            p.requires_grad = True
        return model
    if options.method == "bottleneck":
        from .bottleneck import add_bottleneck, load_bottleneck

        if options.init_adapter:
            return load_bottleneck(model, options.init_adapter, trainable=True)
        return add_bottleneck(model, size=options.rank * 8)
    import peft

    if options.method == "qlora":
        model = peft.prepare_model_for_kbit_training(model)
    if options.init_adapter:
        from .adapters import adapter_base, same_base

        if not same_base(adapter_base(options.init_adapter), options.base):
            raise ConfigError(
                f"--init-adapter {options.init_adapter} was trained for another base model than {options.base}"
            )
        return peft.PeftModel.from_pretrained(model, options.init_adapter, is_trainable=True)
    return peft.get_peft_model(model, peft_config(options.method, options, total_steps))
