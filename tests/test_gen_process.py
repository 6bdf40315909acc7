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


def test_cancel_stops_the_childs_generation_and_it_keeps_serving(child):
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        child.chat(MESSAGES, max_new_tokens=400, on_text=lambda _: cancel.set(), cancel=cancel)
    assert child.chat(MESSAGES).new_tokens <= 12


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
