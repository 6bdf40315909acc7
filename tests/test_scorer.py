"""Which scorer a config names: bundled, a folder, a model hub id, or none; and what a bad name says."""

from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.scorer import BUNDLED_SCORER, scorer_folder


def test_bundled_none_and_folders():
    assert scorer_folder("bundled") == BUNDLED_SCORER and scorer_folder("none") is None
    assert scorer_folder(str(BUNDLED_SCORER)) == BUNDLED_SCORER


def test_a_hub_id_is_fetched_once_and_read_from_the_cache(monkeypatch, tmp_path):
    import huggingface_hub

    asked = []

    def snapshot_download(model_id):  # the hub's cache, as snapshot_download returns it
        asked.append(model_id)
        (tmp_path / "config.json").write_text("{}")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert scorer_folder("cross-encoder/ms-marco-MiniLM-L6-v2") == tmp_path
    assert asked == ["cross-encoder/ms-marco-MiniLM-L6-v2"]


def test_an_unreachable_hub_or_a_wrong_folder_says_what_to_give(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as on a machine without the hub
    with pytest.raises(ConfigError, match="could not be fetched from the model hub.*local folder"):
        scorer_folder("nobody/no-such-scorer")
    with pytest.raises(ConfigError, match="not a scorer folder"):
        scorer_folder(str(tmp_path))  # a folder without a model
