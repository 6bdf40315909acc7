"""Questions in, grounded answers out: retrieve -> decide whether there is evidence -> answer -> check.

`RAG` loads the index and models once and is safe to share between the threads of a bot process
(retrieval runs concurrently; generation is serialised per model). Answer modes:
- "extractive": the passage sentence that best answers the question, cited; no generation (fast, and
  never says anything its source does not).
- "generative": the causal LM answers from the numbered passages with the shared prompt (`rag.prompt`).
- "auto": generate, then check the reply (it cites a passage, every number/code/name in it appears in the
  passages, it does not loop, it is in the question's language); fall back to the extractive answer when
  a check fails.
Refusal: when the best passage's relevance is below `answer.min_evidence`, the fixed refusal is returned
without calling the model; a generated reply that says it cannot find the answer is flagged refused too.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .answer import (
    corpus_idf,
    extract,
    is_looping,
    keyword_overlap,
    looks_like_refusal,
    missing_entities,
    parse_citations,
    ungrounded,
)
from .config import DEFAULT_INDEX, Config
from .keywords import tokenize
from .prompt import REFUSAL, build_messages, fit_budget, language
from .types import Answer, Hit

_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|then|so)\b|\b(it|that|this|they|them|those|these|its|there)\b"
    r"|^(那|还有|另外|它|这个|那个)|(它|这个|那个|这些|那些)",
    re.IGNORECASE,
)


# words that frame a question ("how long", "how much") rather than name what it is about; a knowledge base
# that never uses them can still hold the answer (stemmed, as the keyword tokenizer leaves them)
QUESTION_FRAME = frozenset(
    "long much mani far often soon quick quickli big larg old kind type way thing get need want know tell pleas "
    "happen possibl mean exact usual typic 多久 多长 多少 多大 多远 怎么样 为什么 是否 可以 需要 知道 告诉".split()
)


@dataclass
class Evidence:
    """How well the retrieved passages match the question (0..1), and from what."""

    score: float
    dense: float
    keywords: float
    unknown: float  # IDF-weighted share of the question's keywords that occur nowhere in the index


class RAG:
    """Answer questions over one index. `RAG()` uses indexes/default and the default models."""

    def __init__(
        self,
        index: str | os.PathLike | None = DEFAULT_INDEX,
        config: Config | None = None,
        retriever=None,
        generator=None,
    ):
        """`index=None` makes a closed-book system (the generator alone), for comparisons."""
        from .retrieve import Retriever

        self.config = config or Config()
        if retriever is None and index is not None:
            retriever = Retriever(index, self.config.retrieve)
        self.retriever = retriever
        self._generator = generator
        self._idf: dict[str, float] | None = None

    @property
    def generator(self):
        if self._generator is None:
            from .generate import Generator

            self._generator = Generator(self.config.generate)
        return self._generator

    @property
    def idf(self) -> dict[str, float]:
        if self._idf is None:
            self.retriever.chunks  # noqa: B018 - loads the index
            self._idf = corpus_idf(self.retriever.keywords)
        return self._idf

    # Evidence ------------------------------------------------------------------------------------------

    def evidence(self, question: str, hits: list[Hit]) -> Evidence:
        """Relevance of the best hit: cosine similarity where the embedder can read the question, keyword
        overlap where it cannot, lowered by question keywords the knowledge base never mentions."""
        if not hits:
            return Evidence(0.0, 0.0, 0.0, 1.0)
        q_tokens = [t for t in tokenize(question) if t not in QUESTION_FRAME]
        idf = self.idf
        top_idf = max(idf.values()) if idf else 1.0
        weights = {t: idf.get(t, top_idf) for t in set(q_tokens)}
        total = sum(weights.values()) or 1.0
        unknown = sum(w for t, w in weights.items() if t not in idf) / total
        reads = self.retriever.embedder.coverage(question)
        best = Evidence(0.0, 0.0, 0.0, unknown)
        for hit in hits:
            dense = max(0.0, hit.scores.get("dense", 0.0))
            overlap = keyword_overlap(q_tokens, set(tokenize(hit.chunk.indexed_text)), weights)
            score = (reads * dense + (1 - reads) * overlap) * (1 - unknown)
            if score > best.score:
                best = Evidence(score, dense, overlap, unknown)
        return best

    # Answering -----------------------------------------------------------------------------------------

    def retrieve(self, question: str, k: int | None = None, history: list[dict] | None = None) -> list[Hit]:
        query = standalone_query(question, history or [])
        return self.retriever.search(query, k=k or self.config.answer.k)

    def ask(
        self,
        question: str,
        k: int | None = None,
        mode: str | None = None,
        closed_book: bool = False,
        history: list[dict] | None = None,
        on_text: Callable[[str], None] | None = None,
        max_new_tokens: int | None = None,
    ) -> Answer:
        """Answer `question`. `on_text` receives the answer as it is produced (streaming); an exception it
        raises stops generation and propagates (how a server drops the work of a client that went away)."""
        from .errors import ConfigError

        if not isinstance(question, str) or not question.strip():
            raise ConfigError("the question is empty")
        mode = mode or self.config.answer.mode
        lang = language(question)
        timings: dict[str, float] = {}
        if closed_book:
            return self._generate(
                question, [], history or [], lang, timings, on_text, closed_book=True, max_new_tokens=max_new_tokens
            )
        if self.retriever is None:
            raise ConfigError("this RAG has no index: give one, or ask with closed_book=True")
        started = time.perf_counter()
        hits = self.retrieve(question, k, history)
        ev = self.evidence(standalone_query(question, history or []), hits)
        timings["retrieve_s"] = time.perf_counter() - started
        notes = [
            f"evidence {ev.score:.3f} (dense {ev.dense:.3f}, keywords {ev.keywords:.3f}, unknown {ev.unknown:.3f})"
        ]
        if ev.score < self.config.answer.min_evidence:
            return self._refuse(question, hits, lang, timings, on_text, notes + ["below min_evidence: no evidence"])
        missing = missing_entities(question, self.idf)
        if missing:
            return self._refuse(
                question, hits, lang, timings, on_text, notes + [f"never mentioned: {', '.join(missing)}"]
            )
        if mode == "extractive":
            return self._extractive(question, hits, lang, timings, on_text, notes)
        answer = self._generate(
            question,
            hits,
            history or [],
            lang,
            timings,
            on_text if mode == "generative" else None,
            max_new_tokens=max_new_tokens,
        )
        answer.notes = notes + answer.notes
        if mode == "generative":
            return answer
        # auto: the evidence check passed, so a reply that claims there is no answer is not trusted either
        problems = ["says the answer is not in the passages"] if answer.refused else self.check(question, answer)
        if not problems:
            if on_text is not None:
                on_text(answer.answer)
            return answer
        fallback = self._extractive(
            question, hits, lang, timings, on_text, answer.notes + [f"generated answer rejected: {'; '.join(problems)}"]
        )
        fallback.prompt = answer.prompt
        return fallback

    def check(self, question: str, answer: Answer) -> list[str]:
        """Why a generated answer cannot be trusted (empty when it passes)."""
        problems = []
        if not answer.citations:
            problems.append("cites no passage")
        cited = [answer.sources[n - 1].chunk.text for n in answer.citations] or [h.chunk.text for h in answer.sources]
        missing = ungrounded(answer.answer, cited)
        if missing:
            problems.append(f"facts not in the cited passages: {', '.join(missing[:5])}")
        if is_looping(answer.answer):
            problems.append("repeats itself")
        if language(question) != language(answer.answer):
            problems.append("answers in another language")
        return problems

    def _model_info(self) -> dict:
        """The generator an answer was made with, named even when it did not have to run."""
        if self.config.answer.mode == "extractive" and self._generator is None:
            return {"model": None, "adapter": None}
        gen = self.config.generate
        return {"model": gen.model, "adapter": gen.adapter}

    def _refuse(self, question, hits, lang, timings, on_text, notes) -> Answer:
        text = REFUSAL[lang]
        if on_text is not None:
            on_text(text)
        return Answer(question, text, True, hits, [], "refusal", timings=timings, notes=notes, **self._model_info())

    def _extractive(self, question, hits, lang, timings, on_text, notes) -> Answer:
        started = time.perf_counter()
        best = extract(question, hits, self.retriever.embedder, self.idf)
        timings["generate_s"] = time.perf_counter() - started
        timings["new_tokens"] = 0
        if best is None:
            return self._refuse(question, hits, lang, timings, on_text, notes + ["no sentence to extract"])
        text = f"{best.text} [{best.passage}]"
        if on_text is not None:
            on_text(text)
        return Answer(
            question,
            text,
            False,
            hits,
            [best.passage],
            "extractive",
            timings=timings,
            notes=notes,
            **self._model_info(),
        )

    def _generate(
        self, question, hits, history, lang, timings, on_text, closed_book=False, max_new_tokens=None
    ) -> Answer:
        gen = self.generator
        new_tokens = max_new_tokens or gen.config.max_new_tokens
        budget = min(self.config.answer.max_prompt_tokens, gen.context_window - new_tokens - 32)
        hits, history = fit_budget(question, hits, history, gen.count_tokens, budget)
        prompt = gen.render(build_messages(question, hits, history, lang))
        result = gen.generate(prompt, max_new_tokens=new_tokens, on_text=on_text)
        timings["generate_s"] = result.seconds
        timings["new_tokens"] = result.new_tokens
        timings["prompt_tokens"] = result.prompt_tokens
        if result.first_token_s is not None:
            timings["first_token_s"] = result.first_token_s
        text = result.text
        refused = looks_like_refusal(text)
        notes = ["generation stopped: repetition"] if result.stopped_for_repetition else []
        return Answer(
            question,
            text,
            refused,
            hits,
            parse_citations(text, len(hits)),
            "closed-book" if closed_book else "generative",
            model=gen.id,
            adapter=gen.config.adapter,
            timings=timings,
            prompt=prompt,
            notes=notes,
        )

    def stream(self, question: str, **kwargs) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are produced, then the finished `Answer`."""
        import queue
        import threading

        pieces: queue.Queue = queue.Queue()
        box: dict = {}

        def run():
            try:
                box["answer"] = self.ask(question, on_text=pieces.put, **kwargs)
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc
            finally:
                pieces.put(None)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while (piece := pieces.get()) is not None:
            yield piece
        worker.join()
        if "error" in box:
            raise box["error"]
        yield box["answer"]

    def chat(self, closed_book: bool = False) -> ChatSession:
        return ChatSession(self, closed_book=closed_book)


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


