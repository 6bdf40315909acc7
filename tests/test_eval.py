"""Evaluation suites and the harness: suite validation, public-data suites, a run with fakes, `rag eval`.
The loaders are tested in test_datasets.py, the scores in test_metrics.py, the report in test_report.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeGenerator, run_cli, tiny_llama
from test_datasets import CMRC_DEV, SQUAD

from rag.errors import ConfigError
from rag.eval.metrics import token_f1

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
        "name: tiny\ncorpus: kb\nquestions: q.jsonl\nconfig:\n  embed: {model: 'hash:64'}\n  answer: {scorer: none}\n",
        encoding="utf-8",
    )
    return path


def test_suite_loads_with_defaults(suite_file):
    from rag.eval.suite import load_suite
    from rag.eval.systems import DEFAULT

    suite = load_suite(suite_file)
    assert suite.name == "tiny" and suite.systems == list(DEFAULT)  # extractive only when asked for
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
    from rag.eval.suite import load_suite

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
    from rag.eval.suite import load_suite

    rows = [dict(QUESTIONS[0], **change)] + QUESTIONS[1:]
    _questions(tmp_path / "q.jsonl", rows)
    (tmp_path / "s.yaml").write_text("name: t\ncorpus: kb\nquestions: q.jsonl\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_suite(tmp_path / "s.yaml")
    assert message in str(err.value)
    assert "line 1" in str(err.value) or "question 'reset'" in str(err.value) or "line 2" in str(err.value)


def test_suite_without_test_questions_is_refused(tmp_path, kb):
    from rag.eval.suite import load_suite

    _questions(tmp_path / "q.jsonl", [dict(q, split="train") for q in QUESTIONS])
    (tmp_path / "s.json").write_text(json.dumps({"name": "t", "corpus": "kb", "questions": "q.jsonl"}))
    with pytest.raises(ConfigError, match="no test questions"):
        load_suite(tmp_path / "s.json")


def test_public_data_suites_select_sample_and_split(tmp_path):
    from rag.eval.suite import load_suite

    (tmp_path / "squad.json").write_text(json.dumps(SQUAD), encoding="utf-8")
    (tmp_path / "cmrc.json").write_text(json.dumps(CMRC_DEV, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "s.yaml").write_text("name: s\nsquad: squad.json\nselect: {documents: 1, test_share: 1.0}\n")
    suite = load_suite(tmp_path / "s.yaml")
    assert [d["id"] for d in suite.documents] == ["Normans/000", "Normans/001"]
    by_id = {q["id"]: q for q in suite.questions}
    assert set(by_id) == {"q1", "q2"}  # the second article is not selected
    assert by_id["q1"]["answerable"] is False and by_id["q2"]["sources"] == ["Normans/000"]
    assert {q["split"] for q in suite.questions} == {"test"} and by_id["q2"]["lang"] == "en"
    assert suite.origin["select"]["documents"] == 1

    (tmp_path / "c.yaml").write_text("name: c\ncmrc: cmrc.json\n")
    suite = load_suite(tmp_path / "c.yaml")
    assert suite.questions[0]["answers"] == ["7 天", "7"] and suite.questions[0]["lang"] == "zh"
    assert suite.questions[0]["split"] == "test"  # one question: at least one test question

    with pytest.raises(ConfigError, match="--data PATH"):
        load_suite(tmp_path / "c.yaml", data=tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="does not look like"):
        load_suite(tmp_path / "s.yaml", data=tmp_path / "bad.json")
    (tmp_path / "q.yaml").write_text("name: s\nsquad: squad.json\nselect: {questions: 0}\n")
    with pytest.raises(ConfigError, match="select `questions` must be a positive whole number"):
        load_suite(tmp_path / "q.yaml")
    (tmp_path / "q.yaml").write_text("name: s\nsquad: squad.json\nselect: [1]\n")
    with pytest.raises(ConfigError, match="`select` must be a mapping"):
        load_suite(tmp_path / "q.yaml")
    (tmp_path / "q.yaml").write_text("name: s\nsquad: squad.json\nselect: {withhold: 1.0}\n")
    with pytest.raises(ConfigError, match="select `withhold` must be a share"):
        load_suite(tmp_path / "q.yaml")


def test_withheld_documents_turn_their_questions_unanswerable(tmp_path):
    """Data without unanswerable questions of its own (CMRC) gets them as RAFT makes negatives: some paragraphs
    leave the knowledge base, their questions stay, with no answer and no source; the split is seeded."""
    from rag.eval.suite import load_suite

    paragraphs = [
        {
            "id": f"P{n}",
            "context": f"第{n}号产品的保修期为{n}年。",
            "qas": [
                {
                    "id": f"Q{n}",
                    "question": f"第{n}号产品保修多久？",
                    "answers": [{"text": f"{n}年", "answer_start": 7}],
                }
            ],
        }
        for n in range(1, 21)
    ]
    (tmp_path / "cmrc.json").write_text(json.dumps({"data": [{"paragraphs": paragraphs}]}, ensure_ascii=False))
    (tmp_path / "w.yaml").write_text("name: w\ncmrc: cmrc.json\nselect: {withhold: 0.25, test_share: 1.0}\n")
    suite = load_suite(tmp_path / "w.yaml")
    kept = {d["id"] for d in suite.documents}
    unanswerable = [q for q in suite.questions if not q["answerable"]]
    assert len(kept) == 15 and len(unanswerable) == 5 and len(suite.questions) == 20
    assert all(q["answers"] == [] and q["sources"] == [] for q in unanswerable)
    assert all(set(q["sources"]) <= kept and q["answers"] for q in suite.questions if q["answerable"])
    assert {q["id"] for q in load_suite(tmp_path / "w.yaml").questions if not q["answerable"]} == {
        q["id"] for q in unanswerable
    }
    assert suite.origin["select"]["withhold"] == 0.25
    # a question with another source left stays answerable, with that source
    from rag.eval.suite import Selection, _withhold

    docs = [{"id": f"d{n}", "text": "x"} for n in range(4)]
    asked = [{"id": "q", "question": "?", "answers": ["x"], "answerable": True, "sources": ["d0", "d1", "d2", "d3"]}]
    kept, (q,) = _withhold(docs, asked, Selection(withhold=0.5))
    assert len(kept) == 2 and q["answerable"] and q["sources"] == [d["id"] for d in kept]


def test_materialise_keeps_unchanged_files_and_sanitises_ids(tmp_path):
    from rag.eval.harness import materialise

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
    from rag.eval.harness import run_eval
    from rag.eval.report import check_thresholds, write_report
    from rag.eval.suite import load_suite

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
    # provenance: the commit, and whether tracked files differed from it (None outside a git checkout)
    assert config["git_uncommitted_changes"] in ((True, False) if config["git_commit"] else (None,))

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


def test_in_the_extractive_answer_mode_the_report_says_no_generator_ran(suite_file, tmp_path, hash_embedder):
    """With `answer_mode: extractive` the RAG systems answer as `extractive` does: the report said they were the
    base model or an adapter over passages and tested "reader+rag > rag" (inconclusive, as if measured), and an
    adapter folder without weights "scored" like the reader. Now nothing is trained or loaded for them, and the
    report, metrics.json and predictions say how each system answered."""
    from rag.eval.harness import run_eval
    from rag.eval.report import write_report
    from rag.eval.suite import load_suite

    suite = load_suite(suite_file)
    suite.answer_mode = "extractive"
    gen = FakeGenerator(lambda p: "I could not find this in the knowledge base.")
    calls, logged = [], []
    run = run_eval(
        suite,
        systems="closed-book,rag,reader+rag,raft+rag,extractive",
        work=tmp_path / "work",
        embedder=hash_embedder,
        generator_for=lambda adapter: gen,
        train=_fake_train(calls),
        log=logged.append,
    )
    assert calls == [] and run.training == {}  # no RAFT adapter trained for a system that would not use it
    assert run.modes == {
        "closed-book": "closed-book",
        "rag": "extractive",
        "reader+rag": "extractive",
        "raft+rag": "extractive",
        "extractive": "extractive",
    }
    assert any("rag, reader+rag, raft+rag answer as the `extractive` system does" in m for m in logged)
    assert all(r["generator"] is None for s in ("rag", "reader+rag", "extractive") for r in run.rows[s])
    assert [r["answer"] for r in run.rows["reader+rag"]] == [r["answer"] for r in run.rows["extractive"]]

    summary = write_report(run, tmp_path / "report")
    assert summary["systems"]["rag"]["answer_mode"] == "extractive" and not summary["systems"]["rag"]["generator"]
    assert summary["systems"]["closed-book"]["generator"]
    verdicts = {(e["better"], e["worse"]): e for e in summary["expectations"]}
    assert verdicts[("reader+rag", "rag")]["verdict"] == "not tested"
    assert "rag answered extractively" in verdicts[("raft+rag", "rag")]["reason"]
    assert verdicts[("rag", "closed-book")]["verdict"] == "not tested"  # the claim is about the base model
    pair = next(p for p in summary["paired"] if {p["a"], p["b"]} == {"rag", "reader+rag"})
    assert "neither ran a language model" in pair["note"]
    assert "note" not in next(p for p in summary["paired"] if {p["a"], p["b"]} == {"closed-book", "rag"})

    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "**Answer mode `extractive`: `rag`, `reader+rag`, `raft+rag` answered extractively" in report
    assert "`reader+rag`, the reader adapter shipped with rag" in report
    assert "(here answered extractively: no language model or adapter ran)" in report
    assert "reader-lora" not in report  # no adapter is listed for a system that did not use it
    assert "| closed book |" in report and "| extractive, no language model |" in report
    assert "| **not tested**: reader+rag and rag answered extractively" in report
    assert "inconclusive" not in report
    config = json.loads((tmp_path / "report" / "config.json").read_text())
    assert config["suite"]["answer_modes"]["raft+rag"] == "extractive"


def test_eval_cli_trains_and_checks_thresholds(tmp_path, kb):
    """The whole command on real code paths: the hash embedder, a tiny random Llama as the base model, a real
    2-step LoRA run, a report, and the threshold check's exit code."""
    tiny_llama(tmp_path / "llama")
    _questions(tmp_path / "q.jsonl", QUESTIONS)
    (tmp_path / "suite.yaml").write_text(
        "name: cli\ncorpus: kb\nquestions: q.jsonl\nsystems: [rag, raft+rag]\n"
        "train: {steps: 2, batch_size: 2}\n"
        f"config:\n  embed: {{model: 'hash:64'}}\n  answer: {{scorer: none}}\n"
        f"  generate: {{model: '{tmp_path / 'llama'}', max_new_tokens: 4}}\n",
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


def test_eval_cli_reads_retrained_models_over_the_suites(tmp_path, suite_file):
    """--reader (like --scorer and --asks) replaces the suite's own setting for this run and is recorded in the
    report: a reader refitted to refuse everything refuses every test question."""
    weights = json.loads((Path(__file__).parents[1] / "rag" / "weights" / "reader-lexical.json").read_text())
    for group in weights["refusal"].values():
        group["threshold"] = 0.9999
    (tmp_path / "strict.json").write_text(json.dumps(weights))
    done = run_cli("eval", "suite.yaml", "--systems", "extractive", "--out", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        json.loads((tmp_path / "r" / "metrics.json").read_text())["systems"]["extractive"]["metrics"]["false_refusal"][
            "mean"
        ]
        < 1
    )
    done = run_cli(
        "eval", "suite.yaml", "--systems", "extractive", "--reader", "strict.json", "--out", "s", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "s" / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(r["refused"] for r in rows)
    assert json.loads((tmp_path / "s" / "config.json").read_text())["config"]["answer"]["reader"] == "strict.json"
    done = run_cli("eval", "suite.yaml", "--systems", "extractive", "--reader", "nowhere.json", cwd=tmp_path)
    assert done.returncode == 1 and "nowhere.json" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("eval", "suite.yaml", "--systems", "extractive", "--char-scorer", "nowhere", cwd=tmp_path)
    assert done.returncode == 1 and "not a character scorer folder" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("--config", "rag.toml", "eval", "suite.yaml", "--systems", "extractive", "--out", "t", cwd=tmp_path)
    assert done.returncode == 0 and "rag.toml is not read" in done.stderr


def test_eval_cli_errors_are_one_line(tmp_path):
    done = run_cli("eval", "nowhere.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "suite file nowhere.yaml does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("eval", "x.yaml", "--systems", "best", cwd=tmp_path)
    assert done.returncode == 1


def test_adapter_cache_key_ignores_settings_left_at_their_defaults():
    from rag.eval.harness import adapter_key
    from rag.tune import TuneOptions
    from rag.tunedata import Example

    examples = [Example(text="Hold RESET for 12 seconds.")]
    assert adapter_key("ft", TuneOptions(), examples) == adapter_key("ft", TuneOptions(dropout=0.05), examples)
    assert adapter_key("ft", TuneOptions(), examples) != adapter_key("ft", TuneOptions(lr=1e-3), examples)
    assert adapter_key("ft", TuneOptions(), examples) != adapter_key("raft", TuneOptions(), examples)
    assert adapter_key("ft", TuneOptions(), examples) != adapter_key("ft", TuneOptions(), examples * 2)


def test_corpus_jsonl_suites(tmp_path):
    from rag.eval.suite import load_suite

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": "d1", "title": "Router", "text": "Hold RESET for 12 seconds."}\n{"id": "d2", "text": "x"}\n'
    )
    _questions(tmp_path / "q.jsonl", [dict(QUESTIONS[0], sources=["d1"])])
    (tmp_path / "s.yaml").write_text("name: c\ncorpus: corpus.jsonl\nquestions: q.jsonl\n")
    suite = load_suite(tmp_path / "s.yaml")
    assert [d["id"] for d in suite.documents] == ["d1", "d2"] and suite.documents[0]["title"] == "Router"
    corpus.write_text('{"id": "d1", "text": "a"}\n{"id": "d1", "text": "b"}\n')
    with pytest.raises(ConfigError, match="line 2: duplicate document id 'd1'"):
        load_suite(tmp_path / "s.yaml")


def test_an_answer_stating_a_number_its_cited_passage_lacks_is_scored_ungrounded():
    from rag.eval.harness import score_row
    from rag.types import Answer, Chunk, Hit

    hits = [
        Hit(1, 0.9, Chunk("kb/a.md#0", "kb/a.md", 0, "Hold RESET for 12 seconds.")),
        Hit(2, 0.5, Chunk("kb/b.md#0", "kb/b.md", 0, "Returns are accepted within 30 days.")),
        Hit(3, 0.4, Chunk("kb/c.md#0", "kb/c.md", 0, "Only for visitors.", context="Kestrel Pass > 2. Who can buy")),
    ]
    q = {
        "id": "q",
        "question": "How long?",
        "lang": "en",
        "answerable": True,
        "answers": ["12 seconds"],
        "sources": ["kb/a.md"],
    }

    def scores(text: str, citations: list[int], refused: bool = False) -> dict:
        answer = Answer("How long?", text, refused, sources=hits, citations=citations)
        return score_row("rag", q, answer, None, None, 3, 0.1)["scores"]

    assert scores("Hold it for 12 seconds [1].", [1])["ungrounded"] == 0.0
    assert scores("Hold it for 15 seconds [1].", [1])["ungrounded"] == 1.0
    assert scores("Hold it for 30 seconds [1].", [1])["ungrounded"] == 1.0  # in a passage it does not cite
    assert scores("Hold it for 30 seconds.", [])["ungrounded"] == 0.0  # uncited: judged on all it read
    assert scores("2. Who can buy: Only for visitors [3].", [3])["ungrounded"] == 0.0  # shown under its heading
    assert scores("I could not find this.", [], refused=True)["ungrounded"] is None


@pytest.mark.parametrize("name", ["scorer", "reader-lora"])
def test_shipped_adapters_carry_a_training_record_the_report_can_read(name):
    from pathlib import Path

    import rag
    from rag.adapters import read_meta
    from rag.eval.harness import _cost

    cost = _cost(read_meta(Path(rag.__file__).parent / "weights" / name))
    for key in ("seconds", "train_loss", "eval_loss"):  # the report divides and rounds these
        assert cost[key] is None or isinstance(cost[key], (int, float)), (key, cost[key])
    assert any(cost[key] is not None for key in ("seconds", "eval_loss"))
