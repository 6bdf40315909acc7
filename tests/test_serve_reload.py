"""`rag serve` picks up a rebuilt index without a restart: a newly committed generation is opened by the
request that notices it, requests already running finish on the old one (whose files the indexer deletes),
and a new generation that cannot be opened leaves the old one answering."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from conftest import FakeGenerator

pytest.importorskip("fastapi")

WARRANTY = "# Warranty\n\nThe warranty of the HomeHub lasts {months} months from the date of purchase.\n"
QUESTION = "How long is the warranty of the HomeHub?"


@pytest.fixture
def warranty_kb(tmp_path):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "warranty.md").write_text(WARRANTY.format(months=24), encoding="utf-8")
    (root / "shipping.txt").write_text("Express shipping costs 14.90 euros and takes 1 business day.\n")
    return root


def _build(kb: Path, index: Path, months: int | None = None, rebuild: bool = False) -> str:
    """(Re)index `kb` into `index`, the warranty first set to `months`; the committed generation."""
    from rag import store
    from rag.embeddings import HashEmbedder
    from rag.ingest import build_index

    if months is not None:
        (kb / "warranty.md").write_text(WARRANTY.format(months=months), encoding="utf-8")
    build_index([kb], index, embedder=HashEmbedder(64), rebuild=rebuild, progress=False)
    return store.read_manifest(index).generation


def _service(index: Path, reload_check_s: float = 0.0):
    from rag.config import Config
    from rag.embeddings import HashEmbedder
    from rag.serve import ServeConfig, Service

    made: list = []

    def factory(adapter):
        made.append(adapter)
        return FakeGenerator()

    serve = ServeConfig(index=str(index), indexes_dir=str(index.parent), no_auth=True, reload_check_s=reload_check_s)
    config = Config().override(answer={"mode": "extractive", "min_evidence": 0.0, "scorer": "none"})
    return Service(serve, config, embedder=HashEmbedder(64), generator_factory=factory), made


def _ask(http, index: str | None = None) -> str:
    body = {"messages": [{"role": "user", "content": QUESTION}]}
    if index is not None:
        body["index"] = index
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def test_a_rebuilt_index_is_answered_from_without_a_restart(warranty_kb, tmp_path):
    from fastapi.testclient import TestClient

    from rag.serve import create_app

    index = tmp_path / "idx"
    first = _build(warranty_kb, index)
    service, made = _service(index)
    service.warm_up()
    with TestClient(create_app(service)) as http:
        assert "24 months" in _ask(http) and "24 months" in _ask(http, "idx")
        health = http.get("/health").json()
        assert health["generation"] == first
        assert [(i["index"], i["generation"]) for i in health["indexes"]] == [("default", first)]
        old = service.rag(None, None)  # a request that started before the rebuild holds this pipeline
        embedder = service.retriever(index).embedder

        second = _build(warranty_kb, index, months=36)
        assert second != first and not (index / first).exists()  # the indexer deleted the old generation
        assert "36 months" in _ask(http) and "36 months" in _ask(http, "idx")
        health = http.get("/health").json()
        assert health["generation"] == second and health["indexes"][0]["generation"] == second
        assert "reload_error" not in health["indexes"][0]

        # the request that started on the old generation finishes on it, though its files are gone
        assert "24 months" in old.ask(QUESTION).answer
        fresh = service.rag(None, None)
        assert fresh is not old and fresh.retriever.manifest.generation == second
        # what does not depend on the generation stays loaded: embedder, generator, reader's models
        assert fresh.retriever.embedder is embedder and fresh.generator is old.generator and made == [None]
        assert fresh.reader.model is old.reader.model and fresh.reader.idf is not old.reader.idf
        assert all(rag.retriever is fresh.retriever for rag in service._rags.values())  # the old one is let go

        r = http.post("/v1/search", json={"query": "warranty months", "k": 1})
        assert r.status_code == 200 and "36 months" in r.json()["data"][0]["text"]


def test_indexes_are_checked_at_most_every_reload_check_s(warranty_kb, tmp_path):
    from fastapi.testclient import TestClient

    from rag.serve import create_app

    index = tmp_path / "idx"
    _build(warranty_kb, index)
    service, _ = _service(index, reload_check_s=3600)
    with TestClient(create_app(service)) as http:
        assert "24 months" in _ask(http)
        _build(warranty_kb, index, months=36)
        assert "24 months" in _ask(http)  # not checked again yet
        service.serve.reload_check_s = 0
        assert "36 months" in _ask(http)


def test_an_unreadable_new_generation_leaves_the_old_one_answering(warranty_kb, tmp_path, caplog):
    from fastapi.testclient import TestClient

    from rag import store
    from rag.serve import create_app

    index = tmp_path / "idx"
    first = _build(warranty_kb, index)
    service, _ = _service(index)
    with TestClient(create_app(service)) as http:
        assert "24 months" in _ask(http)
        second = _build(warranty_kb, index, months=36)
        (index / second / store.DENSE).write_bytes(b"not a faiss index")  # a disk error, a bad copy
        with caplog.at_level(logging.ERROR, logger="rag.serve"):
            for _ in range(3):
                assert "24 months" in _ask(http)
            health = http.get("/health").json()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "dense.faiss" in errors[0].getMessage()  # logged once, not per request
        assert health["status"] == "ok" and health["generation"] == first
        assert "dense.faiss" in health["indexes"][0]["reload_error"]
        r = http.post("/v1/search", json={"query": "warranty months", "k": 1})
        assert r.status_code == 200 and "24 months" in r.json()["data"][0]["text"]

        third = _build(warranty_kb, index, months=48, rebuild=True)  # the next commit is tried again
        assert "48 months" in _ask(http)
        health = http.get("/health").json()
        assert health["generation"] == third and "reload_error" not in health["indexes"][0]


def test_other_requests_keep_the_old_generation_while_one_opens_the_new(warranty_kb, tmp_path):
    from fastapi.testclient import TestClient

    from rag.serve import create_app

    index = tmp_path / "idx"
    _build(warranty_kb, index)
    service, _ = _service(index)
    service.warm_up()
    opening, release = threading.Event(), threading.Event()
    real_open = service._open

    def slow_open(folder):
        opening.set()
        assert release.wait(30)
        return real_open(folder)

    service._open = slow_open
    with TestClient(create_app(service)) as http:
        _build(warranty_kb, index, months=36)
        answers: list[str] = []
        loader = threading.Thread(target=lambda: answers.append(_ask(http)))
        loader.start()
        try:
            assert opening.wait(30)  # the first request after the commit is opening the new generation
            assert "24 months" in _ask(http)  # meanwhile another one is answered at once, from the old one
            assert http.get("/health").json()["generation"] == "gen-000001"
        finally:
            release.set()
            loader.join(30)
        assert answers and "36 months" in answers[0]
        assert "36 months" in _ask(http)


def test_each_worker_process_picks_up_a_rebuilt_index(warranty_kb, tmp_path, monkeypatch):
    """`--workers N`: each worker builds its app from the environment and opens the index memory-mapped; it
    notices a new generation by itself (here one worker's app, in process)."""
    import dataclasses
    import json

    from fastapi.testclient import TestClient

    from rag.config import Config
    from rag.serve import ServeConfig
    from rag.serve.workers import KEYS_ENV, SETTINGS_ENV, app_from_env

    index = tmp_path / "idx"
    first = _build(warranty_kb, index)
    serve = ServeConfig(index=str(index), indexes_dir=str(tmp_path), no_auth=True, reload_check_s=0)
    config = Config().override(answer={"mode": "extractive", "min_evidence": 0.0, "scorer": "none"})
    settings = {"serve": dataclasses.asdict(serve), "config": config.to_dict(), "embed": None}
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings))
    monkeypatch.setenv(KEYS_ENV, "")
    serve_log = logging.getLogger("rag.serve")  # a worker sets up its own logging: undone for the other tests
    saved = (list(serve_log.handlers), serve_log.propagate, serve_log.level)
    try:
        with TestClient(app_from_env()) as http:
            assert "24 months" in _ask(http) and http.get("/health").json()["generation"] == first
            second = _build(warranty_kb, index, months=36)
            assert "36 months" in _ask(http) and http.get("/health").json()["generation"] == second
    finally:
        serve_log.handlers[:], serve_log.propagate = saved[0], saved[1]
        serve_log.setLevel(saved[2])
