"""The HTTP backend: answers from any server that speaks OpenAI's chat-completions protocol (vLLM, llama.cpp's
server, Ollama, TGI, hosted APIs), streamed, with the same protocol as the in-process generators.

- The server renders its own chat template, so this backend takes messages (`chat`), and the prompt it
  reports for tracing is the messages as sent.
- `--adapter NAME` asks for the server's adapter of that name (vLLM's `--lora-modules NAME=DIR`): the request's
  `model` is the adapter's name (the folder's name when a path is given).
- The API key comes from the environment variable that `[generate] api_key_env` names, read per request; it
  is never taken from a flag, stored in a config, printed or logged.
- Robustness: connect and read timeouts; up to `retries` retries with exponential backoff after 429, 5xx and
  dropped connections, honouring `Retry-After`; errors are `RemoteError`s whose one line names the URL, the
  status and the server's own message. A stream that breaks after text was shown is not retried (the text
  already reached the reader): it is an error.
- Cancelling (`cancel` set: a client of `rag serve` went away, a task was cancelled) closes the upstream
  stream, so the server stops generating too.
- Request parameters follow the protocol: `max_tokens` (what every server accepts), switched to
  `max_completion_tokens` for a server that rejects the older name; no `stop` sequences.

What this module does not do: build prompts (`rag.prompt`), count tokens exactly (the server's tokenizer is
not here: a conservative estimate keeps prompts inside the window), or serve anything (`rag.serve`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .config import GenerateConfig
from .errors import Cancelled, ConfigError, RagError
from .generate import Generation, _trim_repetition, repeating
from .httputil import adapt_request, estimate_tokens, redact, retry_after, server_message
from .models import resolved

__all__ = ["RemoteError", "RemoteGenerator", "redact"]

RETRY_STATUS = (408, 429, 500, 502, 503, 504)  # busy or briefly broken: worth another try
MAX_WAIT_S = 60.0  # the longest Retry-After honoured; a server that asks for more is reported instead
DEFAULT_WINDOW = 4096  # when neither the config nor the server says how long a prompt may be


class RemoteError(RagError):
    """The generation server could not be reached, refused the request, or broke off its answer."""


class _Dropped(Exception):
    """The stream ended before the server said it had finished."""


class RemoteGenerator:
    """A model behind an OpenAI-compatible server. Thread-safe; concurrent answers are concurrent requests (the
    server batches them). Nothing connects before the first answer."""

    def __init__(self, config: GenerateConfig):
        if not config.base_url:
            raise ConfigError("the HTTP backend needs `base_url` (--base-url URL), the server's /v1 URL")
        self.config = resolved(config, "openai")
        self.base_url = config.base_url.rstrip("/")
        self._client = None
        self._window: int | None = config.context_window
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.config.model

    @property
    def model_name(self) -> str:
        """The `model` of each request: the adapter's name when one is asked for (vLLM serves adapters as
        models), else the configured model."""
        return Path(self.config.adapter).name if self.config.adapter else self.config.model

    def __repr__(self) -> str:  # never the key: it is not even held here
        return f"RemoteGenerator(base_url={redact(self.base_url)!r}, model={self.model_name!r})"

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import httpx

                    timeout = httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout)
                    self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        name = self.config.api_key_env
        if name:
            key = os.environ.get(name)
            if not key:
                raise ConfigError(
                    f"the generation server's API key is read from the environment variable {name}, which is not "
                    f"set; export {name}=... (or drop api_key_env for a server without keys)"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # The protocol ----------------------------------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """The configured `context_window`, else what the server's /models says (vLLM's `max_model_len`,
        llama.cpp's `n_ctx`), else 4096."""
        if self._window is None:
            self._window = self._served_window() or DEFAULT_WINDOW
        return self._window

    def _served_window(self) -> int | None:
        try:
            response = self.client.get(f"{self.base_url}/models", headers=self._headers(), timeout=10)
            models = response.json().get("data", []) if response.status_code == 200 else []
        except Exception:  # only a hint: the answer itself reports a server that does not work
            return None
        for entry in models:
            if isinstance(entry, dict) and entry.get("id") in (self.model_name, self.config.model):
                meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
                for value in (entry.get("max_model_len"), meta.get("n_ctx"), meta.get("n_ctx_train")):
                    if isinstance(value, int) and value > 0:
                        return value
        return None

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def render(self, messages: list[dict]) -> str:
        """The messages as sent (the server applies its own chat template), for tracing."""
        return json.dumps(list(messages), ensure_ascii=False)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """`chat` on `prompt`: messages as `render` wrote them, or any other text as one user message."""
        try:
            messages = json.loads(prompt)
        except ValueError:
            messages = None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            messages = [{"role": "user", "content": prompt}]
        return self.chat(messages, max_new_tokens=max_new_tokens, on_text=on_text, cancel=cancel)

    def chat(
        self,
        messages: list[dict],
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """The server's streamed answer to `messages`. Raises `RemoteError` (one line: URL, status, the
        server's message), `ConfigError` for a missing key variable, `Cancelled` once `cancel` is set."""
        body = {
            "model": self.model_name,
            "messages": list(messages),
            "max_tokens": max_new_tokens or self.config.max_new_tokens,
            "temperature": self.config.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.config.top_p != 1.0:
            body["top_p"] = self.config.top_p
        url = f"{self.base_url}/chat/completions"
        where = redact(url)
        started = time.perf_counter()
        adjusted: set[str] = set()
        attempt = 0
        while True:
            _check(cancel)
            delay = None
            try:
                with self.client.stream("POST", url, json=body, headers=self._headers()) as response:
                    if response.status_code < 400:
                        result = self._read(response, started, on_text, cancel)
                        result.prompt = self.render(messages)
                        return result
                    response.read()
                    message = server_message(response)
                    status = response.status_code
                    if status == 400 and adapt_request(body, message, adjusted):
                        continue  # a server that names a parameter it does not take: follow it, once per parameter
                    if status not in RETRY_STATUS or attempt >= self.config.retries:
                        raise RemoteError(
                            f"{where} answered {status} {response.reason_phrase}: {message}{_hint(status, self.config)}"
                        )
                    delay = retry_after(response.headers.get("retry-after"))
                    if delay is not None and delay > MAX_WAIT_S:
                        raise RemoteError(f"{where} answered {status} and asks to retry in {delay:.0f} s: {message}")
            except _Dropped as exc:
                if exc.args[0] or attempt >= self.config.retries:  # text was shown already: cannot start over
                    raise RemoteError(f"{where} broke off the answer: {exc.args[1]}") from None
            except RemoteError:
                raise
            except Exception as exc:
                import httpx

                if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                    raise RemoteError(
                        f"{where} sent nothing for {self.config.timeout:g} s; a busy server may need a longer "
                        "[generate] timeout"
                    ) from None
                if not isinstance(exc, httpx.TransportError):
                    raise
                if attempt >= self.config.retries:
                    what = "cannot connect to" if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) else "lost"
                    raise RemoteError(
                        f"{what} the generation server {where} ({type(exc).__name__}: {exc or 'no details'}) after "
                        f"{attempt + 1} attempt(s); is it running, and is --base-url right?"
                    ) from None
            attempt += 1
            _sleep(delay if delay is not None else min(0.5 * 2 ** (attempt - 1), 8.0), cancel)

    def _read(self, response, started: float, on_text, cancel) -> Generation:
        """Read one streamed answer (server-sent events) to its end, handing text on as it arrives."""
        pieces: list[str] = []
        first = None
        usage: dict = {}
        finished = looping = False
        watcher = _closer(response, cancel)
        try:
            for line in response.iter_lines():
                _check(cancel)
                if not line.startswith("data:"):
                    continue  # comments (keep-alives), event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    raise RemoteError(f"{redact(str(response.url))} sent a malformed event: {data[:200]!r}") from None
                if not isinstance(event, dict):
                    continue
                if isinstance(event.get("error"), dict | str):
                    error = event["error"]
                    message = error.get("message", error) if isinstance(error, dict) else error
                    raise RemoteError(f"{redact(str(response.url))} failed while answering: {message}")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        if first is None:
                            first = time.perf_counter() - started
                        pieces.append(text)
                        if on_text is not None:
                            on_text(text)
                    if choice.get("finish_reason"):
                        finished = True
                if repeating(pieces):
                    looping = True  # leaving the stream closes it: the server stops generating
                    break
        except Exception as exc:
            _check(cancel)  # a stream closed because of a cancel is a cancel, not a failure
            import httpx

            if isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.TimeoutException):
                raise _Dropped(bool(pieces), f"{type(exc).__name__} after {len(''.join(pieces))} characters") from None
            raise
        finally:
            watcher.set()
        _check(cancel)
        if not finished and not looping:
            raise _Dropped(bool(pieces), f"the stream ended after {len(''.join(pieces))} characters without [DONE]")
        text = "".join(pieces)
        if looping:
            text = _trim_repetition(text)
        return Generation(
            text=text.strip(),
            new_tokens=int(usage.get("completion_tokens") or len(pieces)),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            seconds=time.perf_counter() - started,
            first_token_s=first,
            stopped_for_repetition=looping,
        )


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("the generation was cancelled")


