"""Fitting the reader on labelled questions (rag.calibrate): a synthetic knowledge base, the lexical reader."""

from __future__ import annotations

import random

import pytest

from rag.calibrate import fit_reader
from rag.config import Config
from rag.embeddings import HashEmbedder
from rag.errors import ConfigError
from rag.evidence import ReaderModel
from rag.ingest import build_index
from rag.pipeline import RAG

COLOURS = ["red", "green", "blue", "amber", "white", "violet", "orange", "grey"]


@pytest.fixture
def catalogue(in_tmp):
    """40 product pages, each with a code, a colour and filler; one question per page about one fact."""
    rng = random.Random(3)
    kb = in_tmp / "kb"
    kb.mkdir()
    questions = []
    for n in range(40):
        code, colour = f"QX-{100 + n}", rng.choice(COLOURS)
        (kb / f"p{n}.md").write_text(
            f"# Product {n}\n\nProduct {n} ships in a cardboard box. Its order code is {code}. "
            f"The housing of product {n} is {colour}. Product {n} works with the mobile app.\n",
            encoding="utf-8",
        )
        if n % 2:
            questions.append({"question": f"What is the order code of product {n}?", "answers": [code]})
        else:
            questions.append({"question": f"What colour is the housing of product {n}?", "answers": [colour]})
        questions[-1].update(answerable=True, sources=[f"p{n}.md"])
    questions += [
        {"question": f"Who designed the logo of company {n}?", "answers": [], "answerable": False} for n in range(6)
    ]
    build_index([kb], "idx", embedder=HashEmbedder(64))
    config = Config().override(answer={"scorer": "none"})
    from rag.retrieve import Retriever

    return RAG("idx", config, retriever=Retriever("idx", config.retrieve, embedder=HashEmbedder(64))), questions


def test_a_fitted_reader_finds_the_answer_sentence_and_sets_its_threshold(catalogue, in_tmp):
    rag, questions = catalogue
    from rag.evidence import BUNDLED_READERS

    shipped = ReaderModel.load(BUNDLED_READERS[False])
    model = fit_reader(questions, rag, false_refusal=0.1, dev_share=0.4, base=shipped, min_fit=10, log=lambda m: None)
    info = model.info["groups"]["read"]
    assert info["fitted"] > 0 and info["dev_questions"] > 0
    assert model.info["groups"]["unread"]["kept"] == "base" and model.sentence["unread"] == shipped.sentence["unread"]
    assert info["dev_false_refusal"] <= 0.25  # chosen for 10% of the held-out answerable questions
    from rag.atomic import write_json
    from rag.evidence import load_reader

    write_json(in_tmp / "reader.json", model.to_dict())
    reader = load_reader(rag.config, rag.idf, model=ReaderModel.load(in_tmp / "reader.json"))
    found = reader.read("What is the order code of product 7?", rag.retrieve("What is the order code of product 7?"))
    assert "QX-107" in found.best().text
    unanswerable = reader.read("Who designed the logo of company 9?", rag.retrieve("Who designed the logo?"))
    assert found.probability > unanswerable.probability


def test_too_few_questions_keep_the_base_or_fail_clearly(catalogue):
    rag, questions = catalogue
    with pytest.raises(ConfigError, match="too few to fit it"):
        fit_reader(questions[:3], rag, min_fit=10, log=lambda m: None)


def test_foreign_questions_swap_a_name_for_one_the_base_never_mentions():
    """Fitting negatives of the kind a customer asks: the same question about a place (or person) the knowledge
    base does not cover, of the same kind as the name it replaces; names the base has are never swapped in."""
    from rag.calibrate import foreign_questions

    own = [{"question": "深圳的售后服务中心在哪里？", "context": "售后服务中心地址：深圳市南山区。"}]
    others = [{"question": "北京有多少人口？"}, {"question": "鲁迅写了哪些小说？"}, {"question": "广州的气候如何？"}]
    assert foreign_questions(own, others, {"深圳", "广州"}) == ["北京的售后服务中心在哪里？"]
    assert foreign_questions(own, others, {"深圳", "广州", "北京"}) == []  # only a person's name is left
    unrelated = [{"question": "深圳的售后服务中心在哪里？", "context": "营业时间：每天 9:00 至 21:00。"}]
    assert foreign_questions(unrelated, others, {"深圳"}) == []  # the name must be in the question's own paragraph


def test_a_group_with_too_few_answerable_questions_keeps_its_threshold(catalogue):
    """8 English questions moved the threshold 0.144 -> 0.441 and refused 14% of them against a 5% target: the 5%
    quantile of fewer than 20 values is their lowest one or near it. The base is kept and how it does is said."""
    from rag.calibrate import describe_group
    from rag.evidence import BUNDLED_READERS

    rag, questions = catalogue
    shipped = ReaderModel.load(BUNDLED_READERS[False])
    few = questions[:8] + questions[-1:]  # 8 answerable, 1 not
    model = fit_reader(few, rag, false_refusal=0.05, base=shipped, log=lambda m: None)
    read = model.info["groups"]["read"]
    assert read["kept"] == "base" and read["too_few"] == 20 and read["answerable"] == 8
    assert model.refusal["read"]["threshold"] == shipped.refusal["read"]["threshold"] == read["threshold"]
    assert read["dev_false_refusal"] is not None  # how the kept threshold does on these questions
    line = describe_group("read", read, 0.05)
    assert "kept as it was" in line and "8 answerable question(s) are too few" in line and "at least 20" in line

    # 20 answerable questions are enough at 5% (and 10 at 10%): the threshold is chosen on them
    model = fit_reader(questions[:20] + questions[-6:], rag, false_refusal=0.05, base=shipped, log=lambda m: None)
    read = model.info["groups"]["read"]
    assert read["threshold_from"] == 26 and "too_few" not in read and read["dev_false_refusal"] <= 0.05
    model = fit_reader(questions[:10], rag, false_refusal=0.1, base=shipped, log=lambda m: None)
    assert model.info["groups"]["read"]["threshold_from"] == 10


def test_rag_calibrate_names_the_records_it_leaves_out_and_reports_readably(catalogue, in_tmp):
    import json

    from conftest import run_cli

    _, questions = catalogue
    rows = [dict(q, split="train") for q in questions[:8]] + [
        {"id": "x1", "answers": ["a"], "answerable": True, "split": "test"},  # no question, in another split
        {"question": "Is the box recyclable?", "answer": "yes", "answerable": True, "split": "train"},
        {"question": "Who designed the logo?", "answers": [], "answerable": False, "split": "train"},
    ]
    (in_tmp / "q.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (in_tmp / "rag.toml").write_text('[answer]\nscorer = "none"\n', encoding="utf-8")
    done = run_cli("calibrate", "--questions", "q.jsonl", "--index", "idx", "--out", "r.json", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "q.jsonl line 9: no 'question'; left out" in done.stderr
    assert "q.jsonl line 10: answerable but no gold answers ('answer' should be 'answers', a list)" in done.stderr
    both = done.stdout + done.stderr
    assert "{'" not in both  # no dict reprs
    assert both.count("read (questions the scorer reads: English): kept as it was") == 1  # said once
    assert "8 answerable question(s) are too few" in both
    assert "nothing was fitted" in done.stdout


def test_no_message_or_docstring_suggests_a_calibrate_option_that_does_not_exist():
    """An error told users to `rag calibrate --fit`, which argparse then refused (there is no --fit)."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    mentions = [
        f"{path.relative_to(root)}:{number}"
        for path in [root / "README.md", *sorted((root / "rag").rglob("*.py"))]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"rag calibrate --fit\b", line)
    ]
    assert mentions == []
