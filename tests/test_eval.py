"""The evaluation harness: answer metrics, uncertainty, suite validation, public loaders, reports."""

from __future__ import annotations

import json
import math

import pytest
from conftest import FakeGenerator, run_cli, tiny_llama

from rag.errors import ConfigError
from rag.metrics import (
    answer_tokens,
    bootstrap_ci,
    contains_gold,
    exact_match,
    normalize_answer,
    paired_test,
    rouge_l,
    token_f1,
)

# ------------------------------------------------------------------------------------------ answer metrics


def test_squad_normalisation_matches_the_official_script():
    # the official script: lower, drop string.punctuation, drop a/an/the as words, collapse whitespace
    assert normalize_answer("The Norman  Conquest, in 1066!") == "norman conquest in 1066"
    assert normalize_answer("Theater") == "theater"  # "the" only as a whole word
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("“Quoted”") == "“quoted”"  # non-ASCII punctuation is kept, as in the official script


def test_exact_match_and_f1_hand_computed():
    assert exact_match("The Normans.", ["Normans", "Norman people"]) == 1.0
    assert exact_match("Normans from France", ["Normans"]) == 0.0
    # prediction "normans from france" vs gold "normans": p = 1/3, r = 1 -> F1 = 0.5
    assert token_f1("Normans from France", ["Normans"]) == pytest.approx(0.5)
    # best over golds: "10th and 11th centuries" vs "10th century" (1 common of 4 / 2) and the same gold
    assert token_f1("10th and 11th centuries", ["10th century", "10th and 11th centuries"]) == 1.0
    assert token_f1("nothing shared", ["Normans"]) == 0.0
    assert token_f1("anything", []) == 0.0


def test_chinese_is_scored_by_character():
    assert answer_tokens("7天内") == ["7", "天", "内"]
    # gold "7天" vs prediction "7天内可以退货" (7 characters): common 2, p = 2/7, r = 2/2 -> F1 = 4/9
    assert token_f1("7天内可以退货", ["7天"]) == pytest.approx(4 / 9)
    assert exact_match("7 天。", ["7天"]) == 1.0  # punctuation and spaces do not count
    assert contains_gold("自签收之日起 7 天内可无理由退货 [1]", ["7天"]) == 1.0


def test_rouge_l_and_contains_hand_computed():
    # LCS of "hold reset button for 12 seconds" and "hold the reset button" (normalised: hold reset button) = 3
    # p = 3/6, r = 3/3 -> F = 2 * 0.5 * 1 / 1.5
    assert rouge_l("Hold RESET button for 12 seconds", ["hold the reset button"]) == pytest.approx(2 / 3)
    assert contains_gold("It takes 12 seconds [2].", ["12 seconds"]) == 1.0
    assert contains_gold("It takes 112 seconds.", ["12 seconds"]) == 0.0  # whole tokens, not substrings
    assert exact_match("12 seconds [1]", ["12 seconds"]) == 1.0  # the citation is not part of the answer


def test_bootstrap_interval_on_known_data():
    assert bootstrap_ci([0.7] * 20) == pytest.approx((0.7, 0.7, 0.7))
    mean, low, high = bootstrap_ci([0, 1] * 50)
    assert mean == 0.5
    # binomial standard error sqrt(.25/100) = 0.05: the 95% interval is about +-0.098
    assert 0.38 < low < 0.42 and 0.58 < high < 0.62
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert bootstrap_ci([0, 1] * 50) == bootstrap_ci([0, 1] * 50)  # seeded: reproducible


def test_paired_test_separates_real_and_null_differences():
    same = paired_test([1, 0, 1, 0] * 10, [1, 0, 1, 0] * 10)
    assert same["diff"] == 0 and same["p"] == 1.0
    better = paired_test([1] * 30, [0] * 30)
    assert better["diff"] == 1 and better["p"] < 0.001
    noise = paired_test([1, 0] * 15, [0, 1] * 15)  # as many wins as losses
    assert noise["p"] > 0.5
    with pytest.raises(ValueError, match="same questions"):
        paired_test([1, 0], [1])