@dataclass
class ChatSession:
    """A multi-turn conversation: follow-ups are retrieved with the context of the previous question."""

    rag: RAG
    history: list[dict] = field(default_factory=list)
    max_turns: int = 6
    closed_book: bool = False

    def ask(self, question: str, **kwargs) -> Answer:
        kwargs.setdefault("closed_book", self.closed_book)
        answer = self.rag.ask(question, history=self.history[-2 * self.max_turns :], **kwargs)
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]
        return answer


def calibrate_min_evidence(rag: RAG, questions: list[dict], split: str | None = "train", margin: float = 0.9) -> dict:
    """The refusal threshold from labelled questions: the highest evidence level that still lets 98% of the
    answerable questions through, times `margin`. Returns the threshold and the evidence of every question,
    so that the choice can be inspected. Questions are {"question", "answerable", "split"} records."""
    import numpy as np

    rows = []
    for q in questions:
        if split and q.get("split") != split:
            continue
        hits = rag.retrieve(q["question"])
        rows.append(
            {
                "id": q.get("id"),
                "answerable": bool(q["answerable"]),
                "evidence": rag.evidence(q["question"], hits).score,
            }
        )
    answerable = [r["evidence"] for r in rows if r["answerable"]]
    if not answerable:
        raise ValueError("calibration needs answerable questions")
    threshold = float(np.quantile(answerable, 0.02, method="lower")) * margin
    refused = [r for r in rows if not r["answerable"] and r["evidence"] < threshold]
    return {
        "min_evidence": round(threshold, 3),
        "questions": len(rows),
        "unanswerable_refused": f"{len(refused)}/{sum(1 for r in rows if not r['answerable'])}",
        "rows": rows,
    }
