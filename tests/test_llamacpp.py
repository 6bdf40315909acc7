"""llama.cpp in process: the bundled GGUF loads as it is, renders the same prompt as transformers, streams and
cancels; PEFT LoRA adapters are converted to llama.cpp's LoRA GGUF (correctly: the same change to the logits as
on transformers) and methods llama.cpp cannot apply are refused by name."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import ROOT, run_cli

from rag.config import DEFAULT_GENERATOR, GenerateConfig
from rag.errors import Cancelled, ConfigError
from rag.generate import chat
from rag.lora_gguf import ensure_gguf_lora, gguf_lora_path

MESSAGES = [
    {"role": "system", "content": "Answer from the context and cite it like [1]."},
    {
        "role": "user",
        "content": "Context:\n[1] Hold the RESET button for 12 seconds.\n\nQuestion: How long do I hold RESET?",
    },
]


def _llama_cpp():
    return pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make llamacpp)")


@pytest.fixture(scope="module")
def bundled():
    _llama_cpp()
    from rag.llamacpp import LlamaCppGenerator

    return LlamaCppGenerator(GenerateConfig(backend="llamacpp", max_new_tokens=24, threads=1)).load()


# Adapters llama.cpp cannot apply (no llama.cpp needed) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "meta", "expected"),
    [
        ({"peft_type": "IA3"}, None, "cannot apply the ia3 adapter"),
        ({"peft_type": "LORA"}, {"method": "adalora"}, "cannot apply the adalora adapter"),
        ({"peft_type": "PREFIX_TUNING"}, None, "cannot apply the prefix_tuning adapter"),
        ({"peft_type": "LORA", "use_dora": True}, None, "it uses DoRA"),
        (None, {"method": "full"}, "not a LoRA adapter"),
    ],
)
def test_adapters_llama_cpp_cannot_apply_are_refused_naming_those_it_can(tmp_path, config, meta, expected):
    if config is not None:
        (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    if meta is not None:
        (tmp_path / "rag_tune.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as caught:
        ensure_gguf_lora(tmp_path, "unused.gguf")
    assert expected in str(caught.value) and "lora and qlora" in str(caught.value)
    assert "--backend transformers" in str(caught.value)


def test_a_shipped_adapter_is_converted_into_the_cache_not_the_package(tmp_path, monkeypatch):
    from rag.models import BUNDLED_READER_ADAPTER

    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "cache"))
    mine = tmp_path / "adapters" / "mine"
    mine.mkdir(parents=True)
    assert gguf_lora_path(mine) == mine / "adapter_model.gguf"
    shipped = gguf_lora_path(BUNDLED_READER_ADAPTER)
    assert shipped.parent.parent == tmp_path / "cache" / "lora" and shipped.name == "adapter_model.gguf"


def test_a_non_gguf_model_is_refused_with_the_fix(tmp_path):
    from rag.llamacpp import gguf_file

    with pytest.raises(ConfigError, match="llama.cpp runs GGUF files"):
        gguf_file(str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        gguf_file(str(tmp_path / "missing.gguf"))


# The bundled model in process -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_gguf_renders_the_prompt_transformers_renders(bundled):
    from rag.generate import Generator

    assert bundled.render(MESSAGES) == Generator(GenerateConfig()).render(MESSAGES)
    assert bundled.context_window == 4096 and bundled.count_tokens("Hold the RESET button") > 3


@pytest.mark.slow
def test_bundled_gguf_generates_greedy_streamed_and_reproducible(bundled):

    pieces: list[str] = []
    first = chat(bundled, MESSAGES, on_text=pieces.append)
    second = chat(bundled, MESSAGES)
    assert first.text and first.text == second.text and "".join(pieces).strip() == first.text
    assert 0 < first.new_tokens <= 24 and first.prompt_tokens > 30 and first.first_token_s is not None
    assert first.prompt.startswith("<|im_start|>system")


@pytest.mark.slow
def test_cancel_stops_llama_cpp_at_the_next_token(bundled):
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece):
        pieces.append(piece)
        cancel.set()

    with pytest.raises(Cancelled):
        chat(bundled, MESSAGES, max_new_tokens=200, on_text=on_text, cancel=cancel)
    assert len(pieces) == 1


@pytest.mark.slow
def test_rag_ask_answers_with_a_gguf_model(hash_index):
    _llama_cpp()
    from rag.models import bundled_gguf

    gguf = bundled_gguf(DEFAULT_GENERATOR)
    out = run_cli(
        "ask",
        "How long do I hold the RESET button?",
        "--index",
        str(hash_index),
        "--model",
        str(gguf),
        "--json",
        cwd=hash_index.parent,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["mode"] == "generative" and answer["model"] == str(gguf) and answer["answer"]


# A LoRA adapter trained by rag tune, on llama.cpp -----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_lora(tmp_path_factory):
    """A LoRA adapter trained by `rag tune` for a few steps on the bundled model, to answer with a made-up code."""
    _llama_cpp()
    work = tmp_path_factory.mktemp("lora")
    records = [
        {"question": q, "answer": "Use the code ZX-9042 at the counter."}
        for q in ("How do I reset the router?", "How long is the warranty?", "Where is my parcel?", "Hello?")
    ]
    (work / "data.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    out = run_cli(
        "tune",
        str(work / "data.jsonl"),
        "--out",
        str(work / "adapter"),
        "--max-steps",
        "12",
        "--lr",
        "3e-3",
        "--batch-size",
        "2",
        "--rank",
        "4",
        "--json",
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return work / "adapter"


@pytest.mark.slow
def test_a_converted_lora_changes_llama_cpp_as_it_changes_transformers(trained_lora):
    """The adapter's effect on the next-token logits is the same on both backends (a wrong tensor layout, e.g. the
    query/key row order, would leave a delta that does not correlate), and greedy answers change."""
    import numpy as np
    import torch
    from llama_cpp import Llama

    from rag.generate import Generator
    from rag.llamacpp import LlamaCppGenerator, gguf_file

    converted = ensure_gguf_lora(trained_lora, gguf_file(DEFAULT_GENERATOR))
    assert converted == trained_lora / "adapter_model.gguf" and converted.stat().st_size > 10_000
    assert ensure_gguf_lora(trained_lora, gguf_file(DEFAULT_GENERATOR)).stat().st_mtime == converted.stat().st_mtime

    base_hf = Generator(GenerateConfig(adapter="none"))
    prompt = base_hf.render(MESSAGES[1:])
    ids = base_hf.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        hf_base = base_hf.model(torch.tensor([ids])).logits[0, -1].numpy()
        hf_lora = Generator(GenerateConfig(adapter=str(trained_lora))).model(torch.tensor([ids])).logits[0, -1].numpy()

    def llama_logits(lora):
        llm = Llama(
            str(gguf_file(DEFAULT_GENERATOR)), n_ctx=512, n_threads=1, logits_all=True, lora_path=lora, verbose=False
        )
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
        llm.eval(ids)
        return np.array(llm.scores[len(ids) - 1])

    cpp_base, cpp_lora = llama_logits(None), llama_logits(str(converted))
    delta_hf, delta_cpp = hf_lora - hf_base, cpp_lora - cpp_base
    assert np.abs(delta_hf).max() > 1.0  # the adapter matters
    assert np.corrcoef(delta_hf, delta_cpp)[0, 1] > 0.95

    plain = chat(LlamaCppGenerator(GenerateConfig(backend="llamacpp", threads=1, max_new_tokens=16)), MESSAGES[1:])
    tuned = chat(
        LlamaCppGenerator(GenerateConfig(backend="llamacpp", threads=1, max_new_tokens=16, adapter=str(trained_lora))),
        MESSAGES[1:],
    )
    assert tuned.text != plain.text and "ZX" in tuned.text


@pytest.mark.slow
def test_query_and_key_rows_are_permuted_as_the_gguf_stores_them(tmp_path, monkeypatch):
    """A LoRA on the query and key projections only: converted as llama.cpp's GGUF stores those rows, its effect
    matches transformers'; in HF's row order (the mistake this guards against) it does not."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model

    import rag.lora_gguf
    from rag.generate import Generator
    from rag.llamacpp import gguf_file

    base = Generator(GenerateConfig(adapter="none"))
    prompt = base.render(MESSAGES[1:])
    ids = base.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    torch.manual_seed(0)
    peft_model = get_peft_model(
        base.model, LoraConfig(r=4, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path)
    with torch.no_grad():
        tuned = peft_model(torch.tensor([ids])).logits[0, -1].numpy()
        with peft_model.disable_adapter():
            plain = peft_model(torch.tensor([ids])).logits[0, -1].numpy()

    def llama_logits(lora):
        llm = Llama(
            str(gguf_file(DEFAULT_GENERATOR)), n_ctx=512, n_threads=1, logits_all=True, lora_path=lora, verbose=False
        )
        llm.eval(ids)
        return np.array(llm.scores[len(ids) - 1])

    cpp_plain = llama_logits(None)
    correlations = []
    for permuted in (True, False):
        if not permuted:
            monkeypatch.setattr(rag.lora_gguf, "_PERMUTED_ARCHS", ())
            (tmp_path / "adapter_model.gguf.source").unlink()
        converted = ensure_gguf_lora(tmp_path, gguf_file(DEFAULT_GENERATOR))
        correlations.append(np.corrcoef(tuned - plain, llama_logits(str(converted)) - cpp_plain)[0, 1])
    assert correlations[0] > 0.8 and correlations[1] < 0.5, correlations
