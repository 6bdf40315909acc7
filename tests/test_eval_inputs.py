"""What `rag eval` reads before it runs anything: question records, thresholds, and the settings it ignores."""

from __future__ import annotations

import json

import pytest
from test_eval import QUESTIONS, _questions

from rag.errors import ConfigError

# ----------------------------------------------------------------------------------------- question records


def _load_with(tmp_path, record: dict):
    from rag.eval.suite import load_suite

    _questions(tmp_path / "q.jsonl", QUESTIONS + [record])
    (tmp_path / "s.yaml").write_text("name: t\ncorpus: kb\nquestions: q.jsonl\n", encoding="utf-8")
    return load_suite(tmp_path / "s.yaml")


ANSWERABLE = {"id": "x7", "question": "How long is the warranty?", "sources": ["router.md"], "answerable": True}


@pytest.mark.parametrize(
    "record",
    [
        {**ANSWERABLE, "split": "test"},  # no answers key
        {**ANSWERABLE, "answers": [], "split": "test"},
        {**ANSWERABLE, "answers": ["  "], "split": "train"},
    ],
)
def test_an_answerable_question_without_gold_answers_is_refused(tmp_path, kb, record):
    """It used to count in false refusals but not in accuracy: accuracy 100 and false refusal 25 in one row."""
    with pytest.raises(ConfigError) as err:
        _load_with(tmp_path, record)
    message = str(err.value)
    assert "q.jsonl line 5" in message and "'x7'" in message and "answerable but has no gold answers" in message
    assert '"answers": [' in message and '"answerable": false' in message  # both ways to fix it


def test_an_unanswerable_question_needs_no_answers(tmp_path, kb):
    suite = _load_with(tmp_path, {**ANSWERABLE, "answerable": False, "sources": [], "split": "test"})
    assert suite.questions[-1]["answers"] == [] and not suite.questions[-1]["answerable"]


def test_unknown_keys_of_a_question_record_are_named(tmp_path, kb):
    """The README's promise for suites ("mistakes are reported with the file, line and key") holds for the
    question records too: "answer" for "answers" is reported with the key it most likely means."""
    with pytest.raises(ConfigError) as err:
        _load_with(tmp_path, {**ANSWERABLE, "answer": "2 years", "split": "test"})
    message = str(err.value)
    assert "q.jsonl line 5 (question 'x7'): unknown key(s) ['answer']" in message
    assert "did you mean 'answers' for 'answer'?" in message
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['notes'\]; a question record's keys are"):
        _load_with(tmp_path, {**ANSWERABLE, "answers": ["2 years"], "split": "test", "notes": "x"})
    suite = _load_with(tmp_path, {**ANSWERABLE, "answers": ["2 years"], "split": "test", "lang": "en"})
    assert suite.questions[-1]["answers"] == ["2 years"]
    meta = {**ANSWERABLE, "answers": ["2 years"], "split": "test", "meta": {"category": "warranty"}}
    assert _load_with(tmp_path, meta).questions[-1]["answers"] == ["2 years"]  # a team's own fields


def test_the_bundled_question_files_are_valid(tmp_path):
    """The stricter checks accept every question file the repository's suites use."""
    from pathlib import Path

    from rag.eval.suite import read_questions

    root = Path(__file__).parents[1] / "eval"
    files = [root / "questions.jsonl", *sorted((root / "heldout").glob("*-questions.jsonl"))]
    assert len(files) >= 4
    for path in files:
        assert read_questions(path)


# ----------------------------------------------------------------------------------------------- thresholds


def _summary(**means) -> dict:
    metrics = {name: {"mean": value} for name, value in means.items() if not name.startswith("latency_p")}
    latency = {name: value for name, value in means.items() if name.startswith("latency_p")}
    return {"systems": {"extractive": {"metrics": metrics, **latency}}}


def test_a_bare_threshold_is_a_maximum_where_lower_is_better(tmp_path):
    """{"false_refusal": 0.01} passed at 7.1% false refusals: a bare number was a minimum for every metric."""
    from rag.eval.report import check_thresholds, read_thresholds

    path = tmp_path / "t.json"
    path.write_text(json.dumps({"extractive": {"false_refusal": 0.01, "latency_p50_s": 1.0, "accuracy": 0.5}}))
    limits = read_thresholds(path)
    failures = check_thresholds(_summary(false_refusal=0.071, latency_p50_s=2.5, accuracy=0.9), limits)
    assert failures == [
        "extractive false_refusal = 0.071, above the threshold 0.01",
        "extractive latency_p50_s = 2.500, above the threshold 1.0",
    ]
    assert check_thresholds(_summary(false_refusal=0.0, latency_p50_s=0.1, accuracy=0.9), limits) == []
    assert check_thresholds(_summary(false_refusal=0.0, latency_p50_s=0.1, accuracy=0.4), limits) == [
        "extractive accuracy = 0.400, below the threshold 0.5"
    ]
    # the explicit forms keep their meaning
    explicit = {"extractive": {"false_refusal": {"min": 0.01}, "ungrounded": {"max": 0.1}}}
    assert check_thresholds(_summary(false_refusal=0.0, ungrounded=0.2), explicit) == [
        "extractive false_refusal = 0.000, below the threshold 0.01",
        "extractive ungrounded = 0.200, above the threshold 0.1",
    ]
    path.write_text(json.dumps({"extractive": {"false_refusal": "low"}}))
    with pytest.raises(ConfigError, match=r"a limit is a number \(the maximum: lower is better\)"):
        read_thresholds(path)


