"""The generator and adapters on a tiny random Llama made in-process (no download, runs in seconds)."""

import json

import pytest
import torch
from conftest import tiny_llama

from rag.config import GenerateConfig
from rag.errors import ConfigError
from rag.generate import Generator, _trim_repetition


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_greedy_generation_is_reproducible_and_streams(tiny):
    gen = Generator(GenerateConfig(model=str(tiny), max_new_tokens=8))
    prompt = gen.render([{"role": "user", "content": "hold the reset button"}])
    assert prompt.startswith("user : hold the reset button") and prompt.rstrip().endswith("assistant :")
    pieces = []
    first = gen.generate(prompt, on_text=pieces.append)
    second = gen.generate(prompt)
    assert first.text == second.text and first.new_tokens <= 8 and first.prompt_tokens > 0
    assert "".join(pieces).strip() == first.text


def test_lora_adapter_loads_with_identical_logits(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        expected = peft_model(ids).logits
    gen = Generator(GenerateConfig(model=str(tiny), adapter=str(tmp_path / "adapter")))
    with torch.no_grad():
        got = gen.model(ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    plain = Generator(GenerateConfig(model=str(tiny)))
    with torch.no_grad():
        assert not torch.allclose(plain.model(ids).logits, got, atol=1e-3)  # the adapter changes the output


def test_adapter_for_another_base_is_refused(tiny, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "peft_type": "LORA"})
    )
    with pytest.raises(ConfigError, match="trained for base model 'Qwen/Qwen2.5-0.5B-Instruct'"):
        Generator(GenerateConfig(model=str(tiny), adapter=str(folder))).load()
    with pytest.raises(ConfigError, match="not a PEFT adapter folder"):
        Generator(GenerateConfig(model=str(tiny), adapter=str(tmp_path))).load()


def test_missing_model_folder_has_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load generator"):
        Generator(GenerateConfig(model=str(tmp_path / "nothing-here"))).load()


def test_repetition_is_trimmed():
    assert _trim_repetition("Hold it. return return return return") == "Hold it. return"


def test_an_adapter_without_its_weights_or_with_damaged_ones_is_refused_when_the_bot_starts(tiny, tmp_path):
    # a config without weights crashed in the hub client, a truncated copy in safetensors, and only at the
    # first question that reached the generator: a bot ran fine until then
    from rag import RAG
    from rag.config import Config

    folder = tmp_path / "ad"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny), "peft_type": "LORA"}))
    config = Config().override(generate={"model": str(tiny), "adapter": str(folder)})
    with pytest.raises(ConfigError, match="has a config but no weights"):
        RAG(None, config=config)
    (folder / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ConfigError, match="adapter_model.safetensors is damaged"):
        RAG(None, config=config)
    with pytest.raises(ConfigError, match="is damaged"):
        Generator(GenerateConfig(model=str(tiny), adapter=str(folder))).load()
    with pytest.raises(ConfigError, match="does not exist"):
        RAG(None, config=Config().override(generate={"adapter": str(tmp_path / "nowhere")}))
    served = Config().override(generate={"adapter": "nowhere", "base_url": "http://127.0.0.1:9/v1"})
    RAG(None, config=served)  # over HTTP an adapter is the server's, by name
