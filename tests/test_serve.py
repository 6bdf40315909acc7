"""The HTTP API, tested against a real uvicorn server with the official `openai` client and plain HTTP.

The server runs in a background thread over the tiny hash-embedded index; generators are fakes whose speed
and output the tests control (a `slow` integration test at the end runs `rag serve` with the real models).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time

import httpx
import pytest
from conftest import ROOT, FakeGenerator

from rag.errors import Cancelled

openai = pytest.importorskip("openai")

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


class SlowGenerator(FakeGenerator):
    """Answers word by word with a pause, records how many generations overlapped and whether one was
    stopped by its client going away."""

    def __init__(self, words: int = 6, pause: float = 0.0):
        super().__init__(reply=None)
        self.words, self.pause = words, pause
        self.active = self.most_active = 0
        self.emitted = 0
        self.cancelled = 0
        self._count = threading.Lock()

    def generate(self, prompt, max_new_tokens=None, on_text=None, cancel=None):
        from rag.generate import Generation

        with self._count:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            self.calls += 1
            self.prompts.append(prompt)
            # echo the question, so that answers can be matched to their requests
            user = prompt.rsplit("<user>", 1)[-1].rsplit("\n<assistant>", 1)[0]
            question = user.strip().split("\n")[-1].removeprefix("Question: ")
            words = [f"w{i}" for i in range(self.words)] + [f"[1] {question}"]
            for word in words:
                time.sleep(self.pause)
                if cancel is not None and cancel.is_set():
                    self.cancelled += 1
                    raise Cancelled("cancelled")
                if on_text:
                    try:
                        on_text(word + " ")
                    except Exception:
                        self.cancelled += 1
                        raise
                self.emitted += 1
            text = " ".join(words)
            return Generation(text=text, new_tokens=len(words), prompt_tokens=len(prompt.split()), seconds=0.01)
        finally:
            with self._count:
                self.active -= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(hash_index, tmp_path):
    """A running server: (base url, service, generators by adapter)."""
    import uvicorn

    from rag.config import Config
    from rag.embeddings import HashEmbedder
    from rag.serve import ServeConfig, Service, create_app

    adapters = tmp_path / "adapters"
    (adapters / "support-v1").mkdir(parents=True)
    (adapters / "support-v1" / "adapter_config.json").write_text("{}")
    (adapters / "not-an-adapter").mkdir()
    config = Config().override(answer={"mode": "generative", "min_evidence": 0.0, "scorer": "none"})
    generators: dict = {}
    serve = ServeConfig(
        index=str(hash_index),
        indexes_dir=str(tmp_path),
        adapters_dir=str(adapters),
        api_keys=[KEY, "second-key-abcdefghijkl"],
        port=_free_port(),
        max_body_bytes=20_000,
        max_messages=8,
        max_message_chars=500,
        max_queue=8,
        feedback_log=str(tmp_path / "logs" / "feedback.jsonl"),
    )
    service = Service(
        serve, config, embedder=HashEmbedder(64), generator_factory=lambda a: generators.setdefault(a, SlowGenerator())
    )
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=serve.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{serve.port}", service, generators
    server.should_exit = True
    thread.join(10)


def client(url: str, key: str = KEY):
    return openai.OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0, timeout=30)


# ------------------------------------------------------------------------------------------ the protocol


def test_chat_completion_with_the_openai_client(server):
    url, service, generators = server
    reply = client(url).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "How long do I hold the RESET button?"}]
    )
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.endswith("[1] How long do I hold the RESET button?")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 7
    rag = reply.model_extra["rag"]
    assert rag["refused"] is False and rag["citations"] == [1] and rag["answer_id"] == reply.id
    assert rag["sources"][0]["source"].endswith("router.md")
    # the fake generator's words w0..w6 look like codes (a model number) its cited passage lacks
    assert rag["warnings"] == ["facts not in the cited passages: w0, w1, w2, w3, w4"]
    assert list(generators) == [None]  # the base model


def test_streamed_chat_ends_with_done(server):
    url, _, _ = server
    stream = client(url).chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "How long do I hold the RESET button?"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("w0 w1") and "[1] How long do I hold the RESET button?" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["rag"]["citations"] == [1]
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        headers=AUTH,
        json={"model": "rag", "stream": True, "messages": [{"role": "user", "content": "reset?"}]},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"


def test_history_and_content_parts_are_understood(server):
    url, _, generators = server
    reply = client(url).chat.completions.create(
        model="rag",
        messages=[
            {"role": "system", "content": "You are a pirate."},  # rag keeps its own grounded system prompt
            {"role": "user", "content": "How do I reset the router?"},
            {"role": "assistant", "content": "Hold RESET."},
            {"role": "user", "content": [{"type": "text", "text": "and how long does that take?"}]},
        ],
    )
    assert reply.choices[0].message.content.endswith("and how long does that take?")
    prompt = generators[None].prompts[-1]
    assert "Hold RESET." in prompt and "pirate" not in prompt


def test_models_and_adapter_selection(server):
    url, _, generators = server
    api = client(url)
    ids = [m.id for m in api.models.list()]
    assert ids == ["rag", "support-v1"]  # a folder without adapter files is not offered
    api.chat.completions.create(model="support-v1", messages=[{"role": "user", "content": "reset?"}])
    assert any(a and a.endswith("support-v1") for a in generators)
    with pytest.raises(openai.NotFoundError, match="model_not_found|does not exist"):
        api.chat.completions.create(model="support-v2", messages=[{"role": "user", "content": "reset?"}])
    assert api.models.retrieve("support-v1").id == "support-v1"


@pytest.mark.parametrize(
    "name", ["../adapters/support-v1", "support-v1/../../x", "..", "/etc/passwd", "a b", ".hidden"]
)
def test_path_like_model_and_index_names_are_rejected(server, name):
    url, _, _ = server
    r = httpx.post(
        f"{url}/v1/chat/completions", headers=AUTH, json={"model": name, "messages": [{"role": "user", "content": "q"}]}
    )
    assert r.status_code == 400 and "no paths" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "reset", "index": name})
    assert r.status_code == 400 and r.json()["error"]["param"] == "index"


def test_search_and_other_indexes(server):
    url, _, _ = server
    r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "RESET button", "k": 2})
    assert r.status_code == 200
    hits = r.json()["data"]
    assert len(hits) == 2 and hits[0]["source"].endswith("router.md") and hits[0]["rank"] == 1
    assert httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "reset", "index": "idx"}).status_code == 200
    r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "reset", "index": "missing"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "index_not_found"
    r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "reset", "k": 1000})
    assert r.status_code == 400 and "at most 20" in r.json()["error"]["message"]


def test_feedback_is_appended_to_the_log(server, tmp_path):
    url, _, _ = server
    reply = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": "reset?"}])
    r = httpx.post(
        f"{url}/v1/feedback", headers=AUTH, json={"answer_id": reply.id, "rating": -1, "comment": "wrong time"}
    )
    assert r.status_code == 200 and r.json()["recorded"] is True
    r = httpx.post(f"{url}/v1/feedback", headers=AUTH, json={"answer_id": "chatcmpl-unknown", "rating": 1})
    assert r.status_code == 200
    lines = [json.loads(x) for x in (tmp_path / "logs" / "feedback.jsonl").read_text().splitlines()]
    assert lines[0]["answer_id"] == reply.id and lines[0]["rating"] == -1 and lines[0]["known"] is True
    assert lines[0]["citations"] == [1] and lines[1]["known"] is False
    assert httpx.post(f"{url}/v1/feedback", headers=AUTH, json={"answer_id": reply.id, "rating": 7}).status_code == 400


# ------------------------------------------------------------------------------------------ bad requests


def test_keys_are_required(server):
    url, _, _ = server
    with pytest.raises(openai.AuthenticationError):
        client(url, key="wrong-key-0123456789abcdef").chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "reset?"}]
        )
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY}"}):
        r = httpx.get(f"{url}/v1/models", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # no key and a bad body: still 401, the body is never read
    assert httpx.post(f"{url}/v1/chat/completions", content=b"{oops").status_code == 401
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer second-key-abcdefghijkl"}).status_code == 200
    assert httpx.get(f"{url}/health").json()["status"] == "ok"  # health needs no key


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"model": "rag"}).encode(), "messages: Field required"),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages.0.role"),
        (json.dumps({"messages": [{"role": "assistant", "content": "x"}]}).encode(), "last message must be the user's"),
        (json.dumps({"messages": [{"role": "user", "content": "x" * 501}]}).encode(), "at most 500"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}] * 9}).encode(), "too many messages"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}).encode(), "max_tokens"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "mode": "creative"}).encode(), "mode"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 3}).encode(), "n: Input should be less"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": 5}).encode(), "temperature"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "top_p": -1}).encode(), "top_p"),
        # half a surrogate pair (a broken emoji) was a 500, or an error event in the middle of a stream
        (b'{"messages": [{"role": "user", "content": "warranty \\ud800?"}], "stream": true}', "not valid text"),
        (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\udcff"}]}]}', "not valid text"),
    ],
)
def test_malformed_requests_get_400(server, body, message):
    url, _, _ = server
    r = httpx.post(f"{url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"}, content=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_oversized_bodies_get_413(server):
    url, _, _ = server
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 30_000}]}).encode()
    r = httpx.post(f"{url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"}, content=big)
    assert r.status_code == 413 and "larger than 20000 bytes" in r.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(30):
            yield b"x" * 1000

    r = httpx.post(
        f"{url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"}, content=chunked()
    )
    assert r.status_code == 413


def test_logs_hold_no_keys_questions_or_prompts(server, caplog):
    url, _, _ = server
    with caplog.at_level("INFO", logger="rag.serve"):
        client(url).chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "my card 4111-1111 reset?"}]
        )
    text = caplog.text
    assert "answer chatcmpl-" in text and "question_chars=" in text
    assert "4111" not in text and KEY not in text and "<system>" not in text


# ------------------------------------------------------------------------------------------ concurrency


def test_concurrent_chats_and_searches(server):
    url, _, generators = server
    results: dict = {}

    def chat(i):
        api = client(url)
        reply = api.chat.completions.create(model="rag", messages=[{"role": "user", "content": f"question {i} reset?"}])
        results[f"chat{i}"] = reply.choices[0].message.content

    def search(i):
        r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": f"reset {i}", "k": 3}, timeout=30)
        results[f"search{i}"] = r.status_code

    generators.setdefault(None, SlowGenerator(words=4, pause=0.02))
    threads = [threading.Thread(target=chat, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=search, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(results[f"search{i}"] == 200 for i in range(30))
    for i in range(8):  # every chat got its own answer, not another's
        assert results[f"chat{i}"].endswith(f"question {i} reset?")
    assert generators[None].most_active == 1  # generations were queued, never overlapped


def test_a_client_that_disconnects_mid_stream_stops_its_generation(server):
    url, _, generators = server
    gen = generators.setdefault(None, SlowGenerator(words=400, pause=0.01))
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        headers=AUTH,
        json={"model": "rag", "stream": True, "messages": [{"role": "user", "content": "reset?"}]},
    ) as response:
        lines = response.iter_lines()
        seen = [next(lines) for _ in range(6)]
        assert any("w1" in line for line in seen)
    deadline = time.time() + 10
    while gen.cancelled == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert gen.cancelled == 1 and gen.emitted < 400  # stopped well before the end
    gen.words, gen.pause = 2, 0.0
    reply = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": "reset?"}])
    assert reply.choices[0].message.content  # the server carries on


def test_a_full_queue_answers_503(server):
    url, service, generators = server
    generators.setdefault(None, SlowGenerator(words=10, pause=0.05))
    service.serve.max_queue = 1
    codes = []

    def chat():
        r = httpx.post(
            f"{url}/v1/chat/completions",
            headers=AUTH,
            json={"model": "rag", "messages": [{"role": "user", "content": "reset?"}]},
            timeout=30,
        )
        codes.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=chat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (200, None) in codes and (503, "2") in codes


def test_a_client_that_disconnects_before_a_whole_answer_stops_its_generation(server, caplog):
    url, _, generators = server
    gen = generators.setdefault(None, SlowGenerator(words=400, pause=0.01))
    caplog.set_level("INFO", logger="rag.serve")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{url}/v1/chat/completions",
            headers=AUTH,
            json={"model": "rag", "messages": [{"role": "user", "content": "reset?"}]},
            timeout=httpx.Timeout(10, read=0.5),  # the client gives up and closes the connection
        )
    deadline = time.time() + 10
    while gen.cancelled == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert gen.cancelled == 1 and gen.emitted < 400  # stopped well before the end
    gen.words, gen.pause = 2, 0.0
    reply = client(url).chat.completions.create(model="rag", messages=[{"role": "user", "content": "reset?"}])
    assert reply.choices[0].message.content  # the slot was freed
    assert "cancelled" in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("rag.serve") and r.levelname == "ERROR"]


# ------------------------------------------------------------------------------------------ indexes and embedders


def test_indexes_built_with_different_embedders_are_served_together(server, kb, tmp_path):
    """Each index is searched with the embedder its manifest names (hash:64 and hash:32 here), from one server;
    indexes built with the same embedder share one loaded model."""
    from rag.embeddings import HashEmbedder
    from rag.ingest import build_index

    url, service, _ = server
    build_index([kb], tmp_path / "small", embedder=HashEmbedder(32), progress=False)
    build_index([kb], tmp_path / "small-too", embedder=HashEmbedder(32), progress=False)
    api = client(url)
    for index in (None, "idx", "small", "small-too"):
        r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "RESET button", "k": 2, "index": index})
        assert r.status_code == 200, r.text
        assert r.json()["data"][0]["source"].endswith("router.md")
        reply = api.chat.completions.create(
            model="rag",
            messages=[{"role": "user", "content": "How long do I hold RESET?"}],
            extra_body={"index": index},
        )
        assert reply.model_extra["rag"]["sources"][0]["source"].endswith("router.md")
    small = service.retriever(tmp_path / "small")
    assert small.embedder.id == "hash:32" and small.embedder is service.retriever(tmp_path / "small-too").embedder
    assert service.retriever(tmp_path / "idx").embedder is service._embedder  # the one the Service was given


def test_each_index_uses_its_own_embedder_unless_one_is_named(hash_index, tmp_path):
    """Without an embedder object, a hash-built index is not searched with the configured default model; an
    embedder the user named is forced, and an index built otherwise is refused, naming both."""
    from rag.config import Config, EmbedConfig
    from rag.errors import EmbedderMismatchError
    from rag.serve import ServeConfig, Service
    from rag.serve.errors import APIError

    serve = ServeConfig(index=str(hash_index), indexes_dir=str(tmp_path), no_auth=True)
    service = Service(serve, Config())
    service.warm_up()
    assert service.retriever(hash_index).embedder.id == "hash:64"
    assert service.retriever(hash_index).search("RESET button", k=1)[0].chunk.source.endswith("router.md")
    forced = Service(serve, Config(), embed_config=EmbedConfig(model="hash:32"))
    with pytest.raises(EmbedderMismatchError, match="'hash:64' but the embedder is 'hash:32'"):
        forced.warm_up()
    with pytest.raises(APIError, match="not available") as caught:
        forced.retriever(hash_index)
    assert caught.value.status == 503
    assert Service(serve, Config(), embed_config=EmbedConfig(model="hash:64")).retriever(hash_index)


def test_rag_serve_starts_on_an_index_built_with_another_embedder(hash_index, tmp_path):
    """`rag serve` over a hash-built index: no --embedder needed; naming another one fails at start-up."""
    port = _free_port()
    proc = _start(["--index", str(hash_index)], tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, 60)
        r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "RESET button", "k": 1})
        assert r.status_code == 200 and r.json()["data"][0]["source"].endswith("router.md")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    from conftest import run_cli

    done = run_cli(
        "serve", "--index", str(hash_index), "--embedder", "hash:32", cwd=tmp_path, env={"RAG_API_KEYS": KEY}
    )
    assert done.returncode == 1 and "'hash:64' but the embedder is 'hash:32'" in done.stderr
    assert "Traceback" not in done.stderr


def test_tuned_folders_are_offered_and_loaded_by_kind(hash_index, tmp_path):
    """A PEFT adapter loads onto the base model; a full model written by `rag tune --method full` loads as the
    model. Both are listed with what `rag adapters` knows of them."""
    from rag.serve import ServeConfig, Service

    adapters = tmp_path / "adapters"
    (adapters / "lora-v1").mkdir(parents=True)
    (adapters / "lora-v1" / "adapter_config.json").write_text('{"base_model_name_or_path": "base-lm"}')
    (adapters / "full-v1").mkdir()
    (adapters / "full-v1" / "rag_tune.json").write_text('{"method": "full", "base_model": "base-lm"}')
    service = Service(ServeConfig(index=str(hash_index), adapters_dir=str(adapters), no_auth=True))
    listed = {m["id"]: m for m in service.models()}
    assert list(listed) == ["rag", "full-v1", "lora-v1"]
    assert listed["full-v1"]["method"] == "full" and listed["lora-v1"]["trained_on"] == "base-lm"
    lora = service.generator(service.adapter_folder("lora-v1"))  # constructing loads nothing
    assert lora.config.adapter.endswith("lora-v1") and lora.config.model == service.config.generate.model
    full = service.generator(service.adapter_folder("full-v1"))
    assert full.config.model.endswith("full-v1") and full.config.adapter is None
    assert service.loaded_models() == ["lora-v1", "full-v1"]


# ------------------------------------------------------------------------------------------ rag errors


class FailingGenerator(SlowGenerator):
    """Says two words, then raises `error`."""

    def __init__(self, error: Exception):
        super().__init__(words=2)
        self.error = error

    def generate(self, prompt, max_new_tokens=None, on_text=None, cancel=None):
        if on_text:
            on_text("w0 ")
            on_text("w1 ")
        raise self.error


def _adapter(url_service_generators, name: str, generator) -> None:
    """Offer `generator` as the model `name`."""
    _, service, generators = url_service_generators
    folder = os.path.join(service.serve.adapters_dir, name)
    os.makedirs(folder)
    with open(os.path.join(folder, "adapter_config.json"), "w") as fh:
        fh.write("{}")
    generators[folder] = generator


def _error(r) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_rag_errors_become_openai_errors(server, tmp_path):
    from rag.errors import ConfigError, MissingDependencyError

    url, _, _ = server
    chat = {"messages": [{"role": "user", "content": "How long do I hold RESET?"}]}
    assert _error(httpx.get(f"{url}/v1/nowhere", headers=AUTH))["code"] == "not_found"
    r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "   "})  # the retriever's own check
    assert r.status_code == 400 and "query is empty" in _error(r)["message"]
    assert _error(r)["type"] == "invalid_request_error"

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{oops")
    for path, body in (
        ("search", {"query": "reset", "index": "broken"}),
        ("chat/completions", {**chat, "index": "broken"}),
    ):
        r = httpx.post(f"{url}/v1/{path}", headers=AUTH, json=body)
        assert r.status_code == 503 and _error(r)["code"] == "index_unavailable"
        assert "rag index --rebuild" in _error(r)["message"] and "Traceback" not in r.text
    shutil.copytree(tmp_path / "idx", tmp_path / "gutted")
    for chunks in (tmp_path / "gutted").glob("gen-*/chunks.jsonl"):
        chunks.unlink()
    r = httpx.post(f"{url}/v1/search", headers=AUTH, json={"query": "reset", "index": "gutted"})
    assert r.status_code == 503 and "rebuild it" in _error(r)["message"]

    _adapter(server, "needs-peft", FailingGenerator(MissingDependencyError("install it with: pip install 'peft'")))
    _adapter(server, "wrong-base", FailingGenerator(ConfigError("adapter was trained for base model 'x'")))
    _adapter(server, "buggy", FailingGenerator(RuntimeError("secret internals")))
    for model, status, message in (
        ("needs-peft", 501, "pip install 'peft'"),
        ("wrong-base", 400, "trained for base model 'x'"),
        ("buggy", 500, "server log has the details"),
    ):
        r = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, json={**chat, "model": model})
        assert r.status_code == status and message in _error(r)["message"], r.text
        assert "secret internals" not in r.text and "Traceback" not in r.text
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", headers=AUTH, json={**chat, "model": model, "stream": True}
        ) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        assert events[1]["choices"][0]["delta"]["content"] == "w0 "  # the answer had begun: an error event
        assert message in events[-1]["error"]["message"] and "secret internals" not in json.dumps(events)
    with pytest.raises(openai.APIError, match="pip install 'peft'"):
        list(client(url).chat.completions.create(model="needs-peft", messages=chat["messages"], stream=True))


# ------------------------------------------------------------------------------------------ configuration


def test_auth_settings_are_checked(tmp_path):
    from rag.errors import ConfigError
    from rag.serve import ServeConfig, read_api_keys

    with pytest.raises(ConfigError, match="only allowed on a loopback address"):
        ServeConfig(host="0.0.0.0", no_auth=True)
    ServeConfig(host="::1", no_auth=True)
    with pytest.raises(ConfigError, match="RAG_API_KEYS"):
        ServeConfig()
    with pytest.raises(ConfigError, match="shorter than 16"):
        ServeConfig(api_keys=["short"])
    (tmp_path / "keys").write_text("# bot keys\nkey-one-0123456789abc\n\n key-two-0123456789abc \n")
    assert read_api_keys("key-zero-0123456789ab, ", tmp_path / "keys") == [
        "key-zero-0123456789ab",
        "key-one-0123456789abc",
        "key-two-0123456789abc",
    ]
    with pytest.raises(ConfigError, match="cannot read the API keys file"):
        read_api_keys(None, tmp_path / "missing")


def test_serve_refuses_no_auth_on_a_public_address(tmp_path):
    from conftest import run_cli

    done = run_cli("serve", "--no-auth", "--host", "0.0.0.0", cwd=tmp_path)
    assert done.returncode == 1 and "only allowed on a loopback address" in done.stderr
    done = run_cli("serve", "--index", "nowhere", cwd=tmp_path, env={"RAG_API_KEYS": KEY})
    assert done.returncode == 1 and "rag index" in done.stderr


@pytest.mark.slow
def test_rag_serve_with_the_real_models(sample_index):
    """`rag serve` as users start it: real embedder and generator, API key from the environment."""
    import subprocess
    import sys

    work, _ = sample_index
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_API_KEYS": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, 120)
        api = client(url)
        reply = api.chat.completions.create(
            model="rag",
            messages=[
                {"role": "user", "content": "How long do I hold the RESET button to factory reset the HomeHub R7?"}
            ],
        )
        assert "12 seconds" in reply.choices[0].message.content
        assert reply.model_extra["rag"]["sources"][0]["source"].endswith("homehub-r7-manual.md")
        refusal = api.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "Who is the CEO of Nimbus?"}]
        )
        assert refusal.model_extra["rag"]["refused"] is True
        stream = api.chat.completions.create(
            model="rag",
            messages=[{"role": "user", "content": "Wie lange gilt die Garantie? How long is the warranty?"}],
            stream=True,
            max_tokens=16,
            extra_body={"mode": "generative"},
        )
        chunks = list(stream)
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert KEY not in output and "How long is the warranty" not in output


def _start(args: list[str], cwd, port: int):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_API_KEYS": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(url: str, seconds: float = 180) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            r = httpx.get(f"{url}/health", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never became healthy")


@pytest.mark.slow
def test_two_workers_share_one_index(sample_index):
    """Scaling out: two `rag serve` processes over the same read-only index answer alike, and one
    `rag serve --workers 2` starts two worker processes on one port."""
    work, _ = sample_index
    ports = [_free_port(), _free_port()]
    procs = [_start([], work, ports[0]), _start(["--indexes-dir", "indexes"], work, ports[1])]
    try:
        question = [{"role": "user", "content": "How long do I hold the RESET button to factory reset the HomeHub R7?"}]
        answers, pids = [], set()
        for port in ports:
            url = f"http://127.0.0.1:{port}"
            pids.add(_wait_healthy(url)["pid"])
            reply = client(url).chat.completions.create(model="rag", messages=question)
            answers.append((reply.choices[0].message.content, reply.model_extra["rag"]["sources"][0]["chunk_id"]))
        assert len(pids) == 2 and answers[0] == answers[1] and "12 seconds" in answers[0][0]
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    port = _free_port()
    proc = _start(["--workers", "2"], work, port)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        seen = set()
        deadline = time.time() + 120
        while len(seen) < 2 and time.time() < deadline:  # the kernel spreads new connections over the workers
            with httpx.Client() as c:
                r = c.post(f"{url}/v1/search", headers=AUTH, json={"query": "reset router", "k": 1})
                assert r.status_code == 200
                seen.add(c.get(f"{url}/health").json()["pid"])
        assert len(seen) == 2
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert KEY not in output
