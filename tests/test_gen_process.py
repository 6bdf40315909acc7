"""Generation in a niced child process (`rag serve`'s default for in-process models): the same answers and prompt
as in process, streamed, cancellable, and at a lower CPU priority than the server."""

from __future__ import annotations

import os
import threading

import pytest
from conftest import tiny_llama

from rag.config import GenerateConfig
from rag.errors import Cancelled
from rag.generate import Generator, chat
from rag.serve.generation import ProcessGenerator

MESSAGES = [
    {"role": "system", "content": "hold the reset button"},
    {"role": "user", "content": "hold it for 12 seconds"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def child(tiny):
    gen = ProcessGenerator(GenerateConfig(model=str(tiny), max_new_tokens=12))
    yield gen
    gen.close()


def test_the_child_answers_exactly_as_in_process(tiny, child):
    local = Generator(GenerateConfig(model=str(tiny), max_new_tokens=12))
    expected = chat(local, MESSAGES)
    pieces: list[str] = []
    got = chat(child, MESSAGES, on_text=pieces.append)
    assert got.text == expected.text and got.prompt == expected.prompt and got.new_tokens == expected.new_tokens
    assert "".join(pieces).strip() == got.text
    assert child.count_tokens("hold the reset button") == local.count_tokens("hold the reset button")
    assert child.context_window == local.context_window == 512


def test_the_child_runs_at_a_lower_priority(child):
    child.count_tokens("x")  # started
    assert os.getpriority(os.PRIO_PROCESS, child._process.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)


def test_cancel_stops_the_childs_generation_and_it_keeps_serving(tiny):
    # sampled, so that the tiny model does not loop (a loop would end the generation before the cancel arrives);
    # a sampled end-of-text token can still end it first, so three tries: a cancel that does not work fails all
    gen = ProcessGenerator(GenerateConfig(model=str(tiny), temperature=1.0, max_new_tokens=480))
    try:
        outcomes = []
        for _ in range(3):
            cancel = threading.Event()
            pieces: list[str] = []

            def on_text(piece, pieces=pieces, cancel=cancel):
                pieces.append(piece)
                cancel.set()

            try:
                gen.chat(MESSAGES, on_text=on_text, cancel=cancel)
                outcomes.append("finished")
            except Cancelled:
                outcomes.append("cancelled")
                assert len(pieces) < 100  # stopped long before its 480 tokens
                break
        assert outcomes[-1] == "cancelled", outcomes
        assert gen.chat(MESSAGES, max_new_tokens=4).new_tokens <= 4  # and it keeps serving
        with pytest.raises(Cancelled):
            gen.chat(MESSAGES, cancel=cancel)  # already cancelled: nothing is started
    finally:
        gen.close()


def test_a_reader_that_fails_stops_the_generation_and_gets_its_error(child):
    def broken(_):
        raise BrokenPipeError("client gone")

    with pytest.raises(BrokenPipeError):
        child.chat(MESSAGES, on_text=broken)
    assert child.chat(MESSAGES).text is not None


def test_a_load_error_reaches_the_caller(tmp_path):
    gen = ProcessGenerator(GenerateConfig(model=str(tmp_path / "missing")))
    try:
        with pytest.raises(Exception, match="cannot load generator"):
            gen.count_tokens("x")
    finally:
        gen.close()
