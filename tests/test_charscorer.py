"""The character scorer (rag.charscorer): a character-level cross-encoder for text the evidence scorer cannot read."""

import numpy as np
import pytest
from test_asks import synthetic

from rag.charscorer import (
    BUNDLED_CHAR_SCORER,
    TORCH_NAMES,
    CharScorer,
    load_char_scorer,
    network,
    tensors,
    top1,
    train,
)
from rag.errors import ConfigError


@pytest.fixture(scope="module")
def small():
    return train(synthetic(300, 0), dim=16, epochs=3, min_count=2)


def test_it_learns_which_sentence_answers(small):
    held_out = synthetic(100, 1)
    assert top1(small, held_out) > 0.95
    where = small.scores("南京长江大桥在哪里？", ["大桥位于南京市。", "大桥成立于1968年。"])
    assert where[0] > where[1]


def test_numpy_scoring_is_the_trained_network(small):
    """Sentences of different lengths are padded in training: the numpy path, one sentence at a time, must give
    the network's scores, or what was learned is not what is read."""
    import torch

    net = network(len(small.vocab) + 2, 16)
    net.load_state_dict({TORCH_NAMES[name]: torch.from_numpy(value) for name, value in small.params.items()})
    net.eval()
    question = "甲公司是哪一年建立的？"
    sentences = [
        "甲公司位于上海市中心。",
        "成立于1990年。",
        "甲公司是一家很长很长的公司，它在很多城市都有分部，也有很多员工。",
    ]
    with torch.no_grad():
        expected = net(*tensors(question, sentences, small.vocab, small.max_chars)).numpy()
    assert np.allclose(small.scores(question, sentences), expected, atol=1e-4)


def test_save_and_load_round_trip(small, tmp_path):
    small.save(tmp_path / "chars")
    loaded = CharScorer.load(tmp_path / "chars")
    q, s = "甲公司在哪里？", ["甲公司位于上海市中心。", "甲公司成立于1990年。"]
    assert np.allclose(loaded.scores(q, s), small.scores(q, s), atol=2e-2)  # stored in float16
    assert loaded.vocab == small.vocab and loaded.max_chars == small.max_chars
    assert loaded.info["task"] == "char-scorer" and loaded.info["examples"] == 300
    assert sorted(p.name for p in (tmp_path / "chars").iterdir()) == ["char_scorer.npz", "rag_tune.json"]


