"""Local text generation with a Hugging Face causal LM (transformers), optionally with a PEFT adapter.

Where the model comes from (the bundled GGUF converted once, a folder, a hub id) is `rag.models`' job; the
prompt text is `rag.prompt.render`'s. This module loads the model, streams greedy generations and stops
them early when they loop or when the caller cancels.

Greedy decoding by default (reproducible answers), no repetition penalty (it also punishes copying from the
context, which a grounded answer must do); a stopping rule cuts generation that starts looping instead.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from .adapters import load_adapter
from .config import GenerateConfig
from .errors import Cancelled, ConfigError
from .models import prepare_model
from .prompt import render


@dataclass
class Generation:
    """One finished generation: the text (special tokens removed, loops trimmed) and what it cost."""

    text: str
    new_tokens: int
    prompt_tokens: int
    seconds: float
    first_token_s: float | None = None
    stopped_for_repetition: bool = False


class TextGenerator(Protocol):
    """What the answer pipeline needs of a generator (tests pass fakes that satisfy it)."""

    id: str
    config: GenerateConfig
    context_window: int

    def count_tokens(self, text: str) -> int: ...
    def render(self, messages: list[dict]) -> str: ...
    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation: ...


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
        """The prompt for `messages` (`rag.prompt.render`: the one `rag tune` trains on)."""
        return render(self.tokenizer, messages)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        **extra,
    ) -> Generation:
        """Greedy continuation of `prompt`; `on_text` receives the text as it is produced. Setting `cancel`
        (from any thread) stops the generation at the next token, or before it starts while it waits for
        the model, and raises `Cancelled`. `extra` goes to `model.generate` (e.g. min_new_tokens)."""
        import torch
        from transformers import StoppingCriteriaList, TextStreamer

        max_new = max_new_tokens or self.config.max_new_tokens
        with hold(self._lock, cancel):  # one generation at a time per model: safe to share between threads
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
                "stopping_criteria": StoppingCriteriaList([loop, _CancelStop(cancel)]),
                "pad_token_id": tok.pad_token_id,
            }
            if self.config.temperature > 0:
                kwargs.update(temperature=self.config.temperature, top_p=self.config.top_p)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            kwargs.update(extra)
            with torch.inference_mode():
                output = model.generate(**inputs, **kwargs)
            if cancel is not None and cancel.is_set():
                raise Cancelled("the generation was cancelled")
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


@contextlib.contextmanager
def hold(lock: threading.Lock, cancel: threading.Event | None = None) -> Iterator[None]:
    """Hold `lock` (generation is serialised per model); waiting ends with `Cancelled` once `cancel` is set."""
    while not lock.acquire(timeout=0.05):
        if cancel is not None and cancel.is_set():
            raise Cancelled("the generation was cancelled while it waited for the model")
    try:
        yield
    finally:
        lock.release()


class _CancelStop:
    """A stopping criterion: true once `cancel` is set (checked after every token)."""

    def __init__(self, cancel: threading.Event | None):
        self.cancel = cancel

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        stop = self.cancel is not None and self.cancel.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


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