# ------------------------------------------------------------------------------------------------- suites


def _questions(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


QUESTIONS = [
    {
        "id": "reset",
        "question": "How long do I hold the RESET button?",
        "answers": ["12 seconds"],
        "sources": ["router.md"],
        "answerable": True,
        "split": "test",
    },
    {
        "id": "ship",
        "question": "How much does express shipping cost?",
        "answers": ["14.90 euros"],
        "sources": ["shipping.txt"],
        "answerable": True,
        "split": "train",
    },
    {
        "id": "refund",
        "question": "退货需要在多少天内？",
        "answers": ["7 天"],
        "sources": ["退货.md"],
        "answerable": True,
        "split": "test",
    },
    {
        "id": "pets",
        "question": "Do you sell dog food?",
        "answers": [],
        "sources": [],
        "answerable": False,
        "split": "test",
    },
]


@pytest.fixture
def suite_file(tmp_path, kb):
    _questions(tmp_path / "q.jsonl", QUESTIONS)
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: tiny\ncorpus: kb\nquestions: q.jsonl\nconfig:\n  embed: {model: 'hash:64'}\n", encoding="utf-8"
    )
    return path


def test_suite_loads_with_defaults(suite_file):
    from rag.suite import SYSTEMS, load_suite

    suite = load_suite(suite_file)
    assert suite.name == "tiny" and suite.systems == list(SYSTEMS[:5])  # extractive only when asked for
    assert [q["id"] for q in suite.split("test")] == ["reset", "refund", "pets"]
    assert suite.split("test")[1]["lang"] == "zh"
    assert suite.config.embed.model == "hash:64"


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\nsystem: [rag]\n", "unknown key(s) ['system']"),
        ("corpus: kb\nquestions: q.jsonl\n", "`name` must be"),
        ("name: tiny\nquestions: q.jsonl\n", "`corpus` is required"),
        ("name: tiny\ncorpus: nowhere\nquestions: q.jsonl\n", "corpus"),
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\nsystems: [rag, finetuned]\n", "unknown system(s) ['finetuned']"),
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\nanswer_mode: creative\n", "`answer_mode` must be one of"),
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\ntrain: {steps: 0}\n", "must be positive"),
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\ntrain: {epochs: 3}\n", "unknown key(s) ['epochs']"),
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\nconfig: {answer: {kk: 3}}\n", "unknown key(s) ['kk']"),
        ("name: tiny\ncorpus: kb\nquestions: q.jsonl\nsquad: x.json\n", "not both"),
        ("name: [unclosed\n", "not valid YAML"),
        ("- a list\n", "a suite is a mapping"),
    ],
)
def test_suite_validation_errors(tmp_path, kb, text, message):
    from rag.suite import load_suite

    _questions(tmp_path / "q.jsonl", QUESTIONS)
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_suite(tmp_path / "s.yaml")
    assert message in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"split": "dev"}, '`split` must be "train" or "test"'),
        ({"answerable": "yes"}, "`answerable` must be true or false"),
        ({"answers": "12 seconds"}, "`answers` must be a list of strings"),
        ({"sources": ["missing.md"]}, "source(s) ['missing.md'] are not in the knowledge base"),
        ({"question": "  "}, "`question` must be a non-empty string"),
        ({"id": "ship"}, "duplicate id 'ship'"),
    ],
)
def test_question_validation_errors(tmp_path, kb, change, message):
    from rag.suite import load_suite

    rows = [dict(QUESTIONS[0], **change)] + QUESTIONS[1:]
    _questions(tmp_path / "q.jsonl", rows)
    (tmp_path / "s.yaml").write_text("name: t\ncorpus: kb\nquestions: q.jsonl\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_suite(tmp_path / "s.yaml")
    assert message in str(err.value)
    assert "line 1" in str(err.value) or "question 'reset'" in str(err.value) or "line 2" in str(err.value)


def test_suite_without_test_questions_is_refused(tmp_path, kb):
    from rag.suite import load_suite

    _questions(tmp_path / "q.jsonl", [dict(q, split="train") for q in QUESTIONS])
    (tmp_path / "s.json").write_text(json.dumps({"name": "t", "corpus": "kb", "questions": "q.jsonl"}))
    with pytest.raises(ConfigError, match="no test questions"):
        load_suite(tmp_path / "s.json")


SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Normans",
            "paragraphs": [
                {
                    "context": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "In what country is Normandy located?",
                            "is_impossible": True,
                            "answers": [],
                        },
                        {
                            "id": "q2",
                            "question": "When did the Normans name Normandy?",
                            "is_impossible": False,
                            "answers": [{"text": "10th and 11th centuries", "answer_start": 42}] * 2,
                        },
                    ],
                }
            ],
        },
        {
            "title": "Other",
            "paragraphs": [{"context": "Unused.", "qas": [{"id": "q3", "question": "x?", "answers": [{"text": "y"}]}]}],
        },
    ],
}
CMRC = [
    {
        "context_id": "DEV_0",
        "title": "退货",
        "context_text": "自签收之日起 7 天内可无理由退货。",
        "qas": [{"query_id": "DEV_0_Q0", "query_text": "多少天内可以退货？", "answers": ["7 天", "7 天"]}],
    }
]