def test_bad_folders_and_bad_models_say_what_to_do(small, tmp_path):
    with pytest.raises(ConfigError, match="not a character scorer folder"):
        CharScorer.load(tmp_path)
    for junk in (b"not a zip file", b""):
        (tmp_path / "char_scorer.npz").write_bytes(junk)
        with pytest.raises(ConfigError, match="not a readable character scorer"):
            CharScorer.load(tmp_path)
    CharScorer(small.vocab, small.params, 0).save(tmp_path / "zero")
    with pytest.raises(ConfigError, match="max_chars 0"):
        CharScorer.load(tmp_path / "zero")
    small.save(tmp_path / "listed")
    (tmp_path / "listed" / "rag_tune.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        CharScorer.load(tmp_path / "listed")
    broken = CharScorer(small.vocab, {**small.params, "conv_b": np.zeros(3, np.float32)}, small.max_chars)
    broken.save(tmp_path / "broken")
    with pytest.raises(ConfigError, match="not a consistent character scorer: conv_b"):
        CharScorer.load(tmp_path / "broken")
    diverged = CharScorer(small.vocab, {**small.params, "out_b": np.array([1e6], np.float32)}, small.max_chars)
    with pytest.raises(ConfigError, match="lower learning rate"):
        diverged.save(tmp_path / "diverged")
    assert not (tmp_path / "diverged").exists()
    with pytest.raises(ConfigError, match="no training examples"):
        train([])
    with pytest.raises(ConfigError, match="answer `char_scorer`"):
        from rag.config import Config

        Config().override(answer={"char_scorer": ""})
    assert load_char_scorer("none") is None


def test_text_it_never_saw_still_scores(small):
    assert np.isfinite(small.scores("Where is it?", ["", "Paris.", "它位于上海。"])).all()
    assert small.scores("在哪？", []).shape == (0,)


def test_the_shipped_model_is_the_unread_groups_cross_encoder():
    from rag.config import Config
    from rag.evidence import load_reader
    from tests.test_answer import hit

    shipped = load_char_scorer("bundled")
    assert shipped is not None and shipped.info["data"]["examples"] > 5000
    assert (BUNDLED_CHAR_SCORER / "char_scorer.npz").stat().st_size < 2_000_000
    assert shipped.info["metrics"]["held_out_top1"] > shipped.info["metrics"]["held_out_top1_ask_model"]
    # the subject is named in the first sentence; the answer drops it, as Chinese prose does
    question = "黄足笛鲷在哪里栖息？"
    sentences = ["黄足笛鲷，又称焦黄笛鲷，为辐鳍鱼纲鲈形目笛鲷科的其中一个种。", "栖息在珊瑚礁或岩石海岸，独自行动。"]
    scores = shipped.scores(question, sentences)
    assert scores[1] > scores[0]
    hits = [hit("".join(sentences))]
    found = load_reader(Config().override(answer={"scorer": "none"}), idf={}).read(question, hits)
    assert found.group == "unread" and len(found.candidates) == 2
    assert all(c.features["ce"] != 0 for c in found.candidates)
    off = load_reader(Config().override(answer={"scorer": "none", "char_scorer": "none"}), idf={})
    unread = off.read(question, hits).candidates
    assert len(unread) == 2 and all(c.features["ce"] == 0 for c in unread)
    english = load_reader(Config().override(answer={"scorer": "none"}), idf={}).read("Where is it?", hits)
    assert english.group == "read" and len(english.candidates) == 2
    assert all(c.features["ce"] == 0 for c in english.candidates)


def test_rag_tune_retrains_it_from_the_shipped_one_on_a_teams_pairs(tmp_path):
    from conftest import run_cli
    from test_asks import _pairs_file

    data = tmp_path / "pairs.jsonl"
    _pairs_file(data)
    out = tmp_path / "chars"
    args = ("tune", str(data), "--task", "char-scorer", "--out", str(out), "--init-adapter", "bundled")
    res = run_cli(*args, "--epochs", "3", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    assert "8 questions" in res.stdout and "answer.char_scorer" in res.stdout
    assert "--task char-scorer ignores --batch-size" in res.stderr
    tuned, shipped = CharScorer.load(out), load_char_scorer("bundled")
    assert tuned.info["data"]["examples"] == 8 and tuned.vocab == shipped.vocab
    assert tuned.info["lineage"] == shipped.info["lineage"] + [
        {"task": "char-scorer", "init": "bundled", "out": str(out)}
    ]
    q, texts = "宁巴商店几点开门？", ["宁巴商店每天9:00至21:00营业。", "宁巴商店位于深圳市南山区。"]
    gap = [m.scores(q, texts) @ [1.0, -1.0] for m in (tuned, shipped)]
    assert gap[0] > gap[1] and gap[0] > 0
    res = run_cli(
        "tune", str(data), "--task", "char-scorer", "--out", str(tmp_path / "none"), "--init-adapter", str(tmp_path)
    )
    assert res.returncode != 0 and "not a character scorer folder" in res.stderr
    res = run_cli("tune", str(data), "--task", "char-scorer", "--out", str(tmp_path / "scratch"))
    assert res.returncode != 0 and "too few" in res.stderr and "--init-adapter bundled" in res.stderr
    assert not (tmp_path / "none").exists() and not (tmp_path / "scratch").exists()
    assert "rag: epoch 3/3" in run_cli(*args, "--epochs", "3").stderr  # a long run says where it is
