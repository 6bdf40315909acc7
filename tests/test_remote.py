"""The HTTP backend against a server the test controls (`openai_stub.Stub`): streaming, the key from the
environment, retries with Retry-After, errors in one line, broken streams, cancellation closing the upstream."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import run_cli
from openai_stub import Stub

from rag.config import Config, GenerateConfig
from rag.errors import Cancelled, ConfigError
from rag.generate import backend_of, load_generator
from rag.remote import RemoteError, RemoteGenerator

KEY = "sk-test-0123456789abcdef-secret"
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "How long?"}]


def remote(url: str, **settings) -> RemoteGenerator:
    return RemoteGenerator(GenerateConfig(base_url=url, model="stub-model", **settings))


def test_backend_is_inferred_from_the_settings():
    assert backend_of(GenerateConfig(base_url="http://127.0.0.1:1/v1", model="m")) == "openai"
    assert backend_of(GenerateConfig(model="x/model.Q4_K_M.gguf")) == "llamacpp"
    assert backend_of(GenerateConfig()) == "transformers"
    assert isinstance(load_generator(GenerateConfig(base_url="http://127.0.0.1:1/v1", model="m")), RemoteGenerator)
    with pytest.raises(ConfigError, match="needs `base_url`"):
        GenerateConfig(backend="openai")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        GenerateConfig(base_url="http://127.0.0.1:1/v1", api_key_env=KEY + " x")


def test_streams_the_answer_with_the_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("STUB_KEY", KEY)
    with Stub([("answer", "Hold it for 12 seconds [1].")]) as stub:
        gen = remote(stub.url, api_key_env="STUB_KEY", max_new_tokens=20)
        pieces: list[str] = []
        result = gen.chat(MESSAGES, on_text=pieces.append)
        assert gen.context_window == 2048  # from GET /v1/models (vLLM's max_model_len)
    assert result.text == "Hold it for 12 seconds [1]." == "".join(pieces)
    assert result.new_tokens == 6 and result.prompt_tokens == 42 and result.first_token_s is not None
    request = stub.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "stub-model" and body["messages"] == MESSAGES and body["stream"] is True
    assert body["max_tokens"] == 20 and "stop" not in body
    assert KEY not in repr(gen) and KEY not in result.prompt


def test_an_adapter_is_asked_for_by_name():
    with Stub([("answer", "ok [1]")]) as stub:
        remote(stub.url, adapter="adapters/support").chat(MESSAGES)
        remote(stub.url, adapter="support").chat(MESSAGES)
    assert [r["body"]["model"] for r in stub.requests] == ["support", "support"]


def test_429_is_retried_after_the_servers_retry_after():
    with Stub([("error", 429, {"Retry-After": "1"}, "rate limited"), ("answer", "Done [1].")]) as stub:
        result = remote(stub.url).chat(MESSAGES)
    assert result.text == "Done [1]."
    assert len(stub.requests) == 2 and stub.times[1] - stub.times[0] >= 0.95


def test_5xx_is_retried_a_bounded_number_of_times_then_reported_in_one_line():
    with Stub([("error", 500, {}, "model crashed: CUDA out of memory")]) as stub:
        started = time.perf_counter()
        with pytest.raises(RemoteError) as caught:
            remote(stub.url, retries=2).chat(MESSAGES)
    message = str(caught.value)
    assert len(stub.requests) == 3 and time.perf_counter() - started >= 1.4  # 0.5 s, then 1 s of backoff
    assert f"{stub.url}/chat/completions answered 500" in message and "CUDA out of memory" in message
    assert "\n" not in message


def test_401_is_not_retried_and_names_the_variable_never_the_key(monkeypatch):
    monkeypatch.setenv("STUB_KEY", KEY)
    with Stub([("error", 401, {}, "invalid api key")]) as stub:
        with pytest.raises(RemoteError) as caught:
            remote(stub.url, api_key_env="STUB_KEY").chat(MESSAGES)
    assert len(stub.requests) == 1
    assert "401" in str(caught.value) and "invalid api key" in str(caught.value) and "$STUB_KEY" in str(caught.value)
    assert KEY not in str(caught.value)


def test_a_missing_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("STUB_KEY_UNSET", raising=False)
    with Stub([("answer", "x")]) as stub, pytest.raises(ConfigError, match="STUB_KEY_UNSET, which is not set"):
        remote(stub.url, api_key_env="STUB_KEY_UNSET").chat(MESSAGES)
    assert stub.requests == []


def test_a_stream_cut_mid_way_is_an_error_not_a_short_answer():
    with Stub([("cut", "Hold it for")]) as stub:
        shown: list[str] = []
        with pytest.raises(RemoteError, match="broke off the answer"):
            remote(stub.url).chat(MESSAGES, on_text=shown.append)
    assert "".join(shown) == "Hold it for" and len(stub.requests) == 1  # text was shown: not started over


def test_a_dropped_connection_before_any_text_is_retried():
    with Stub([("close",), ("answer", "Second try [1].")]) as stub:
        assert remote(stub.url).chat(MESSAGES).text == "Second try [1]."
    assert len(stub.requests) == 2


def test_connection_refused_is_one_line_naming_the_url():
    with Stub([("answer", "x")]) as stub:
        url = stub.url
    with pytest.raises(RemoteError) as caught:
        remote(url, retries=1).chat(MESSAGES)
    assert f"cannot connect to the generation server {url}/chat/completions" in str(caught.value)


def test_a_server_that_wants_max_completion_tokens_gets_it():
    message = "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."
    with Stub([("error", 400, {}, message), ("answer", "ok [1]")]) as stub:
        assert remote(stub.url).chat(MESSAGES).text == "ok [1]"
    assert "max_tokens" in stub.requests[0]["body"] and stub.requests[1]["body"]["max_completion_tokens"] == 96


def test_cancel_closes_the_upstream_stream_even_while_the_server_is_silent():
    with Stub([("silent", 10)]) as stub:
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        started = time.perf_counter()
        with pytest.raises(Cancelled):
            remote(stub.url).chat(MESSAGES, cancel=cancel)
        assert time.perf_counter() - started < 2
        assert stub.disconnected.wait(3)  # the server saw its client go: it can stop generating


def test_cancel_mid_stream_stops_reading_and_closes_it():
    with Stub([("answer", " ".join(f"w{i}" for i in range(200)), 0.02)]) as stub:
        cancel = threading.Event()
        shown: list[str] = []

        def on_text(piece):
            shown.append(piece)
            if len(shown) == 5:
                cancel.set()

        with pytest.raises(Cancelled):
            remote(stub.url).chat(MESSAGES, on_text=on_text, cancel=cancel)
        assert len(shown) == 5 and stub.disconnected.wait(3)


def test_rag_ask_over_http_end_to_end(hash_index, tmp_path):
    """`rag ask --base-url URL --model NAME`: the answer, its citation and the messages sent."""
    with Stub([("answer", "Hold the RESET button for 12 seconds [1].")]) as stub:
        out = run_cli(
            "ask",
            "How long do I hold the RESET button?",
            "--index",
            str(hash_index),
            "--base-url",
            stub.url,
            "--model",
            "stub-model",
            "--json",
            cwd=hash_index.parent,
        )
    assert out.returncode == 0, out.stderr
    import json

    answer = json.loads(out.stdout)
    assert answer["answer"] == "Hold the RESET button for 12 seconds [1]." and answer["citations"] == [1]
    assert answer["mode"] == "generative" and answer["model"] == "stub-model"
    sent = stub.requests[0]["body"]["messages"]
    assert sent[0]["role"] == "system" and "RESET" in sent[-1]["content"]


def test_rag_ask_reports_a_dead_server_in_one_line(hash_index):
    with Stub([("answer", "x")]) as stub:
        url = stub.url
    out = run_cli(
        "ask",
        "How long do I hold the RESET button?",
        "--index",
        str(hash_index),
        "--base-url",
        url,
        "--model",
        "m",
        cwd=hash_index.parent,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("rag: error: cannot connect to the generation server")
        and url in lines[0]
    )


def test_config_file_selects_the_backend_and_the_key_variable(tmp_path, monkeypatch):
    (tmp_path / "rag.toml").write_text(
        '[generate]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "qwen"\napi_key_env = "MY_KEY"\n', encoding="utf-8"
    )
    config = Config.load(tmp_path / "rag.toml")
    assert backend_of(config.generate) == "openai" and config.generate.api_key_env == "MY_KEY"


def test_rag_help_loads_no_http_client_or_model_library():
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import sys; from rag.cli import main\n"
        "try:\n    main(['ask', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'openai', 'httpx', 'llama_cpp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_failing_upstream_is_a_502_in_openai_shape():
    from rag.serve.errors import from_rag_error

    error = from_rag_error(RemoteError("http://127.0.0.1:9/v1/chat/completions answered 500: boom"))
    assert error.status == 502 and error.code == "upstream_error" and "boom" in error.message
