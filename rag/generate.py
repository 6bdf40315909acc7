"""The generator protocol, the choice of backend, and the transformers backend (a Hugging Face causal LM in
process, optionally with a PEFT adapter).

Three backends speak one protocol (`TextGenerator`): transformers (here; needed for tuning and GPUs),
llama.cpp in process (`rag.llamacpp`, GGUF files as they are) and any OpenAI-compatible HTTP server
(`rag.remote`: vLLM, llama.cpp's server, Ollama, TGI, hosted APIs). `load_generator(config)` picks one from
`[generate] backend`, or infers it (a base URL -> HTTP, a .gguf file -> llama.cpp). `chat(generator,
messages)` is how the pipeline calls any of them: an HTTP server renders its chat template itself, so the
protocol's entry point takes messages and returns the prompt text it used for tracing.

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
from .models import prepare_model, resolved
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
    prompt: str | None = None  # the prompt text it answered (for an HTTP server: the messages, as sent)


class TextGenerator(Protocol):
    """What the answer pipeline needs of a generator (tests pass fakes that satisfy it). A generator may also
    have `chat(messages, max_new_tokens, on_text, cancel) -> Generation` (with `prompt` set); `chat()` below
    falls back to `render` + `generate` for those that do not."""

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


BACKENDS = ("transformers", "llamacpp", "openai")


def backend_of(config: GenerateConfig) -> str:
    """The backend a config runs on: `backend` when set, else inferred (a base URL: the OpenAI-compatible HTTP
    protocol; a .gguf file: llama.cpp; anything else: transformers).

    >>> backend_of(GenerateConfig(base_url="http://127.0.0.1:8080/v1", model="qwen"))
    'openai'
    >>> backend_of(GenerateConfig(model="models/qwen2.5-1.5b-instruct-q4_k_m.gguf")), backend_of(GenerateConfig())
    ('llamacpp', 'transformers')
    """
    if config.backend != "auto":
        return config.backend
    if config.base_url:
        return "openai"
    if config.model.lower().endswith(".gguf"):
        return "llamacpp"
    return "transformers"


def load_generator(config: GenerateConfig | None = None) -> TextGenerator:
    """The generator `config` names, on its backend (see `backend_of`). Cheap: models load on first use,
    and nothing connects to a server before the first answer."""
    config = config or GenerateConfig()
    backend = backend_of(config)
    if backend == "openai":
        from .remote import RemoteGenerator

        return RemoteGenerator(config)
    if backend == "llamacpp":
        from .llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(config)
    return Generator(config)


def chat(
    generator,
    messages: list[dict],
    max_new_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> Generation:
    """The generator's answer to chat `messages`, with `prompt` set to the text it answered: its own `chat`
    when it has one, else `render` then `generate` (what a generator made for the older protocol offers)."""
    own = getattr(generator, "chat", None)
    if own is not None:
        return own(messages, max_new_tokens=max_new_tokens, on_text=on_text, cancel=cancel)
    prompt = generator.render(messages)
    result = generator.generate(prompt, max_new_tokens=max_new_tokens, on_text=on_text, cancel=cancel)
    result.prompt = prompt
    return result


class Generator:
    """A causal LM that turns a chat prompt into text. Loads on first use; one generation at a time."""

    def __init__(self, config: GenerateConfig | None = None):
        self.config = resolved(config or GenerateConfig(), "transformers")
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
        if self.config.threads:
            torch.set_num_threads(self.config.threads)  # process-wide: meant for a process that only generates
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


def repeating(tokens: list[int], n: int = 4, times: int = 3) -> bool:
    """True when the last `n` tokens already occurred `times - 1` times before: the generation loops.

    >>> repeating([1, 2, 3, 4] * 3), repeating([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    (True, False)
    """
    if len(tokens) < n * times:
        return False
    tail = tuple(tokens[-n:])
    return sum(1 for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n]) == tail) >= times


class _RepetitionStop:
    """Stop when the last `n` generated tokens already occurred twice before in the generation: a loop."""

    def __init__(self, prompt_len: int, n: int = 4, times: int = 3):
        self.prompt_len, self.n, self.times = prompt_len, n, times
        self.triggered = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.triggered = repeating(input_ids[0, self.prompt_len :].tolist(), self.n, self.times)
        return torch.full((input_ids.shape[0],), self.triggered, dtype=torch.bool, device=input_ids.device)


def _trim_repetition(text: str) -> str:
    """Cut a looping answer after its first occurrence of the repeated phrase."""
    words = text.split()
    for size in range(1, 12):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return " ".join(words[: start + size])
    return text