def test_public_loaders_turn_paragraphs_into_documents(tmp_path):
    from rag.suite import load_suite

    (tmp_path / "squad.json").write_text(json.dumps(SQUAD), encoding="utf-8")
    (tmp_path / "cmrc.json").write_text(json.dumps(CMRC, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "s.yaml").write_text("name: s\nsquad: squad.json\nselect: {documents: 1, test_share: 1.0}\n")
    suite = load_suite(tmp_path / "s.yaml")
    assert suite.documents == [
        {"id": "Normans/000", "title": "Normans", "text": SQUAD["data"][0]["paragraphs"][0]["context"]}
    ]
    by_id = {q["id"]: q for q in suite.questions}
    assert set(by_id) == {"q1", "q2"}  # the second article is not selected
    assert by_id["q1"]["answerable"] is False and by_id["q1"]["answers"] == []
    assert by_id["q2"]["answers"] == ["10th and 11th centuries"] and by_id["q2"]["sources"] == ["Normans/000"]

    (tmp_path / "c.yaml").write_text("name: c\ncmrc: cmrc.json\n")
    suite = load_suite(tmp_path / "c.yaml")
    assert suite.questions[0]["answers"] == ["7 天"] and suite.questions[0]["lang"] == "zh"
    assert suite.questions[0]["split"] == "test"  # one question: at least one test question

    with pytest.raises(ConfigError, match="--data PATH"):
        load_suite(tmp_path / "c.yaml", data=tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="does not look like"):
        load_suite(tmp_path / "s.yaml", data=tmp_path / "bad.json")


def test_beir_suite_has_retrieval_questions(tmp_path):
    from rag.suite import load_suite

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n')
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "alpha?"}\n')
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (tmp_path / "b.yaml").write_text("name: b\nbeir: beir\n")
    suite = load_suite(tmp_path / "b.yaml")
    assert suite.questions[0]["sources"] == ["d1"] and suite.questions[0]["answers"] == []


def test_materialise_keeps_unchanged_files_and_sanitises_ids(tmp_path):
    from rag.harness import materialise

    docs = [{"id": "../../etc/passwd", "title": "", "text": "x"}, {"id": "a/b c", "title": "T", "text": "y"}]
    mapping = materialise(docs, tmp_path / "kb")
    assert all(not rel.startswith("..") and ".." not in rel.split("/") for rel in mapping)
    assert (tmp_path / "kb" / "a" / "b_c.md").read_text() == "# T\n\ny\n"
    before = (tmp_path / "kb" / "a" / "b_c.md").stat().st_mtime_ns
    materialise(docs[1:], tmp_path / "kb")
    assert (tmp_path / "kb" / "a" / "b_c.md").stat().st_mtime_ns == before
    assert len(list((tmp_path / "kb").rglob("*.md"))) == 1  # the dropped document's file is gone


# ------------------------------------------------------------------------------------------------ harness


