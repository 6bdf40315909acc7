"""Questions in, grounded answers out: retrieve -> decide whether there is evidence -> answer -> check.

`RAG` loads the index and models once and is safe to share between the threads and tasks of a bot process
(retrieval runs concurrently; generation is serialised per model). It answers synchronously (`ask`,
`stream`, `chat`) and from asyncio code (`aask`, `astream`, `ChatSession.aask`): the blocking work runs in
worker threads, never on the event loop, and a cancelled task stops its generation at the next token.

Answer modes:
- "extractive": the passage sentence that best answers the question, cited; no generation (fast, and
  never says anything its source does not).
- "generative": the causal LM answers from the numbered passages with the shared prompt (`rag.prompt`).
- "auto": generate, then check the reply (it cites a passage, every number/code/name in it appears in the
  passages, it does not loop, it is in the question's language); fall back to the extractive answer when
  a check fails.
Reading (`rag.evidence`): every sentence of the retrieved passages is scored for answering the question (a
learned cross-encoder and lexical features), the passages are reranked by their best sentence, and the
probability that they hold an answer decides refusal: below the reader's calibrated threshold (or
`answer.min_evidence`) the fixed refusal is returned without calling the model. A generated reply that says
it cannot find the answer is flagged refused too.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace

from .answer import CitationFixer, compose, is_looping, looks_like_refusal, repeats_part, ungrounded
from .config import DEFAULT_INDEX, Config
from .errors import ConfigError, PromptTooLongError
from .prompt import REFUSAL, build_messages, fit_budget
from .text import language, parse_citations, unencodable, unusable_text
from .types import Answer, Hit

_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|then|so)\b|\b(it|that|this|they|them|those|these|its|there)\b"
    r"|^(那|还有|另外|它|这个|那个)|(它|这个|那个|这些|那些)",
    re.IGNORECASE,
)


class RAG:
    """Answer questions over one index. `RAG()` uses indexes/default and the default models."""

    def __init__(
        self,
        index: str | os.PathLike | None = DEFAULT_INDEX,
        config: Config | None = None,
        retriever=None,
        generator=None,
    ):
        """`index=None` makes a closed-book system (the generator alone), for comparisons. `retriever` and
        `generator` replace the ones the config names (a shared `Retriever`, a fake in tests)."""
        from .retrieve import Retriever

        if index is not None and not isinstance(index, (str, os.PathLike)):
            raise ConfigError(f"`index` must be an index name or folder (str or path), got {type(index).__name__}")
        if config is not None and not isinstance(config, Config):
            raise ConfigError(f"`config` must be a rag.Config (Config.load('rag.toml')), got {type(config).__name__}")
        self.config = config or Config()
        gen = self.config.generate
        if generator is None and gen.base_url is None and gen.backend != "openai":
            if gen.adapter not in (None, "", "none", "bundled"):  # a bot should not find out at its first answer
                from .adapters import check_adapter

                check_adapter(gen.adapter)
        if retriever is None and index is not None:
            retriever = Retriever(index, self.config.retrieve, runtime=self.config.embed)
        self.retriever = retriever
        self._generator = generator
        self._idf: dict[str, float] | None = None
        self._reader = None
        self._lock = threading.Lock()

    @property
    def generator(self):
        """The causal LM (loaded on first use: extractive answers never load it)."""
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    from .generate import load_generator

                    self._generator = load_generator(self.config.generate)
        return self._generator

    @property
    def idf(self) -> dict[str, float]:
        if self._idf is None:
            from .evidence import corpus_idf

            self.retriever.chunks  # noqa: B018 - loads the index
            self._idf = corpus_idf(self.retriever.keywords)
        return self._idf

    @property
    def reader(self):
        """The `rag.evidence.Reader` the config names (its scorer loads on first use)."""
        if self._reader is None:
            with self._lock:
                if self._reader is None:
                    from .evidence import load_reader

                    self._reader = load_reader(self.config, self.idf)
        return self._reader

    def read(self, question: str, hits: list[Hit]):
        """How `hits` answer `question` (`rag.evidence.Reading`): sentence probabilities, the passages'
        order by their best sentence, and the probability that they hold an answer."""
        return self.reader.read(question, hits)

    def follow_up(self, reading, hits: list[Hit], question: str, history: list[dict]):
        """`reading` (of a follow-up read with the question before it, `standalone_query`) with each sentence's
        probability the geometric mean of that and of the follow-up's own reading of the same passages: the
        answer should fit both what the conversation is about and what the follow-up asks. Read together alone,
        the earlier question's words won ("and how long until I get it back?" after "How big is the deposit?"
        quoted the deposit again); read alone, a follow-up without its own ask lost its subject ("and what
        about a cargo bike?"). Whether to refuse stays decided on the passages, as before."""
        if not history or standalone_query(question, history) == question:
            return reading
        own = self.read(question, hits)
        if [(c.passage, c.text) for c in own.candidates] != [(c.passage, c.text) for c in reading.candidates]:
            return reading  # not the same sentences (a reader that cuts differently): keep the joint reading
        candidates = [
            replace(c, probability=(c.probability * o.probability) ** 0.5)
            for c, o in zip(reading.candidates, own.candidates)
        ]
        return replace(reading, candidates=candidates)

    def read_in_context(self, question: str, hits: list[Hit], k: int):
        """The reading an answer is made from and its best `k` passages: whether there is an answer is decided
        on the retrieved chunks themselves, as the reader was fitted and its threshold calibrated; which
        sentences answer, on the chunks read with their sections around them (`[answer] window`, merged where
        they touch), where an answer cut off by a chunk boundary is found. The scorer scores a sentence once."""
        core = self.read(question, hits)
        passages = self.retriever.widen(hits, self.config.answer.window) if self.retriever is not None else hits
        if passages is hits:
            return core.keep_hits(hits, k)
        reading = replace(
            self.read(question, passages),
            probability=core.probability,
            threshold=core.threshold,
            features=core.features,
        )
        return reading.keep_hits(passages, k)

    def shown(self, question: str, hits: list[Hit]) -> list[Hit]:
        """`hits` as the generator is shown them: each with its section around it (`[answer] window`), in the
        reader's order, each cut to its most probable sentence(s) (`[answer] focus`). What a retrieval-augmented
        adapter should be trained on: every passage, the distractors `[answer] show_floor` leaves out of an
        answer's prompt included (RAFT learns to ignore them)."""
        reading, ordered = self.read_in_context(question, hits, len(hits))
        return reading.focus(ordered, self.config.answer.focus)

    # Answering -----------------------------------------------------------------------------------------

    def retrieve(self, question: str, k: int | None = None, history: list[dict] | None = None) -> list[Hit]:
        """The passages an answer to `question` would be made from (a follow-up borrows the previous
        question's words, see `standalone_query`)."""
        query = standalone_query(question, history or [])
        return self.retriever.search(query, k=k or self.config.answer.k)

    def passages(self, question: str, k: int | None = None, history: list[dict] | None = None) -> list[Hit]:
        """What an answer to `question` is read from: the `k` retrieved chunks, each with the chunks of its
        section around it (`[answer] window`; hits of one section merged), so possibly fewer than `k`."""
        return self.retriever.widen(self.retrieve(question, k, history), self.config.answer.window)

    def ask(
        self,
        question: str,
        k: int | None = None,
        mode: str | None = None,
        closed_book: bool = False,
        history: list[dict] | None = None,
        on_text: Callable[[str], None] | None = None,
        max_new_tokens: int | None = None,
        cancel: threading.Event | None = None,
        **unknown,
    ) -> Answer:
        """Answer `question`. `k`, `mode` and `max_new_tokens` override the config for this call and are
        checked like it (`ConfigError` naming the field and the allowed values). `history` is the earlier
        turns ({"role": "user"|"assistant", "content"}). `on_text` receives the answer as it is produced; an
        exception it raises stops generation and propagates. Setting `cancel` stops generation at the next
        token (`Cancelled` is raised)."""
        config = self.config.override(answer={"k": k, "mode": mode}, generate={"max_new_tokens": max_new_tokens})
        if unknown:  # a typo in a per-call setting is a ConfigError like one in rag.toml, not a TypeError
            allowed = "k, mode, max_new_tokens, history, closed_book, on_text, cancel"
            raise ConfigError(f"ask() got unknown setting(s) {', '.join(sorted(unknown))}; it takes {allowed}")
        _check_question(question, history)
        call = _Call(question, language(question), history or [], on_text, cancel, config, max_new_tokens)
        if closed_book:
            return self._generate(call, [], closed_book=True)
        if self.retriever is None:
            raise ConfigError("this RAG has no index: give one, or ask with closed_book=True")
        started = time.perf_counter()
        hits = self.retrieve(question, max(config.answer.k, config.answer.candidates), history)
        call.timings["retrieve_s"] = time.perf_counter() - started
        started = time.perf_counter()
        reading, hits = self.read_in_context(standalone_query(question, history or []), hits, config.answer.k)
        reading = self.follow_up(reading, hits, question, history or [])
        call.timings["read_s"] = time.perf_counter() - started
        threshold = config.answer.min_evidence if config.answer.min_evidence is not None else reading.threshold
        call.notes.append(f"evidence {reading.probability:.3f} (threshold {threshold:.3f}; {reading.describe()})")
        if reading.probability < threshold:
            return self._refuse(call, hits, "below the evidence threshold: the passages do not hold an answer")
        if config.answer.mode == "extractive":
            return self._extractive(call, hits, compose(reading, hits))
        # distractors the reader rates far below the answer are not shown
        near, near_hits = reading.keep_hits(hits, reading.near_best(config.answer.show_floor))
        shown = near.focus(near_hits, config.answer.focus)
        if config.answer.mode == "generative":
            answer = self._generate(call, shown)
            if not answer.refused:  # what auto mode would reject is told, not hidden (the text has streamed)
                answer.warnings = self.check(question, answer)
            return answer
        # auto: the evidence check passed, so a reply that claims there is no answer is not trusted either
        try:
            answer = self._generate(call, shown, stream=False)
        except PromptTooLongError as exc:  # the extractive answer needs no prompt
            call.notes.append(f"not generated: {exc}")
            return self._extractive(call, hits, compose(reading, hits))
        problems = ["says the answer is not in the passages"] if answer.refused else self.check(question, answer)
        found = compose(reading, hits)
        if problems:
            call.notes.append(f"generated answer rejected: {'; '.join(problems)}")
        elif found is None or not repeats_part(answer.answer, found.text):
            call.emit(answer.answer)
            return answer
        else:  # the generator copied one sentence of what the reader quotes whole (a condition, an exception)
            call.notes.append("the generated answer repeats part of the extractive answer: the whole extract kept")
        fallback = self._extractive(call, hits, found)
        fallback.prompt = answer.prompt
        return fallback

    def check(self, question: str, answer: Answer) -> list[str]:
        """Why a generated answer cannot be trusted (empty when it passes)."""
        problems = []
        if not answer.citations:
            problems.append("cites no passage")
        # a passage is shown with its heading path, which can hold the fact ("Plan B (€14.90/month)")
        cited = [answer.sources[n - 1].chunk.indexed_text for n in answer.citations] or [
            h.chunk.indexed_text for h in answer.sources
        ]
        missing = ungrounded(answer.answer, cited)
        if missing:
            problems.append(f"facts not in the cited passages: {', '.join(missing[:5])}")
        if is_looping(answer.answer):
            problems.append("repeats itself")
        if language(question) != language(answer.answer):
            problems.append("answers in another language")
        return problems

    def _model_info(self, call: _Call) -> dict:
        """The generator an answer was made with, named even when it did not have to run."""
        if call.config.answer.mode == "extractive" and self._generator is None:
            return {"model": None, "adapter": None}
        from .generate import backend_of
        from .models import resolved

        generate = resolved(call.config.generate, backend_of(call.config.generate))
        return {"model": generate.model, "adapter": generate.adapter}

    def _refuse(self, call: _Call, hits: list[Hit], why: str) -> Answer:
        call.notes.append(why)
        text = REFUSAL[call.lang]
        call.emit(text)
        return call.answer(text, True, hits, [], "refusal", **self._model_info(call))

    def _extractive(self, call: _Call, hits: list[Hit], found) -> Answer:
        """The extractive answer `found` (`compose`'s, None when there is no sentence to quote)."""
        call.timings["generate_s"] = 0.0
        call.timings["new_tokens"] = 0
        if found is None:
            return self._refuse(call, hits, "no sentence to extract")
        call.emit(found.text)
        return call.answer(found.text, False, hits, found.citations, "extractive", **self._model_info(call))

    def _generate(self, call: _Call, hits: list[Hit], closed_book: bool = False, stream: bool = True) -> Answer:
        gen = self.generator
        new_tokens = call.max_new_tokens or gen.config.max_new_tokens
        budget = min(call.config.answer.max_prompt_tokens, gen.context_window - new_tokens - 32)
        hits, history = fit_budget(call.question, hits, call.history, gen.count_tokens, budget)
        from .generate import chat

        messages = build_messages(call.question, hits, history, call.lang)
        fixer = CitationFixer([h.chunk.text for h in hits], call.on_text if stream and call.on_text else None)
        result = chat(
            gen, messages, max_new_tokens=new_tokens, on_text=fixer.feed if fixer.emit else None, cancel=call.cancel
        )
        text, moved = fixer.finish(result.text)
        if moved:
            call.notes.append("citations moved to the passage holding the cited facts: " + ", ".join(
                f"[{a}] -> [{b}]" for a, b in moved))  # fmt: skip
        call.timings.update(generate_s=result.seconds, new_tokens=result.new_tokens, prompt_tokens=result.prompt_tokens)
        if result.first_token_s is not None:
            call.timings["first_token_s"] = result.first_token_s
        if result.stopped_for_repetition:
            call.notes.append("generation stopped: repetition")
        answer = call.answer(
            text,
            looks_like_refusal(text),
            hits,
            parse_citations(text, len(hits)),
            "closed-book" if closed_book else "generative",
            model=gen.id,
            adapter=gen.config.adapter,
        )
        answer.prompt = result.prompt
        return answer

    # Streaming and asyncio -----------------------------------------------------------------------------

    def stream(self, question: str, **kwargs) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are produced, then the finished `Answer`. Stopping early
        (breaking out of the loop) stops the generation at its next token."""
        import queue

        pieces: queue.Queue = queue.Queue()
        cancel = threading.Event()
        worker = threading.Thread(
            target=_produce, args=(self.ask, question, kwargs, cancel, pieces.put), daemon=True, name="rag-answer"
        )
        worker.start()
        try:
            while True:
                value, done = _piece(pieces.get())
                yield value
                if done:
                    return
        finally:
            cancel.set()

    async def aask(self, question: str, **kwargs) -> Answer:
        """`ask` for asyncio code: runs in a worker thread; cancelling the awaiting task stops the answer's
        generation at the next token."""
        cancel = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(None, lambda: self.ask(question, cancel=cancel, **kwargs))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even when abandoned
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            raise

    async def astream(self, question: str, **kwargs) -> AsyncIterator[str | Answer]:
        """`stream` for asyncio code: `async for piece in bot.astream(q)` yields text pieces, then the
        `Answer`. Leaving the loop early, or cancelling the consuming task, stops the generation."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the loop has closed: nobody is listening any more
                cancel.set()

        loop.run_in_executor(None, _produce, self.ask, question, kwargs, cancel, put)
        try:
            while True:
                value, done = _piece(await pieces.get())
                yield value
                if done:
                    return
        finally:
            cancel.set()

    def chat(self, closed_book: bool = False):
        """A multi-turn conversation, a `rag.ChatSession` (sync and async: `ask`, `stream`, `aask`, `astream`)."""
        from .chat import ChatSession

        return ChatSession(self, closed_book=closed_book)


def _piece(item: tuple[str, object]) -> tuple[object, bool]:
    """The value of a ("text" | "done" | "error", value) item from `_produce`, and whether it is the last one;
    an error is raised here, in the consumer's thread or task."""
    kind, value = item
    if kind == "error":
        raise value
    return value, kind == "done"


def _produce(ask, question: str, kwargs: dict, cancel: threading.Event, put) -> None:
    """Run `ask` (in a worker thread), handing ("text", piece) items, then ("done", answer) or ("error", exc)."""
    try:
        answer = ask(question, on_text=lambda text: put(("text", text)), cancel=cancel, **kwargs)
        put(("done", answer))
    except BaseException as exc:  # handed to the consumer, which re-raises it in its own thread or task
        put(("error", exc))


@dataclass
class _Call:
    """What one `ask` carries from stage to stage: the question, the settings in force, timings and notes."""

    question: str
    lang: str
    history: list[dict]
    on_text: Callable[[str], None] | None
    cancel: threading.Event | None
    config: Config
    max_new_tokens: int | None  # this call's limit; None: the generator's own
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def emit(self, text: str) -> None:
        if self.on_text is not None:
            self.on_text(text)

    def answer(self, text, refused, hits, citations, mode, model=None, adapter=None) -> Answer:
        return Answer(
            self.question,
            text,
            refused,
            hits,
            citations,
            mode,
            model=model,
            adapter=adapter,
            timings=self.timings,
            notes=self.notes,
        )


def _check_question(question, history) -> None:
    problem = unusable_text(question, "the question")
    if problem:
        raise ConfigError(problem)
    for i, turn in enumerate(history or []):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
        ):
            raise ConfigError(f"history[{i}] must be {{'role': 'user' or 'assistant', 'content': text}}, got {turn!r}")
        where = unencodable(turn["content"])
        if where:
            raise ConfigError(f"history[{i}]'s content is not valid text: {where}; check the input's encoding")


def standalone_query(question: str, history: list[dict]) -> str:
    """A retrieval query for `question` in a conversation: a follow-up ("and how long does that take?")
    borrows the previous user question's words, so that retrieval finds what "that" refers to.

    >>> standalone_query("and how long does that take?", [{"role": "user", "content": "How do I return a device?"}])
    'How do I return a device? and how long does that take?'
    >>> standalone_query("What is the warranty?", [{"role": "user", "content": "Hi"}])
    'What is the warranty?'
    """
    previous = [m["content"] for m in history if m.get("role") == "user"]
    if not previous or not _FOLLOW_UP.search(question):
        return question
    return f"{previous[-1]} {question}"