def test_the_shipped_ci_thresholds_mean_what_they_meant():
    """Every CI file writes limits of lower-is-better metrics as {"max": x}: reading a bare number as a maximum
    there changes none of them."""
    from pathlib import Path

    from rag.eval.metrics import LOWER_IS_BETTER
    from rag.eval.report import as_bounds, read_thresholds

    for path in sorted((Path(__file__).parents[1] / "eval" / "thresholds").glob("ci-*.json")):
        for system, limits in read_thresholds(path).items():
            if system.startswith("_"):
                continue
            for metric, limit in limits.items():
                assert as_bounds(metric, limit) == (limit if isinstance(limit, dict) else {"min": limit})
                assert metric not in LOWER_IS_BETTER or isinstance(limit, dict)


def test_an_unknown_metric_in_thresholds_is_a_bad_file(tmp_path):
    from rag.eval.report import read_thresholds

    path = tmp_path / "t.json"
    path.write_text(json.dumps({"extractive": {"accuracyy": 0.95, "recall@5": 0.9}}))
    with pytest.raises(ConfigError) as err:
        read_thresholds(path)
    assert "extractive: unknown metric 'accuracyy' (did you mean 'accuracy'?)" in str(err.value)
    assert str(path) in str(err.value)
    path.write_text(json.dumps({"extractive": {"recall@5": 0.9, "ndcg@10": 0.9, "latency_p95_s": {"max": 3}}}))
    assert read_thresholds(path)


def _suite(tmp_path):
    _questions(tmp_path / "q.jsonl", QUESTIONS)
    (tmp_path / "suite.yaml").write_text(
        "name: t\ncorpus: kb\nquestions: q.jsonl\nsystems: [extractive]\n"
        "config:\n  embed: {model: 'hash:64'}\n  answer: {scorer: none}\n",
        encoding="utf-8",
    )


def test_thresholds_for_systems_the_run_leaves_out_are_refused_before_it_runs(tmp_path, kb):
    from conftest import run_cli

    _suite(tmp_path)
    (tmp_path / "t.json").write_text(json.dumps({"rag": {"accuracy": 0.5}, "extractive": {"accuracy": 0.5}}))
    done = run_cli("eval", "suite.yaml", "--check", "t.json", "--out", "r", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "t.json sets limits for rag, which this run does not include (systems: extractive)" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "eval").exists()  # nothing ran


# --------------------------------------------------------------------------------------- settings not read


def test_rag_eval_says_it_does_not_read_the_rag_toml_in_the_working_folder(tmp_path, kb, monkeypatch):
    """`rag calibrate` tells its user to put the reader in rag.toml; `rag eval` then measured the bundled one
    without a word (it spoke only of --config)."""
    from conftest import run_cli

    from rag.cli.evaluate import unread_config_notice

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAG_CONFIG", raising=False)
    assert unread_config_notice(None) is None
    (tmp_path / "rag.toml").write_text('[answer]\nreader = "my-reader.json"\nk = 5\n', encoding="utf-8")
    notice = unread_config_notice(None)
    assert notice.startswith("rag eval: rag.toml is not read: a suite carries its own settings")
    assert "add --reader my-reader.json" in notice
    (tmp_path / "other.toml").write_text("[answer]\nk = 5\n", encoding="utf-8")
    assert "other.toml is not read" in unread_config_notice("other.toml")
    assert "--reader FILE" in unread_config_notice("other.toml")
    monkeypatch.setenv("RAG_CONFIG", "other.toml")
    assert "other.toml is not read" in unread_config_notice(None)

    _suite(tmp_path)
    (tmp_path / "t.json").write_text(json.dumps({"rag": {"accuracy": 0.5}}))  # stops it before it runs
    done = run_cli("eval", "suite.yaml", "--check", "t.json", cwd=tmp_path, env={"RAG_CONFIG": ""})
    assert "rag.toml is not read" in done.stderr and "add --reader my-reader.json" in done.stderr


def test_a_reader_or_scorer_that_cannot_be_used_stops_rag_eval_before_it_runs(tmp_path, kb):
    # a bad --reader failed only once the systems before it had answered every question
    from conftest import run_cli

    _suite(tmp_path)
    done = run_cli("eval", "suite.yaml", "--reader", "nowhere.json", "--out", "r", cwd=tmp_path)
    assert done.returncode == 1 and "reader file nowhere.json does not exist" in done.stderr
    done = run_cli("eval", "suite.yaml", "--scorer", "no-scorer", "--out", "r", cwd=tmp_path)
    assert done.returncode == 1 and "is not a scorer folder" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "eval").exists()  # nothing ran
    done = run_cli("eval", "suite.yaml", "--out", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "Reading models: reader `bundled`, scorer `none`" in report  # which reader read these answers


def test_a_suite_whose_embedder_changed_rebuilds_its_cached_index(tmp_path, kb):
    # the cache under eval/work/<name>/ told the user to run `rag index --rebuild` on a folder they never made
    from conftest import run_cli

    _suite(tmp_path)
    assert run_cli("eval", "suite.yaml", "--out", "r", cwd=tmp_path).returncode == 0
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite.read_text(encoding="utf-8").replace("hash:64", "hash:32"), encoding="utf-8")
    done = run_cli("eval", "suite.yaml", "--out", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "was built with embedder 'hash:64': rebuilding it" in done.stderr


def test_a_missing_questions_file_names_the_suite_and_where_it_was_looked_for(tmp_path, kb):
    from rag.eval.suite import load_suite

    (tmp_path / "suite.yaml").write_text("name: t\ncorpus: kb\nquestions: nope.jsonl\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"suite.yaml: questions file .*/nope.jsonl does not exist \(`questions` is"):
        load_suite(tmp_path / "suite.yaml")