def _fake_train(calls):
    def train(examples, out, options):
        calls.append((len(examples), out, options.max_steps))
        out.mkdir(parents=True)
        (out / "adapter_config.json").write_text("{}")
        result = {
            "method": "lora",
            "steps": options.max_steps,
            "seconds": 1.5,
            "trainable_params": 10,
            "total_params": 100,
        }
        (out / "rag_tune.json").write_text(json.dumps({"metrics": result}))
        return result

    return train


def test_report_on_a_tiny_run_with_fakes(suite_file, tmp_path, hash_embedder):
    from rag.harness import run_eval
    from rag.report import check_thresholds, write_report
    from rag.suite import load_suite

    suite = load_suite(suite_file)
    # the fake model quotes the gold answer of the reset question and refuses the rest
    gen = FakeGenerator(
        lambda p: "Hold it for 12 seconds [1]." if "RESET" in p else "I could not find this in the knowledge base."
    )
    calls = []
    run = run_eval(
        suite,
        systems="closed-book,rag,ft+rag,raft+rag",
        work=tmp_path / "work",
        embedder=hash_embedder,
        generator_for=lambda adapter: gen,
        train=_fake_train(calls),
        log=lambda msg: None,
    )
    assert [c[2] for c in calls] == [60, 60]  # ft and raft, each with the suite's default budget
    rows = run.rows["rag"]
    assert [r["id"] for r in rows] == ["reset", "refund", "pets"]
    reset = rows[0]
    assert reset["scores"]["accuracy"] == 1.0 and reset["scores"]["em"] == 0.0
    assert reset["scores"]["recall@3"] == 1.0 and reset["retrieved"][0]["source"] == "router.md"
    assert reset["prompt"] and "RESET" in reset["prompt"]
    assert rows[2]["scores"]["refusal_accuracy"] == 1.0  # unanswerable and refused
    assert run.rows["closed-book"][0]["retrieved"] == [] and "recall@3" not in run.rows["closed-book"][0]["scores"]

    summary = write_report(run, tmp_path / "report")
    files = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.md", "metrics.json", "predictions.jsonl", "config.json", "answers.png", "latency.png"} <= files
    lines = (tmp_path / "report" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 * 3
    # a score can be recomputed from a prediction line alone
    row = json.loads(lines[1])
    assert token_f1(row["answer"], row["answers"]) == pytest.approx(row["scores"]["f1"])
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["systems"]["rag"]["metrics"]["accuracy"]["n"] == 3
    assert metrics["training"]["ft"]["trainable_params"] == 10
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| rag |" in report and "Balaguer" in report and "Training cost" in report
    config = json.loads((tmp_path / "report" / "config.json").read_text())
    assert config["versions"]["rag"] and config["suite"]["name"] == "tiny"

    assert check_thresholds(summary, {"rag": {"recall@3": 0.9, "false_refusal": {"max": 0.6}}}) == []
    failures = check_thresholds(summary, {"rag": {"accuracy": 0.99}, "ft": {"accuracy": 0.1}})
    assert failures[0].startswith("rag accuracy = 0.667, below the threshold 0.99")
    assert "ft: not in this run" in failures[1]

    # a second run reuses the trained adapters (same data, same settings)
    run_eval(
        suite,
        systems="ft+rag",
        work=tmp_path / "work",
        embedder=hash_embedder,
        generator_for=lambda a: gen,
        train=_fake_train(calls),
        log=lambda m: None,
    )
    assert len(calls) == 2


def test_eval_cli_trains_and_checks_thresholds(tmp_path, kb):
    """The whole command on real code paths: the hash embedder, a tiny random Llama as the base model, a real
    2-step LoRA run, a report, and the threshold check's exit code."""
    tiny_llama(tmp_path / "llama")
    _questions(tmp_path / "q.jsonl", QUESTIONS)
    (tmp_path / "suite.yaml").write_text(
        "name: cli\ncorpus: kb\nquestions: q.jsonl\nsystems: [rag, raft+rag]\n"
        "train: {steps: 2, batch_size: 2}\n"
        f"config:\n  embed: {{model: 'hash:64'}}\n  generate: {{model: '{tmp_path / 'llama'}', max_new_tokens: 4}}\n",
        encoding="utf-8",
    )
    (tmp_path / "ok.json").write_text(json.dumps({"rag": {"recall@3": 0.5}}))
    (tmp_path / "high.json").write_text(json.dumps({"raft+rag": {"recall@3": 1.01}}))
    done = run_cli("eval", "suite.yaml", "--out", "r", "--check", "ok.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "thresholds ok.json: all met" in done.stdout
    meta = json.loads(next((tmp_path / "eval" / "work" / "cli" / "adapters").glob("raft-*/rag_tune.json")).read_text())
    assert meta["metrics"]["steps"] == 2
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["training"]["raft"]["source"] == "trained"
    done = run_cli("eval", "suite.yaml", "--out", "r", "--check", "high.json", "--systems", "raft+rag", cwd=tmp_path)
    assert done.returncode == 3
    assert "raft+rag recall@3 = 1.000, above" not in done.stderr and "below the threshold 1.01" in done.stderr
    assert (tmp_path / "r" / "report.md").is_file()  # the report is left for inspection


def test_eval_cli_errors_are_one_line(tmp_path):
    done = run_cli("eval", "nowhere.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "suite file nowhere.yaml does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("eval", "x.yaml", "--systems", "best", cwd=tmp_path)
    assert done.returncode == 1


def test_public_data_with_odd_records(tmp_path):
    from rag.suite import load_suite

    odd = [dict(CMRC[0], qas=[{"query_id": "Q1", "query_text": "几年？", "answers": [1998, " "]}])]
    (tmp_path / "odd.json").write_text(json.dumps(odd, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("name: c\ncmrc: odd.json\n")
    assert load_suite(tmp_path / "c.yaml").questions[0]["answers"] == ["1998"]  # numbers become text, blanks go
    broken = [{"context_id": "X", "qas": []}]  # no context_text
    (tmp_path / "odd.json").write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match="lacks a field CMRC data has"):
        load_suite(tmp_path / "c.yaml")
    (tmp_path / "odd.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ConfigError, match="is not a CMRC JSON file"):
        load_suite(tmp_path / "c.yaml")


def test_adapter_cache_key_ignores_settings_left_at_their_defaults():
    from rag.harness import adapter_key
    from rag.tune import TuneOptions
    from rag.tunedata import Example

    examples = [Example(text="Hold RESET for 12 seconds.")]
    assert adapter_key("ft", TuneOptions(), examples) == adapter_key("ft", TuneOptions(dropout=0.05), examples)
    assert adapter_key("ft", TuneOptions(), examples) != adapter_key("ft", TuneOptions(lr=1e-3), examples)
    assert adapter_key("ft", TuneOptions(), examples) != adapter_key("raft", TuneOptions(), examples)
    assert adapter_key("ft", TuneOptions(), examples) != adapter_key("ft", TuneOptions(), examples * 2)


def test_corpus_jsonl_suites(tmp_path):
    from rag.suite import load_suite

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": "d1", "title": "Router", "text": "Hold RESET for 12 seconds."}\n\n{"id": "d2", "text": "x"}\n'
    )
    _questions(tmp_path / "q.jsonl", [dict(QUESTIONS[0], sources=["d1"])])
    (tmp_path / "s.yaml").write_text("name: c\ncorpus: corpus.jsonl\nquestions: q.jsonl\n")
    suite = load_suite(tmp_path / "s.yaml")
    assert [d["id"] for d in suite.documents] == ["d1", "d2"] and suite.documents[0]["title"] == "Router"
    corpus.write_text('{"id": "d1", "text": "a"}\n{"id": "d1", "text": "b"}\n')
    with pytest.raises(ConfigError, match="record 2: duplicate document id 'd1'"):
        load_suite(tmp_path / "s.yaml")
    corpus.write_text('{"id": "d1", "body": "a"}\n')
    with pytest.raises(ConfigError, match='looks like {"id"'):
        load_suite(tmp_path / "s.yaml")
    corpus.write_text("not json\n")
    with pytest.raises(ConfigError, match="line 1 is not valid JSON"):
        load_suite(tmp_path / "s.yaml")
