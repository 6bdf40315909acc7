"""rag.eval.report: the report folder is written whole or not at all, thresholds catch regressions and name
them, and a bad thresholds file is refused with a clear message. Runs are built by hand (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.eval.harness import EvalRun
from rag.eval.metrics import ANSWER_METRICS
from rag.eval.report import check_thresholds, read_thresholds, summarize, write_report
from rag.eval.suite import Suite

ROOT = Path(__file__).resolve().parent.parent


def _row(system: str, n: int, correct: bool, answerable: bool = True, latency: float = 0.5) -> dict:
    scores = dict.fromkeys(ANSWER_METRICS)
    if answerable:
        scores.update(accuracy=float(correct), contains=float(correct), f1=0.5 if correct else 0.0, false_refusal=0.0)
        if system != "closed-book":
            scores.update({"recall@3": 1.0, "mrr@10": 1.0})
    else:
        scores.update(accuracy=float(correct), refusal_accuracy=float(correct))
    return {
        "system": system,
        "id": f"q{n}",
        "question": f"question {n}?",
        "lang": "zh" if n % 4 == 0 else "en",
        "answerable": answerable,
        "answers": ["gold"] if answerable else [],
        "sources": ["doc.md"] if answerable else [],
        "retrieved": [],
        "prompt": "...",
        "answer": "gold" if correct else "other",
        "latency_s": latency,
        "scores": scores,
    }


def _run(rag_correct: int = 12, questions: int = 12) -> EvalRun:
    """closed-book never right, rag right on the first `rag_correct` questions; every fourth is unanswerable."""
    rows = {
        "closed-book": [_row("closed-book", n, False, answerable=n % 4 != 3, latency=0.2) for n in range(questions)],
        "rag": [
            _row("rag", n, n < rag_correct, answerable=n % 4 != 3, latency=0.1 * (n + 1)) for n in range(questions)
        ],
    }
    suite = Suite(name="tiny", path=None, questions=[], systems=["closed-book", "rag"])
    return EvalRun(suite, ["closed-book", "rag"], rows, started="2026-01-01T00:00:00", seconds=3.0)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------------- writing


def test_write_report_writes_every_file(tmp_path):
    run = _run()
    summary = write_report(run, tmp_path / "report")
    files = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.md", "metrics.json", "predictions.jsonl", "config.json"} <= files
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == json.loads(json.dumps(summary))
    lines = (tmp_path / "report" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["system"] for line in lines] == ["closed-book"] * 12 + ["rag"] * 12
    config = json.loads((tmp_path / "report" / "config.json").read_text())
    assert config["suite"]["name"] == "tiny" and config["suite"]["systems"] == ["closed-book", "rag"]
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "12 test questions (9 answerable, 3 not)" in report
    assert "`closed-book`, the base model alone; `rag`, the base model over retrieved passages." in report
    assert "| rag | 100.0 [100.0, 100.0] |" in report and "## Accuracy by language" in report
    assert "| rag > closed-book: retrieval beats the model alone | Lewis et al. 2020 | +100.0 |" in report
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left beside it


def test_summary_numbers(tmp_path):
    summary = summarize(_run(rag_correct=6))
    rag = summary["systems"]["rag"]
    assert rag["metrics"]["accuracy"]["mean"] == 0.5 and rag["metrics"]["accuracy"]["n"] == 12
    assert rag["metrics"]["refusal_accuracy"]["n"] == 3 and "recall@3" in rag["metrics"]
    assert rag["latency_p50_s"] == 0.6 and rag["latency_p95_s"] == 1.2
    assert summary["questions"] == {"test": 12, "answerable": 9, "limit": None}
    assert {(p["a"], p["b"], p["metric"]) for p in summary["paired"]} == {
        ("closed-book", "rag", "accuracy"),
        ("closed-book", "rag", "f1"),
    }


@pytest.mark.parametrize("failing", ["report_markdown", "draw_charts", "environment"])
def test_a_failed_write_leaves_the_previous_report_intact(tmp_path, monkeypatch, failing):
    import rag.eval.report as report

    out = tmp_path / "report"
    write_report(_run(), out)
    before = _snapshot(out)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, failing, fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(_run(rag_correct=3), out)
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # the half-written folder is gone

    with pytest.raises(RuntimeError):
        write_report(_run(), tmp_path / "first")
    assert not (tmp_path / "first").exists()  # a first report that fails leaves nothing


# ---------------------------------------------------------------------------------------------- thresholds


def test_check_thresholds_catches_a_regression_and_names_it():
    good, bad = summarize(_run()), summarize(_run(rag_correct=3))
    limits = {
        "_about": "comments are skipped",
        "rag": {"accuracy": 0.9, "recall@3": 0.97, "latency_p50_s": {"max": 1.0}},
        "closed-book": {"false_refusal": {"max": 0.1}},
    }
    assert check_thresholds(good, limits) == []
    assert check_thresholds(bad, limits) == ["rag accuracy = 0.250, below the threshold 0.9"]
    failures = check_thresholds(
        good,
        {
            "rag": {"latency_p95_s": {"max": 0.5}, "citation_precision": 0.5, "f1": {"min": 0.1, "max": 0.2}},
            "ft+rag": {"accuracy": 0.1},
        },
    )
    assert failures == [
        "rag latency_p95_s = 1.200, above the threshold 0.5",
        "rag citation_precision: not measured in this run",
        "rag f1 = 0.500, above the threshold 0.2",
        "ft+rag: not in this run (run it, or remove it from the thresholds)",
    ]


def test_read_thresholds_accepts_the_shipped_files():
    for path in sorted((ROOT / "eval" / "thresholds").glob("*.json")):
        assert "_about" in read_thresholds(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ('{"rag": {"accuracy": 0.5,}}', "is not valid JSON"),
        ('[{"rag": 0.5}]', 'thresholds look like {"rag"'),
        ('{"rag": 0.5}', 'thresholds look like {"rag"'),
        ('{"rga": {"accuracy": 0.5}}', "unknown system 'rga'; systems are closed-book, rag"),
        ('{"rag": {"accuracy": "0.5"}}', "rag accuracy: a limit is a number (the minimum)"),
        ('{"rag": {"accuracy": {"mean": 0.5}}}', "got {'mean': 0.5}"),
        ('{"rag": {"accuracy": {}}}', "rag accuracy: a limit is"),
        ('{"rag": {"accuracy": true}}', "got True"),
    ],
)
def test_read_thresholds_rejects_a_bad_file_clearly(tmp_path, content, message):
    path = tmp_path / "thresholds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        read_thresholds(path)
    assert message in str(err.value) and str(path) in str(err.value)
