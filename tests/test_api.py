"""The Python API a bot imports: public names, per-call checks, asyncio, LangChain interop."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, FakeGenerator

import rag
from rag.config import Config
from rag.embeddings import HashEmbedder
from rag.errors import Cancelled, ConfigError
from rag.retrieve import Retriever


def test_import_rag_is_light_and_every_public_name_resolves():
    code = "import sys, rag; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["False", "False"]
    for name in rag.__all__:
        assert getattr(rag, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'RAGG'"):
        rag.RAGG  # noqa: B018


def test_every_name_the_readme_shows_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\brag\.([A-Z][A-Za-z_]+)", readme))
    assert {"RAG", "Answer", "Retriever"} <= shown
    assert [n for n in sorted(shown) if not hasattr(rag, n)] == []


class SlowFake(FakeGenerator):
    """Blocks its thread for `pause` seconds per word (like a CPU-bound model) and records overlaps."""

    def __init__(self, pause=0.05):
        super().__init__(reply=self.echo)
        self.pause, self.active, self.most_active, self.stopped = pause, 0, 0, 0
        self._lock, self._count = threading.Lock(), threading.Lock()

    @staticmethod
    def echo(prompt):
        question = prompt.rsplit("Question: ", 1)[-1].split("\n")[0]
        return f"w1 w2 w3 w4 w5 w6 [1] {question}"

    def generate(self, prompt, max_new_tokens=None, on_text=None, cancel=None):
        from rag.generate import Generation

        with self._lock:  # one generation at a time per model, as rag.generate.Generator does
            with self._count:
                self.active += 1
                self.most_active = max(self.most_active, self.active)
            try:
                text = self.echo(prompt)
                for word in text.split(" "):
                    time.sleep(self.pause)
                    if cancel is not None and cancel.is_set():
                        self.stopped += 1
                        raise Cancelled("cancelled")
                    if on_text:
                        on_text(word + " ")
                return Generation(text=text, new_tokens=8, prompt_tokens=10, seconds=0.1)
            finally:
                with self._count:
                    self.active -= 1


def _bot(index, generator, mode="generative"):
    config = Config().override(answer={"mode": mode, "min_evidence": 0.0, "scorer": "none"})
    return rag.RAG(index, config, retriever=Retriever(index, config.retrieve, embedder=HashEmbedder(64)),
                   generator=generator)  # fmt: skip


def test_per_call_overrides_are_checked_like_the_config(hash_index):
    bot = _bot(hash_index, FakeGenerator())
    with pytest.raises(
        ConfigError, match=r"answer `mode` must be one of extractive, generative, auto, got mode='generativ'"
    ):
        bot.ask("How long do I hold the RESET button?", mode="generativ")
    with pytest.raises(ConfigError, match="answer `k` must be a positive integer, got k=0"):
        bot.ask("How long do I hold the RESET button?", k=0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        bot.ask("How long do I hold the RESET button?", max_new_tokens=-5)
    with pytest.raises(ConfigError, match="history"):
        bot.ask("and then?", history=[{"role": "robot", "content": "hi"}])
    with pytest.raises(ConfigError, match="retrieval `mode` must be one of"):
        bot.retriever.search("reset", mode="sparse")
    with pytest.raises(ConfigError, match="unknown setting.* kk; it takes k, mode"):  # a TypeError before
        bot.ask("How long do I hold the RESET button?", kk=2)
    with pytest.raises(ConfigError, match="unknown setting"):
        list(bot.stream("How long do I hold the RESET button?", kk=2))
    assert bot.ask("How long do I hold the RESET button?", mode="extractive", k=2).mode == "extractive"


def test_async_answers_run_off_the_event_loop_and_are_not_mixed_up(hash_index):
    gen = SlowFake(pause=0.05)
    bot = _bot(hash_index, gen)

    async def main():
        lags = []

        async def ticker():  # measures how long the loop is ever kept from running other tasks
            while True:
                started = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - started - 0.01)

        tick = asyncio.create_task(ticker())
        questions = [f"How long do I hold the RESET button? number {i}" for i in range(6)]
        answers = await asyncio.gather(*(bot.aask(q) for q in questions))
        tick.cancel()
        return questions, answers, lags

    questions, answers, lags = asyncio.run(main())
    assert [a.question for a in answers] == questions
    assert all(a.answer.endswith(q) for a, q in zip(answers, questions))  # each got its own generation
    assert gen.most_active == 1  # generation serialised per model
    # six answers took ~2.4 s of blocking work, yet the loop never stalled longer than a retrieval
    assert max(lags) < 0.25, max(lags)


def test_cancelling_a_task_stops_its_generation_at_the_next_token(hash_index):
    gen = SlowFake(pause=0.1)
    bot = _bot(hash_index, gen)

    async def main():
        task = asyncio.create_task(bot.aask("How long do I hold the RESET button?"))
        await asyncio.sleep(0.35)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        started = time.perf_counter()
        while gen.active and time.perf_counter() - started < 2:
            await asyncio.sleep(0.02)

    asyncio.run(main())
    assert gen.stopped == 1 and gen.active == 0  # stopped mid-answer (8 words would take 0.8 s)


def test_astream_yields_pieces_then_the_answer_and_stops_when_left(hash_index):
    gen = SlowFake(pause=0.02)
    bot = _bot(hash_index, gen)

    async def whole():
        return [piece async for piece in bot.astream("How long do I hold the RESET button?")]

    items = asyncio.run(whole())
    assert isinstance(items[-1], rag.Answer) and "".join(items[:-1]).strip() == items[-1].answer

    async def first_two():
        got = []
        stream = bot.astream("How long do I hold the RESET button?")
        async for piece in stream:
            got.append(piece)
            if len(got) == 2:
                break
        await stream.aclose()
        for _ in range(100):
            if not gen.active:
                break
            await asyncio.sleep(0.02)
        return got

    assert len(asyncio.run(first_two())) == 2
    assert gen.stopped == 1 and gen.active == 0


def test_sync_stream_left_early_stops_the_generation(hash_index):
    gen = SlowFake(pause=0.05)
    bot = _bot(hash_index, gen)
    for piece in bot.stream("How long do I hold the RESET button?"):
        assert isinstance(piece, str)
        break
    for _ in range(100):
        if not gen.active:
            break
        time.sleep(0.02)
    assert gen.stopped == 1


def test_async_chat_session_keeps_the_conversation(hash_index):
    bot = _bot(hash_index, FakeGenerator(), mode="extractive")

    async def main():
        chat = bot.chat()
        first = await chat.aask("How do I reset the router?")
        follow = await chat.aask("and how long do I hold it?")
        pieces = [p async for p in chat.astream("What does solid red mean?")]
        return chat, first, follow, pieces

    chat, first, follow, pieces = asyncio.run(main())
    assert "12 seconds" in follow.answer and len(chat.history) == 6
    assert isinstance(pieces[-1], rag.Answer) and "hardware fault" in pieces[-1].answer


def test_langchain_retriever_in_an_lcel_chain(hash_index):
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    retriever = rag.LangChainRetriever(retriever=Retriever(hash_index, embedder=HashEmbedder(64)), k=2)
    docs = retriever.invoke("How long do I hold the RESET button?")
    assert len(docs) == 2
    top = docs[0]
    assert "12 seconds" in top.page_content and top.metadata["source"] == "kb/router.md"
    assert top.metadata["chunk_id"].startswith("kb/router.md#") and top.id == top.metadata["chunk_id"]
    assert top.metadata["rank"] == 1 and {"dense", "bm25"} <= set(top.metadata["scores"])
    assert "page" in top.metadata and top.metadata["context"]

    def cite(inputs):
        sources = sorted({d.metadata["source"] for d in inputs["context"]})
        return f"{inputs['question']} -> {', '.join(sources)}"

    chain = {"context": retriever, "question": RunnablePassthrough()} | RunnableLambda(cite)
    assert chain.invoke("How much does express shipping cost?").startswith("How much does express shipping cost? ->")
    assert "kb/shipping.txt" in chain.invoke("How much does express shipping cost?")
    docs = asyncio.run(retriever.ainvoke("退货需要几天？"))
    assert docs[0].metadata["source"] == "kb/退货.md"
    with pytest.raises(ConfigError, match="retrieval `mode`"):
        rag.LangChainRetriever(retriever=retriever.retriever, mode="sparse").invoke("reset")
