"""Feedback as training data: `rag serve` logs what a rating needs, and the scorer learns from the log."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from rag.readerdata import feedback_pairs
from rag.types import Chunk


def _chunk(n, text, context="Router > Reset"):
    return Chunk(id=f"kb/router.md#{n}", source="kb/router.md", ordinal=n, text=text, context=context)


CHUNKS = {
    c.id: c
    for c in [
        _chunk(0, "Hold the RESET button for 12 seconds. The LED blinks amber."),
        _chunk(1, "Solid red means a hardware fault. Call support on 0800 123.", "Router > Lights"),
    ]
}


def test_ratings_and_corrections_become_labelled_pairs():
    records = [
        {"answer_id": "a", "rating": 1, "question": "How long do I hold RESET?", "answer": "Hold the RESET button for 12 seconds. [1]", "chunk_ids": ["kb/router.md#0"]},
        {"answer_id": "b", "rating": -1, "question": "What does red mean?", "answer": "The LED blinks amber. [1]", "correction": "hardware fault", "chunk_ids": ["kb/router.md#0", "kb/router.md#1"]},
        {"answer_id": "c", "rating": 0, "question": "x", "answer": "y", "chunk_ids": ["kb/router.md#0"]},
        {"answer_id": "d", "rating": -1, "question": "gone", "answer": "y", "chunk_ids": ["kb/old.md#3"]},
        {"answer_id": "e", "rating": 1, "answer": "no question logged", "chunk_ids": ["kb/router.md#0"]},
    ]  # fmt: skip
    pairs, unused = feedback_pairs(records, CHUNKS)
    assert unused == 3  # neutral, chunks no longer indexed, no question
    got = {(p["question"], p["text"], p["label"]) for p in pairs}
    assert ("How long do I hold RESET?", "Router > Reset\nHold the RESET button for 12 seconds.", 1.0) in got
    assert ("How long do I hold RESET?", "Router > Reset\nThe LED blinks amber.", 0.0) in got
    assert ("What does red mean?", "Router > Reset\nThe LED blinks amber.", 0.0) in got  # the wrong answer
    assert ("What does red mean?", "Router > Lights\nSolid red means a hardware fault.", 1.0) in got  # corrected
    assert not any(q == "What does red mean?" and "Call support" in t for q, t, _ in got)  # unrated sentences: no label


def test_serve_logs_what_a_rating_needs_to_train_on(hash_index, tmp_path):
    from fastapi.testclient import TestClient

    from rag.config import Config
    from rag.embeddings import HashEmbedder
    from rag.serve import ServeConfig, Service, create_app

    log = tmp_path / "feedback.jsonl"
    serve = ServeConfig(index=str(hash_index), no_auth=True, feedback_log=str(log))
    service = Service(serve, Config().override(answer={"scorer": "none"}), embedder=HashEmbedder(64))
    with TestClient(create_app(service)) as http:
        reply = http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "How long do I hold the RESET button?"}]},
        )
        answer_id = reply.json()["rag"]["answer_id"]
        ok = http.post("/v1/feedback", json={"answer_id": answer_id, "rating": -1, "correction": "12 seconds"})
        assert ok.status_code == 200
        assert http.post("/v1/feedback", json={"answer_id": answer_id, "rating": 1, "bogus": 1}).status_code == 400
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["question"] == "How long do I hold the RESET button?" and record["correction"] == "12 seconds"
    assert record["answer"] == reply.json()["choices"][0]["message"]["content"] and record["chunk_ids"]


@pytest.mark.slow
def test_rag_tune_trains_the_scorer_on_a_feedback_log(tmp_path, kb):
    assert run_cli("index", "kb", "--index", "idx", "--embedder", "hash", cwd=tmp_path).returncode == 0
    from rag.retrieve import Retriever

    chunk = next(c for c in Retriever(tmp_path / "indexes" / "idx").chunks if c.source == "kb/router.md")
    record = {"answer_id": "a", "rating": 1, "question": "How long do I hold RESET?", "answer": chunk.text.split(".")[0], "chunk_ids": [chunk.id]}  # fmt: skip
    (tmp_path / "feedback.jsonl").write_text("\n".join(json.dumps(record) for _ in range(4)), encoding="utf-8")
    res = run_cli(
        "tune", "feedback.jsonl", "--task", "scorer", "--out", "sc", "--max-steps", "2", "--json", cwd=tmp_path
    )
    assert res.returncode == 1 and "--index" in res.stderr
    res = run_cli("tune", "feedback.jsonl", "--task", "scorer", "--index", "idx", "--out", "sc", "--max-steps", "2", "--batch-size", "4", "--json", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["steps"] == 2 and (tmp_path / "sc" / "adapter_config.json").is_file()
    meta = json.loads((tmp_path / "sc" / "rag_tune.json").read_text())
    assert meta["task"] == "scorer" and meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    from rag.scorer import Scorer

    logits = Scorer(tmp_path / "sc").logits("How long do I hold RESET?", ["Hold RESET for 12 seconds.", "Red is bad."])
    assert logits.shape == (2,)


def _qa_records(tmp_path) -> None:
    rows = [
        {"question": "How long do I hold RESET?", "answer": "12 seconds"},
        {"question": "What does solid red mean?", "answers": ["hardware fault"], "split": "train"},
        {"question": "How much is express shipping?", "answer": "14.90 euros", "split": "test"},
        {"question": "Do you sell printers?", "answerable": False},
    ]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")


def test_rag_tune_scorer_says_what_question_answer_records_need_and_refuses_other_data(tmp_path, kb):
    # question/answer records crashed scorer training deep in torch (the README's "Q/A pairs")
    _qa_records(tmp_path)
    res = run_cli("tune", "qa.jsonl", "--task", "scorer", "--out", "sc", cwd=tmp_path)
    assert res.returncode == 1 and "--index" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "Some document."}), encoding="utf-8")
    res = run_cli("tune", "docs.jsonl", "--task", "scorer", "--out", "sc", cwd=tmp_path)
    assert res.returncode == 1 and "text records cannot train the scorer" in res.stderr
    assert not (tmp_path / "sc").exists()


@pytest.mark.slow
def test_rag_tune_trains_the_scorer_on_question_answer_records_over_the_index(tmp_path, kb):
    assert run_cli("index", "kb", "--index", "idx", "--embedder", "hash", cwd=tmp_path).returncode == 0
    _qa_records(tmp_path)
    res = run_cli("tune", "qa.jsonl", "--task", "scorer", "--index", "idx", "--out", "sc", "--max-steps", "2", "--json", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "left out 1 record of the test split" in res.stderr  # a question it is judged on is never learned
    assert "pairs from 3 of 3 questions" in res.stderr
    meta = json.loads((tmp_path / "sc" / "rag_tune.json").read_text())
    assert meta["data"]["path"] == "qa.jsonl" and meta["data"]["format"] == "qa"
