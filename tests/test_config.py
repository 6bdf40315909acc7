"""Typed settings: defaults, rag.toml loading, unknown keys, checks that name the field, frozen variants."""

from __future__ import annotations

import dataclasses

import pytest

from rag.config import AnswerConfig, ChunkConfig, Config, EmbedConfig
from rag.errors import ConfigError


def test_rag_toml_overrides_defaults_section_by_section(in_tmp):
    (in_tmp / "rag.toml").write_text(
        '[chunk]\nsize = 120\n\n[embed]\nmodel = "intfloat/multilingual-e5-small"\nquery_prefix = "query: "\n'
        'languages = ["multilingual"]\n\n[answer]\nmode = "auto"\n',
        encoding="utf-8",
    )
    config = Config.load()
    assert config.chunk == ChunkConfig(size=120, overlap=32)
    assert config.embed.model == "intfloat/multilingual-e5-small" and config.embed.languages == ("multilingual",)
    assert config.answer.mode == "auto" and config.retrieve == Config().retrieve


def test_config_file_from_the_environment_and_missing_files(in_tmp, monkeypatch):
    (in_tmp / "other.toml").write_text("[retrieve]\nk = 9\n", encoding="utf-8")
    monkeypatch.setenv("RAG_CONFIG", str(in_tmp / "other.toml"))
    assert Config.load().retrieve.k == 9
    monkeypatch.setenv("RAG_CONFIG", str(in_tmp / "nope.toml"))
    with pytest.raises(ConfigError, match="nope.toml does not exist"):
        Config.load()
    monkeypatch.delenv("RAG_CONFIG")
    assert Config.load() == Config()  # no rag.toml here: the defaults


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[chunks]\nsize = 1\n", r"unknown section\(s\) \['chunks'\]"),
        (
            "[chunk]\nsise = 100\n",
            r"rag.toml: unknown key\(s\) \['sise'\] in \[chunk\]; known keys are \['overlap', 'size'\]",
        ),
        ("[chunk]\nsize = 100\noverlap = 200\n", "`overlap` must be smaller than `size`, got overlap=200, size=100"),
        ('[retrieve]\nmode = "sparse"\n', "retrieval `mode` must be one of dense, bm25, hybrid, got mode='sparse'"),
        ("[answer]\nmin_evidence = 2\n", "min_evidence` must be between 0 and 1"),
        ("[answer]\nshow_floor = 1.5\n", r"`show_floor` must be between 0 \(show all k passages\) and 1"),
        ("[answer]\nfocus = -1\n", r"`focus` must be 0 \(whole passages\) or a positive integer, got focus=-1"),
        ('[embed]\nlanguages = "en"\n', "languages` must be a list"),
        ("[answer\nmode = 1\n", "not valid TOML"),
        ("chunk = 3\n", r"section \[chunk\] must be a table"),
    ],
)
def test_bad_settings_name_the_file_field_and_value(in_tmp, toml, message):
    (in_tmp / "rag.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        Config.load()


def test_configs_are_frozen_and_variants_are_checked():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.answer.mode = "auto"  # type: ignore[misc]
    variant = config.override(answer={"mode": "auto", "k": None}, generate={"max_new_tokens": 32})
    assert (variant.answer.mode, variant.answer.k, variant.generate.max_new_tokens) == ("auto", 3, 32)
    assert config.answer.mode == "extractive"  # the original is unchanged
    assert config.override(answer={"k": None}) is config  # nothing given: nothing derived
    with pytest.raises(ConfigError, match="answer `k` must be a positive integer, got k=0"):
        config.override(answer={"k": 0})
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['anwser'\]"):
        config.override(anwser={"k": 1})
    with pytest.raises(ConfigError, match="chunk `size` must be an integer"):
        dataclasses.replace(config.chunk, size="big")
    assert Config.from_dict(config.to_dict()) == config  # plain values round-trip
    assert AnswerConfig.k == 3 and EmbedConfig.batch_size == 128  # class defaults feed the CLI's help
