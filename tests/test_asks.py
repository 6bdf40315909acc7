"""The ask model (rag.asks): what a question asks for against what a sentence offers, learned from data."""

import random

import numpy as np
import pytest

from rag.asks import BUNDLED_ASKS, AskModel, examples, load_asks, top1, train
from rag.errors import ConfigError

PLACES = ["上海", "北京", "广州", "深圳", "杭州", "南京"]
YEARS = ["1990", "2001", "1875", "1936", "2012", "1968"]
NAMES = ["甲公司", "乙大学", "丙车站", "丁寺庙", "戊医院", "己公园", "庚博物馆", "辛图书馆"]


def synthetic(n: int, seed: int) -> list[tuple[str, list[str], list[bool]]]:
    """Paragraphs of one place sentence and one year sentence, both naming their subject; questions ask for
    one or the other. Overlap cannot tell them apart: only the kind of thing asked can."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, place, year = rng.choice(NAMES), rng.choice(PLACES), rng.choice(YEARS)
        sentences = [f"{name}位于{place}市中心。", f"{name}成立于{year}年。"]
        if rng.random() < 0.5:
            out.append((f"{name}在哪里？", sentences, [True, False]))
        else:
            out.append((f"{name}是哪一年建立的？", sentences, [False, True]))
    return out


def test_it_learns_which_sentence_holds_the_kind_of_thing_asked():
    model = train(synthetic(400, 0), dim=8, epochs=3, question_min=5, sentence_min=5)
    held_out = synthetic(100, 1)
    assert top1(model, held_out) > 0.95
    assert top1(model, held_out, ask=False) < 0.8  # overlap alone cannot tell
    where = model.scores("南京长江大桥在哪里？", ["大桥位于南京市。", "大桥成立于1968年。"])
    assert where[0] > where[1]


def test_save_and_load_round_trip(tmp_path):
    model = train(synthetic(200, 0), dim=4, epochs=1, question_min=5, sentence_min=5)
    model.save(tmp_path / "asks")
    loaded = AskModel.load(tmp_path / "asks")
    q, s = "甲公司在哪里？", ["甲公司位于上海市中心。", "甲公司成立于1990年。"]
    assert np.allclose(loaded.scores(q, s), model.scores(q, s), atol=1e-2)  # stored in float16
    assert loaded.info["task"] == "asks" and loaded.info["examples"] == 200
    assert sorted(p.name for p in (tmp_path / "asks").iterdir()) == ["asks.npz", "rag_tune.json"]


def test_continuing_keeps_every_unit_on_its_own_vector():
    model = train(synthetic(200, 0), dim=4, epochs=1, question_min=5, sentence_min=5)
    same = train(synthetic(50, 1), epochs=0, init=model)  # no step taken: the model must come back as it was
    assert same.question_vocab == model.question_vocab and same.sentence_vocab == model.sentence_vocab
    assert np.array_equal(same.question_vectors, model.question_vectors)
    assert np.array_equal(same.sentence_vectors, model.sentence_vectors)
    assert same.info["hyperparameters"]["question_min"] == 5


def test_a_diverged_model_is_not_saved(tmp_path):
    model = AskModel({"哪": 0}, {"位": 0}, np.full((1, 2), 1e6), np.ones((1, 2)))  # inf in float16
    with pytest.raises(ConfigError, match="lower learning rate"):
        model.save(tmp_path / "asks")
    assert not (tmp_path / "asks").exists()


def test_unknown_units_score_zero():
    model = AskModel({"哪": 0}, {"位": 0}, np.ones((1, 2)), np.ones((1, 2)))
    assert model.scores("Where is it?", ["它位于上海。"]).tolist() == [0.0]  # no known question unit
    assert model.scores("在哪？", ["Paris."]).tolist() == [0.0]  # no known sentence unit
    assert model.scores("在哪？", []).shape == (0,)


def test_bad_folders_and_too_little_data_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="not an ask model folder"):
        AskModel.load(tmp_path)
    (tmp_path / "asks.npz").write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="not a readable ask model"):
        AskModel.load(tmp_path)
    np.savez(
        tmp_path / "asks.npz",
        question_units=np.array(["哪"]),
        sentence_units=np.array(["位"]),
        question_vectors=np.ones((2, 4)),
        sentence_vectors=np.ones((1, 4)),
    )
    with pytest.raises(ConfigError, match="not a consistent ask model"):
        AskModel.load(tmp_path)
    with pytest.raises(ConfigError, match="answer `asks`"):
        from rag.config import Config

        Config().override(answer={"asks": ""})
    with pytest.raises(ConfigError, match="no training examples"):
        train([])
    with pytest.raises(ConfigError, match="too little training data"):
        train(synthetic(3, 0))
    assert load_asks("none") is None


def test_examples_label_the_sentences_holding_an_answer():
    documents = [{"id": "p1", "text": "甲公司位于上海。甲公司成立于1990年。"}]
    questions = [
        {"question": "甲公司在哪里？", "answers": ["上海"], "sources": ["p1"]},
        {"question": "甲公司叫什么？", "answers": ["甲公司"], "sources": ["p1"]},  # in every sentence: no signal
        {"question": "别的？", "answers": ["x"], "sources": ["p2"]},  # paragraph not given
    ]
    assert examples(documents, questions) == [
        ("甲公司在哪里？", ["甲公司位于上海。", "甲公司成立于1990年。"], [True, False])
    ]


def test_the_shipped_model_reads_chinese_questions_in_the_unread_group():
    from rag.config import Config
    from rag.evidence import load_reader

    shipped = load_asks("bundled")
    assert shipped is not None and shipped.info["data"]["examples"] > 5000
    assert (BUNDLED_ASKS / "asks.npz").stat().st_size < 1_000_000
    where = shipped.scores("大沙地站在哪里？", ["大沙地站位于黄埔区大沙地西路的地底。", "大沙地站于2009年启用。"])
    assert where[0] > where[1]
    from tests.test_answer import hit

    hits = [hit("米泽车站在2002年时入选东北车站百选。米泽车站位于日本山形县米泽市驿前一丁目。")]
    found = load_reader(Config().override(answer={"scorer": "none"}), idf={}).read("米泽车站在哪里？", hits)
    assert found.group == "unread" and all(c.features["ask"] != 0 for c in found.candidates)
    assert "山形县" in found.best().text
    off = load_reader(Config().override(answer={"scorer": "none", "asks": "none"}), idf={}).read(
        "米泽车站在哪里？", hits
    )
    assert all(c.features["ask"] == 0 for c in off.candidates)
    margin = [f.candidates[1].probability - f.candidates[0].probability for f in (found, off)]
    assert margin[0] > 0 > margin[1]  # the lexical features alone prefer the station's other sentence


def _pairs_file(path, n=40):
    """Question/text/label pairs of a customer-service base: opening hours asked, or where a shop is."""
    import json

    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            shop = ["宁巴门店", "宁巴仓库", "宁巴总部", "宁巴维修点"][i // 2 % 4]
            hours = i % 2 == 1
            q = f"{shop}几点开门？" if hours else f"{shop}在哪儿？"
            for text, right in ((f"{shop}每天9:00至21:00营业。", hours), (f"{shop}位于深圳市南山区。", not hours)):
                fh.write(json.dumps({"question": q, "text": text, "label": int(right)}, ensure_ascii=False) + "\n")


def test_rag_tune_retrains_it_from_the_shipped_one_on_a_teams_pairs(tmp_path):
    from conftest import run_cli

    data = tmp_path / "pairs.jsonl"
    _pairs_file(data)
    out = tmp_path / "asks"
    args = ("tune", str(data), "--task", "asks", "--out", str(out), "--init-adapter", "bundled", "--epochs", "3")
    res = run_cli(*args, "--max-steps", "5")
    assert res.returncode == 0, res.stderr
    assert "8 questions" in res.stdout and "answer.asks" in res.stdout
    assert "--task asks ignores --max-steps" in res.stderr
    tuned, shipped = AskModel.load(out), load_asks("bundled")
    assert tuned.info["data"]["examples"] == 8
    assert tuned.info["lineage"] == shipped.info["lineage"] + [{"task": "asks", "init": "bundled", "out": str(out)}]
    assert len(tuned.sentence_vocab) == len(shipped.sentence_vocab)  # continued on the shipped model's units
    q, texts = "宁巴商店几点开门？", ["宁巴商店每天9:00至21:00营业。", "宁巴商店位于深圳市南山区。"]
    gap = [m.scores(q, texts) @ [1.0, -1.0] for m in (tuned, shipped)]
    assert gap[0] > gap[1] and gap[0] > 0


def test_rag_tune_asks_says_what_is_wrong_with_its_data(tmp_path):
    from conftest import run_cli

    data = tmp_path / "pairs.jsonl"
    _pairs_file(data)
    res = run_cli("tune", str(data), "--task", "asks", "--out", str(tmp_path / "a"))  # from scratch: too few
    assert res.returncode != 0 and "--init-adapter bundled" in res.stderr
    positives = tmp_path / "positives.jsonl"
    positives.write_text('{"question": "在哪儿？", "text": "位于深圳。", "label": 1}\n', encoding="utf-8")
    res = run_cli("tune", str(positives), "--task", "asks", "--out", str(tmp_path / "b"), "--init-adapter", "bundled")
    assert res.returncode != 0 and "texts that do not (label 0)" in res.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
