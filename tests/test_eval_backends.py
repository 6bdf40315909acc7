"""`rag eval` systems on their own backends: a served model with the server's adapters (by name, nothing
trained), per-system generator settings, and the report naming each system's backend, model and adapter."""

from __future__ import annotations

import json

import pytest
from openai_stub import Stub
from test_eval import QUESTIONS, _questions

from rag.errors import ConfigError


def _suite(tmp_path, kb, extra: str):
    from rag.eval.suite import load_suite

    _questions(tmp_path / "q.jsonl", QUESTIONS)
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: served\ncorpus: kb\nquestions: q.jsonl\nsystems: [rag, raft+rag]\n"
        "config:\n  embed: {model: 'hash:64'}\n  answer: {scorer: none, min_evidence: 0.0}\n" + extra,
        encoding="utf-8",
    )
    return load_suite(path)


def test_systems_answer_on_a_served_model_with_its_adapters_by_name(tmp_path, kb, hash_embedder):
    from rag.eval.harness import run_eval

    with Stub([("answer", "Hold the RESET button for 12 seconds [1].")]) as stub:
        suite = _suite(
            tmp_path,
            kb,
            f"  generate: {{base_url: '{stub.url}', model: served-base}}\nadapters: {{raft: support-raft}}\n",
        )
        run = run_eval(suite, work=tmp_path / "work", embedder=hash_embedder, progress=False, log=lambda m: None)
    models = [r["body"]["model"] for r in stub.requests]
    assert set(models) == {"served-base", "support-raft"}  # the adapter is asked for by name; nothing trained
    assert run.training["raft"]["source"] == "served"
    assert run.generators["raft+rag"] == {
        "backend": "openai",
        "model": "served-base",
        "adapter": "support-raft",
        "server": stub.url,
    }
    row = run.rows["raft+rag"][0]
    assert row["generator"]["adapter"] == "support-raft" and json.loads(row["prompt"])[0]["role"] == "system"


def test_a_served_system_without_a_named_adapter_is_an_error(tmp_path, kb, hash_embedder):
    from rag.eval.harness import run_eval

    suite = _suite(tmp_path, kb, "  generate: {base_url: 'http://127.0.0.1:9/v1', model: m}\n")
    with pytest.raises(
        ConfigError, match=r"adapters are the server's: name it in the suite \(adapters: \{raft: NAME\}"
    ):
        run_eval(suite, work=tmp_path / "work", embedder=hash_embedder, progress=False, log=lambda m: None)


def test_each_system_can_name_its_own_backend_model_and_adapter(tmp_path, kb):
    suite = _suite(
        tmp_path,
        kb,
        "generators:\n  rag: {model: models/q.gguf}\n  raft+rag: {base_url: 'http://127.0.0.1:9/v1', model: big, "
        "adapter: raft-v2}\n",
    )
    from rag.eval.systems import describe_generator

    assert describe_generator(suite.generate_config("rag"))["backend"] == "llamacpp"
    raft = describe_generator(suite.generate_config("raft+rag", adapter="/somewhere/else"))
    assert raft == {"backend": "openai", "model": "big", "adapter": "raft-v2", "server": "http://127.0.0.1:9/v1"}
    with pytest.raises(ConfigError, match="generators.rag: .*backend"):
        _suite(tmp_path, kb, "generators:\n  rag: {backend: vllm}\n")
    with pytest.raises(ConfigError, match="unknown system"):
        _suite(tmp_path, kb, "generators:\n  rgа: {model: x}\n")