def _sleep(seconds: float, cancel: threading.Event | None) -> None:
    """Wait before a retry; a cancel ends the wait (and the answer) at once."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled("the generation was cancelled while it waited to retry")


def _closer(response, cancel: threading.Event | None) -> threading.Event:
    """While the stream is read, a cancel shuts its connection down from another thread: a server still busy
    with a long prompt sends nothing the reading loop could check the cancel between, and closing the response
    object does not wake a blocked read (shutting the socket does). Returns the event that ends the watch."""
    done = threading.Event()
    if cancel is None:
        return done

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(0.05):
                if not done.is_set():
                    _shutdown(response)
                return

    threading.Thread(target=watch, daemon=True, name="rag-remote-cancel").start()
    return done


def _shutdown(response) -> None:
    import socket

    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once; the server sees the client go
        else:
            response.close()
    except OSError:  # already closed by the reading thread
        pass


def _hint(status: int, config: GenerateConfig) -> str:
    if status in (401, 403):
        if config.api_key_env:
            return f" (check the key in ${config.api_key_env})"
        return " (the server wants a key: set [generate] api_key_env, or --api-key-env, to the variable holding it)"
    if status == 404:
        return " (check --base-url, which usually ends in /v1, and --model or --adapter: GET /v1/models lists them)"
    return ""
