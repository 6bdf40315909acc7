"""Every tuning method trains a few steps on a tiny random Llama made in-process, and reloads identically."""

import dataclasses
import json
from dataclasses import replace

import pytest
import torch
from conftest import tiny_llama

from rag.config import GenerateConfig
from rag.errors import ConfigError
from rag.generate import Generator
from rag.tune import TuneOptions, encode, tune
from rag.tunedata import detect_format, raft_examples, read_records, to_examples
from rag.types import Chunk, Hit


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def qa_file(tmp_path):
    rows = [{"question": f"w{i} w{i + 1} reset", "answer": f"hold it for {i % 10} seconds"} for i in range(12)]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("method", ["lora", "adalora", "ia3", "prefix", "prompt", "ptuning", "bottleneck", "full"])
def test_method_trains_and_reloads_with_identical_logits(tiny, qa_file, tmp_path, method):
    out = tmp_path / f"out-{method}"
    result = tune(qa_file, out, TuneOptions(method=method, base=str(tiny), max_steps=3, batch_size=2, save_steps=2))
    assert result.steps == 3 and result.trainable_params > 0 and result.eval_loss is not None
    assert (out / "rag_tune.json").exists() and (out / "loss.png").exists() and (out / "metrics.json").exists()
    assert not out.with_name(out.name + ".partial").exists()
    meta = json.loads((out / "rag_tune.json").read_text())
    assert meta["method"] == method and meta["base_model"] == str(tiny) and meta["data"]["format"] == "qa"
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        expected = result.model(input_ids=ids).logits
        cfg = GenerateConfig(model=str(out)) if method == "full" else GenerateConfig(model=str(tiny), adapter=str(out))
        got = Generator(cfg).load().model(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    if method != "full":
        assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
        assert result.trainable_params < result.total_params


def test_answer_only_loss_masks_the_prompt(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    _, [ex] = to_examples([{"question": "w1 w2", "answer": "hold it"}])
    enc = encode(ex, tok, 512)
    answer_ids = tok("hold it" + tok.eos_token, add_special_tokens=False)["input_ids"]
    assert enc["labels"][-len(answer_ids) :] == answer_ids
    assert all(label == -100 for label in enc["labels"][: -len(answer_ids)])
    assert encode(ex, tok, 3) is None  # too long: dropped (and counted by tune)


def test_formats_are_detected_and_bad_records_named(tmp_path):
    assert detect_format([{"instruction": "a", "output": "b"}]) == "alpaca"
    assert detect_format([{"messages": [{"role": "user", "content": "x"}]}]) == "chat"
    assert detect_format([{"question": "q", "answers": ["a"]}]) == "qa"
    assert detect_format([{"text": "t"}]) == "text"
    with pytest.raises(ConfigError, match="unknown tuning data format"):
        detect_format([{"foo": 1}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{broken\n')
    with pytest.raises(ConfigError, match="line 2"):
        read_records(bad)
    with pytest.raises(ConfigError, match="record 2"):
        to_examples([{"question": "q", "answer": "a"}, {"question": "q", "answer": ""}])
    with pytest.raises(ConfigError, match="last message must be the assistant"):
        to_examples([{"messages": [{"role": "user", "content": "x"}]}])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_records(empty)
    with pytest.raises(ConfigError, match="method"):
        TuneOptions(method="magic")


def test_sequential_tuning_records_lineage(tiny, qa_file, tmp_path):
    first = tune(qa_file, tmp_path / "general", TuneOptions(base=str(tiny), max_steps=2, batch_size=2))
    second = tune(
        qa_file,
        tmp_path / "domain",
        TuneOptions(
            base=str(tiny), max_steps=2, batch_size=2, init_adapter=str(tmp_path / "general"), group_by_length=True
        ),
    )
    assert [s["out"] for s in second.lineage] == [str(tiny), str(tmp_path / "general"), str(tmp_path / "domain")]
    assert [s["method"] for s in first.lineage] == ["base", "lora"]
    meta = json.loads((tmp_path / "domain" / "rag_tune.json").read_text())
    assert [s["out"] for s in meta["lineage"]][-2:] == [str(tmp_path / "general"), str(tmp_path / "domain")]
    assert meta["hyperparameters"]["group_by_length"] is True


def test_an_interrupted_run_leaves_nothing_at_out(tiny, qa_file, tmp_path, monkeypatch):
    from transformers import Trainer

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", boom)
    with pytest.raises(KeyboardInterrupt):
        tune(qa_file, tmp_path / "out", TuneOptions(base=str(tiny), max_steps=2))
    assert not (tmp_path / "out").exists()


def test_raft_examples_use_the_served_prompt_and_teach_refusal():
    chunks = [
        Chunk(id=f"s{i}#0", source=f"kb/s{i}.md", ordinal=0, text=t)
        for i, t in enumerate(
            ["Hold RESET for 12 seconds.", "Shipping takes 3 days.", "Refunds take 5 days.", "The LED is white."]
        )
    ]

    class FakeRetriever:
        def search(self, q, k=5):
            return [Hit(rank=i + 1, score=1.0, chunk=c) for i, c in enumerate(chunks[:k])]

    records = [{"question": "How long do I hold RESET?", "answers": ["12 seconds"], "sources": ["kb/s0.md"]}] * 10
    examples = raft_examples(records, FakeRetriever(), k=3, without_gold=0.3, seed=1)
    with_gold = [e for e in examples if e.meta["gold"]]
    without = [e for e in examples if not e.meta["gold"]]
    assert with_gold and without
    for e in with_gold:
        user, answer = e.messages[-2]["content"], e.messages[-1]["content"]
        n = int(answer.rsplit("[", 1)[1].rstrip("]"))
        assert f"[{n}] Source: kb/s0.md" in user and answer.startswith("Hold RESET for 12 seconds.")
        assert e.messages[0]["role"] == "system" and "Question: How long do I hold RESET?" in user
    for e in without:
        assert "kb/s0.md" not in e.messages[-2]["content"]
        assert e.messages[-1]["content"] == "I could not find this in the knowledge base."


def test_raft_examples_show_the_passages_as_focused_and_drop_a_gold_cut_away():
    gold = Chunk(id="g#0", source="kb/g.md", ordinal=0, text="Shipping is free. Hold RESET for 12 seconds.")
    others = [Chunk(id=f"d{i}#0", source=f"kb/d{i}.md", ordinal=0, text=f"Fact {i}. More {i}.") for i in range(3)]

    class FakeRetriever:
        def search(self, q, k=5):
            return [Hit(rank=i + 1, score=1.0, chunk=c) for i, c in enumerate([gold, *others][:k])]

    def first_sentence_reversed(question, hits):  # a reader that reorders and cuts
        out = [replace(h, chunk=replace(h.chunk, text=h.chunk.text.split(". ")[0] + ".")) for h in hits]
        return out[::-1]

    def answer_sentence_only(question, hits):
        return [replace(h, chunk=replace(h.chunk, text=h.chunk.text.split(". ")[-1])) for h in hits][::-1]

    records = [{"question": "How long do I hold RESET?", "answers": ["12 seconds"], "sources": ["kb/g.md"]}] * 4
    assert raft_examples(records, FakeRetriever(), k=3, without_gold=0.0, focus=first_sentence_reversed) == []
    examples = raft_examples(records, FakeRetriever(), k=3, without_gold=0.0, focus=answer_sentence_only)
    assert len(examples) == 4
    for e in examples:
        user, answer = e.messages[-2]["content"], e.messages[-1]["content"]
        n = int(answer.rsplit("[", 1)[1].rstrip("]"))
        assert f"[{n}] Source: kb/g.md" in user and "Shipping is free" not in user
        assert answer == f"Hold RESET for 12 seconds. [{n}]"


def test_adapters_list_and_merge(tiny, qa_file, tmp_path):
    from conftest import run_cli

    tune(qa_file, tmp_path / "adapters" / "a1", TuneOptions(base=str(tiny), max_steps=2, batch_size=2))
    res = run_cli("adapters", "list", str(tmp_path / "adapters"), "--json")
    rows = json.loads(res.stdout)
    assert rows[0]["method"] == "lora" and rows[0]["base"] == str(tiny)
    res = run_cli("adapters", "merge", str(tmp_path / "adapters" / "a1"), "--out", str(tmp_path / "merged"))
    assert res.returncode == 0, res.stderr
    ids = torch.tensor([[1, 5, 6]])
    with torch.no_grad():
        merged = Generator(GenerateConfig(model=str(tmp_path / "merged"))).load().model(input_ids=ids).logits
        adapted = (
            Generator(GenerateConfig(model=str(tiny), adapter=str(tmp_path / "adapters" / "a1")))
            .load()
            .model(input_ids=ids)
            .logits
        )
    assert torch.allclose(merged, adapted, atol=1e-4)


def test_resume_continues_from_the_last_checkpoint(tiny, qa_file, tmp_path, monkeypatch):
    from transformers import Trainer

    original = Trainer.training_step
    calls = {"n": 0}

    def crash_on_third(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the machine went down after the checkpoint at step 2
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "training_step", crash_on_third)
    options = TuneOptions(base=str(tiny), max_steps=4, batch_size=2, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        tune(qa_file, tmp_path / "out", options)
    assert (tmp_path / "out.partial" / "checkpoint-2").is_dir() and not (tmp_path / "out").exists()
    resumed = {"n": 0}

    def count(self, *a, **k):
        resumed["n"] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "training_step", count)
    result = tune(qa_file, tmp_path / "out", dataclasses.replace(options, resume=True))
    assert result.steps == 4 and resumed["n"] == 2  # steps 3 and 4 only: it went on from checkpoint-2
    assert (tmp_path / "out" / "adapter_config.json").exists()


def test_cli_raft_run_on_an_index(tiny, tmp_path, kb):
    """`rag tune --raft` end to end through the CLI: examples from an index, a trained adapter, a JSON summary."""
    from conftest import run_cli

    from rag.embeddings import HashEmbedder
    from rag.ingest import build_index

    build_index([kb], tmp_path / "idx", embedder=HashEmbedder(64))
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"question": "How long do I hold RESET?", "answers": ["12 seconds"], "sources": ["router.md"], "split": "train"}
    ] * 4
    qa.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = run_cli(
        "tune",
        str(qa),
        "--raft",
        "--raft-no-gold",
        "0.5",
        "--index",
        str(tmp_path / "idx"),
        "--base",
        str(tiny),
        "--out",
        str(tmp_path / "raft"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--max-length",
        "2048",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["steps"] == 1 and (tmp_path / "raft" / "adapter_config.json").exists()


@pytest.mark.slow
def test_data_parallel_run_matches_a_single_process_run(tiny, qa_file, tmp_path):
    """`accelerate launch` with 2 CPU processes x batch 2 (data-parallel, gloo) does what 1 process x batch 4
    does: the same steps over the same examples, one output folder written by rank 0 in the same layout."""
    import os
    import subprocess
    import sys

    from conftest import ROOT, run_cli
    from safetensors.torch import load_file

    common = ["tune", str(qa_file), "--base", str(tiny), "--max-steps", "3", "--lr", "1e-2", "--dropout", "0", "--json"]
    single = run_cli(*common, "--out", str(tmp_path / "single"), "--batch-size", "4")
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
    ]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rag"]
    ddp = subprocess.run(
        launch + common + ["--out", str(tmp_path / "ddp"), "--batch-size", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert len([line for line in ddp.stdout.splitlines() if line.startswith("{")]) == 1  # rank 0 reports
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
    a = load_file(tmp_path / "single" / "adapter_model.safetensors")
    b = load_file(tmp_path / "ddp" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    config = [json.loads((tmp_path / d / "adapter_config.json").read_text()) for d in ("single", "ddp")]
    for c in config:
        c["target_modules"] = sorted(c["target_modules"])  # a set, saved in hash order
    assert config[0] == config[1]
    meta = [json.loads((tmp_path / d / "rag_tune.json").read_text())["metrics"] for d in ("single", "ddp")]
    assert meta[0]["steps"] == meta[1]["steps"] == 3 and meta[0]["examples"] == meta[1]["examples"]
    # both learned about as much (lora_B starts at zero); the weights are not identical because the
    # distributed sampler shuffles the same data into different global batches
    learned = [sum(float(w[k].norm() ** 2) for k in w if "lora_B" in k) ** 0.5 for w in (a, b)]
    assert learned[0] > 0 and 0.7 < learned[1] / learned[0] < 1.4
    assert not (tmp_path / "ddp.partial").exists()


def test_a_scorer_pair_with_a_question_longer_than_the_window_is_cut_not_refused():
    from transformers import AutoTokenizer

    from rag.models import embedder_location
    from rag.tunedata import Example

    tokenizer = AutoTokenizer.from_pretrained(embedder_location("sentence-transformers/all-MiniLM-L6-v2"))
    short = encode(Example(pair=("How long?", "Hold RESET for 12 seconds. " * 40), label=1.0), tokenizer, 64)
    question = tokenizer("How long?")["input_ids"]  # [CLS] how long ? [SEP]
    assert len(short["input_ids"]) == 64 and short["input_ids"][: len(question)] == question  # the passage cut
    pasted = encode(Example(pair=("My router keeps dropping. " * 40, "Hold RESET."), label=0.0), tokenizer, 64)
    assert len(pasted["input_ids"]) <= 64 and pasted["labels"] == [0.0]  # "only_second" raised here


def test_tune_leaves_out_the_questions_of_other_splits_and_says_so(tiny, tmp_path):
    # an eval question set handed to `rag tune` trained on its test questions
    rows = [
        {"question": f"w{i} reset", "answer": f"hold {i}", "split": "test" if i < 3 else "train"} for i in range(12)
    ]
    data = tmp_path / "questions.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    result = tune(data, tmp_path / "out", TuneOptions(base=str(tiny), max_steps=1, batch_size=2))
    assert result.left_out == {"test": 3}
    meta = json.loads((tmp_path / "out" / "rag_tune.json").read_text())
    assert meta["data"]["records"] == 9 and meta["data"]["left_out"] == {"test": 3}
    data.write_text("\n".join(json.dumps({**r, "split": "test"}) for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError, match="every record is of the test split"):
        tune(data, tmp_path / "out2", TuneOptions(base=str(tiny), max_steps=1))


def test_tune_options_refuse_a_learning_rate_that_cannot_train():
    for lr in (-1.0, 0.0, 5.0):
        with pytest.raises(ConfigError, match="`lr` must be a positive learning rate"):
            TuneOptions(lr=lr)


def test_rag_tune_raft_says_when_no_record_names_a_file_of_the_index(tmp_path, kb):
    # every record's sources misspelt: all became refusal examples and the adapter learned to refuse
    from conftest import run_cli

    assert run_cli("index", "kb", "--index", "idx", "--embedder", "hash", cwd=tmp_path).returncode == 0
    rows = [{"question": "How long do I hold RESET?", "answer": "12 seconds", "sources": ["docs/router.md"]}] * 3
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    res = run_cli("tune", "qa.jsonl", "--raft", "--index", "idx", "--out", "a", "--max-steps", "1", cwd=tmp_path)
    assert res.returncode == 1 and "3 of 3 records name sources no file of the index" in res.stderr
    assert "'docs/router.md'" in res.stderr and "kb/" in res.stderr


def test_tune_says_when_the_time_limit_stopped_it_and_when_it_replaces_a_result(tiny, qa_file, tmp_path, capsys):
    out = tmp_path / "out"
    tune(qa_file, out, TuneOptions(base=str(tiny), max_steps=1, batch_size=2))
    capsys.readouterr()
    result = tune(qa_file, out, TuneOptions(base=str(tiny), max_steps=50, batch_size=2, max_minutes=1e-6))
    err = capsys.readouterr().err
    assert result.steps == 1 and "--max-minutes 1e-06 reached: stopped after 1 of 50 steps" in err
    assert f"{out} held a previous result: replaced" in err
