"""Generation in a process of its own, at a lower CPU priority, so that `rag serve` keeps answering searches
while a model generates on the same cores.

In one process, a CPU-bound model (transformers' Python loop holds the GIL between kernels, its kernels hold
every core) slowed searches from ~10 ms to ~1.5 s during a burst of generative chats. `ProcessGenerator` runs
an in-process backend (transformers or llama.cpp) in a spawned child process that lowers its own priority
(`nice`), so the kernel gives the server's search threads the cores first and generation the rest. It speaks
the generator protocol (`chat`, `generate`, `render`, `count_tokens`, `context_window`), streams text back
as it is produced, and a cancel (a client that went away) stops the child's generation at its next token.

What this module does not do: choose the backend (`rag.generate.load_generator`, run inside the child) or
queue requests (`rag.serve.service`'s generation slots). An HTTP backend needs no process of its own: the
model runs elsewhere and the client mostly waits.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
from collections.abc import Callable

from ..config import GenerateConfig
from ..errors import Cancelled, RagError

log = logging.getLogger(__name__)

NICE = 10  # at nice 10 a busy generator gets ~1/10 of a core that a search thread also wants (CFS weights 110:1024)


class GenerationProcessError(RagError):
    """The generation process died or could not start."""


class ProcessGenerator:
    """A generator in a child process. Thread-safe; the child runs one generation at a time per model, as the
    in-process backends do, while token counting and rendering are answered alongside."""

    def __init__(self, config: GenerateConfig, nice: int = NICE):
        self.config = config
        self.nice = nice
        self._lock = threading.Lock()  # guards starting the child and sending to it
        self._conn = None
        self._process = None
        self._pending: dict[int, queue.Queue] = {}
        self._ids = itertools.count(1)
        self._window: int | None = None

    @property
    def id(self) -> str:
        return self.config.model

    # The child --------------------------------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied locks or threads
        parent, child = context.Pipe()
        process = context.Process(
            target=child_main, args=(child, dataclasses.asdict(self.config), self.nice), daemon=True, name="rag-gen"
        )
        process.start()
        child.close()
        self._conn, self._process = parent, process
        threading.Thread(target=self._read, args=(parent,), daemon=True, name="rag-gen-reader").start()
        log.info("generation process %d started for %s (nice %d)", process.pid, self.config.model, self.nice)

    def _read(self, conn) -> None:
        """Hand each message from the child to the request waiting for it; on the child's death, fail them all."""
        while True:
            try:
                kind, rid, value = conn.recv()
            except (EOFError, OSError):
                break
            waiting = self._pending.get(rid)
            if waiting is not None:
                waiting.put((kind, value))
        error = GenerationProcessError(
            f"the generation process for {self.config.model} exited; the next answer restarts it"
        )
        for waiting in list(self._pending.values()):
            waiting.put(("err", error))

    def _send(self, message: tuple) -> None:
        with self._lock:
            self._ensure()
            self._conn.send(message)

    def _call(self, method: str, *args, on_text=None, cancel=None):
        if cancel is not None and cancel.is_set():
            raise Cancelled("the generation was cancelled before it started")
        rid = next(self._ids)
        answers: queue.Queue = queue.Queue()
        self._pending[rid] = answers
        cancelled = False
        try:
            self._send(("call", rid, (method, args)))
            while True:
                try:
                    kind, value = answers.get(timeout=0.05)
                except queue.Empty:
                    kind = value = None
                if cancel is not None and cancel.is_set() and not cancelled:
                    self._send(("cancel", rid, None))  # the child stops at its next token and answers Cancelled
                    cancelled = True
                if kind is None:
                    continue
                if kind == "text":
                    if on_text is not None and not cancelled:
                        try:
                            on_text(value)
                        except BaseException:
                            self._send(("cancel", rid, None))  # nobody reads on: stop the child's generation
                            raise
                elif kind == "ok":
                    return value
                else:
                    raise value
        finally:
            self._pending.pop(rid, None)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            if self._process is not None:
                self._process.join(timeout=5)
                if self._process.is_alive():
                    self._process.kill()
            self._conn = self._process = None

    # The protocol -----------------------------------------------------------------------------------------

    @property
    def context_window(self) -> int:
        if self._window is None:
            self._window = self._call("context_window")
        return self._window

    def count_tokens(self, text: str) -> int:
        return self._call("count_tokens", text)

    def render(self, messages: list[dict]) -> str:
        return self._call("render", messages)

    def chat(
        self,
        messages: list[dict],
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        return self._call("chat", messages, max_new_tokens, on_text=on_text, cancel=cancel)

    def generate(self, prompt: str, max_new_tokens=None, on_text=None, cancel=None):
        return self._call("generate", prompt, max_new_tokens, on_text=on_text, cancel=cancel)


def child_main(conn, settings: dict, nice: int) -> None:
    """The child process: load the generator, then answer requests until the parent closes the pipe."""
    import os

    from ..generate import chat, load_generator

    try:
        os.nice(nice)
    except OSError:  # not permitted here: run at the parent's priority
        pass
    generator = load_generator(GenerateConfig(**settings))
    send_lock = threading.Lock()
    cancels: dict[int, threading.Event] = {}

    def send(message) -> None:
        with send_lock:
            try:
                conn.send(message)
            except (OSError, ValueError):  # the parent has gone: nothing to tell
                pass

    def run(rid: int, method: str, args: tuple) -> None:
        try:
            if method in ("chat", "generate"):
                on_text = lambda text: send(("text", rid, text))  # noqa: E731
                if method == "chat":
                    value = chat(generator, args[0], max_new_tokens=args[1], on_text=on_text, cancel=cancels[rid])
                else:
                    value = generator.generate(args[0], max_new_tokens=args[1], on_text=on_text, cancel=cancels[rid])
            elif method == "context_window":
                value = generator.context_window
            else:
                value = getattr(generator, method)(*args)
            send(("ok", rid, value))
        except BaseException as exc:
            send(("err", rid, _picklable(exc)))
        finally:
            cancels.pop(rid, None)

    if hasattr(generator, "load"):
        try:
            generator.load()  # now, before requests: a load failure is reported by the first request
        except Exception as exc:
            log.error("the generation process could not load %s: %s", settings.get("model"), exc)
    while True:
        try:
            kind, rid, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "cancel":
            if rid in cancels:
                cancels[rid].set()
            continue
        method, args = payload
        cancels[rid] = threading.Event()
        if method in ("chat", "generate"):
            threading.Thread(target=run, args=(rid, method, args), daemon=True).start()
        else:
            run(rid, method, args)


def _picklable(exc: BaseException) -> BaseException:
    """`exc` when it crosses a pipe intact; else a `RagError` with its message (its class may not unpickle)."""
    import pickle

    if isinstance(exc, Cancelled):
        return exc
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RagError(f"{type(exc).__name__}: {exc}")
