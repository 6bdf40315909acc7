"""What `rag eval` reads before it runs anything: question records, thresholds, and the settings it ignores."""

from __future__ import annotations

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


def test_the_bundled_question_files_are_valid(tmp_path):
    """The stricter checks accept every question file the repository's suites use."""
    from pathlib import Path

    from rag.eval.suite import read_questions

    root = Path(__file__).parents[1] / "eval"
    files = [root / "questions.jsonl", *sorted((root / "heldout").glob("*-questions.jsonl"))]
    assert len(files) >= 4
    for path in files:
        assert read_questions(path)
