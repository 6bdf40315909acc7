"""Aggregate an evaluation run and write its report folder.

`summarize(run)` turns per-question rows into means with 95% bootstrap intervals, per-language accuracy,
latency percentiles, paired tests between every two systems, and verdicts on what published work
expects. `write_report(run, out)` writes, atomically (a crash leaves the previous report in place):

    report.md          systems x metrics with intervals, paired tests, training cost, expectations
    metrics.json       the same numbers, for CI (`check_thresholds`) and scripts
    predictions.jsonl  one line per question and system: retrieved ids, prompt, answer, per-metric scores
    answers.png, latency.png  charts
    config.json        the suite, rag's configuration, package versions and the git commit

`check_thresholds` compares a summary with CI's minimums and maximums (`read_thresholds`; a bare number is a
minimum, or a maximum for a metric where lower is better). The tables of
report.md are drawn by `rag.eval.markdown`, the charts by `rag.eval.charts`. What this module does not do:
score single answers (`rag.eval.harness.score_row`, `rag.eval.metrics`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from dataclasses import asdict
from difflib import get_close_matches
from itertools import combinations
from pathlib import Path

from ..atomic import atomic_dir
from ..errors import ConfigError
from .charts import draw_charts
from .markdown import report_markdown
from .metrics import ANSWER_METRICS, LOWER_IS_BETTER, bootstrap_ci, paired_test
from .systems import BY_NAME, answer_mode_of, runs_generator

# a paired comparison of two systems that both answered without a language model (answer mode extractive)
SAME_READER = "neither ran a language model: both answered extractively, with the same reader"

# What published work leads one to expect, as (better system, worse system, claim, reference).
EXPECTATIONS = (
    ("rag", "ft", "retrieval injects facts better than fine-tuning on them", "Ovadia et al. 2023"),
    ("raft+rag", "rag", "a RAFT adapter improves answers over the same passages", "Zhang et al. 2024 (RAFT)"),
    (
        "reader+rag",
        "rag",
        "a RAFT adapter trained on other data helps on a new knowledge base",
        "Zhang et al. 2024 (RAFT)",
    ),
    ("raft+rag", "ft+rag", "RAFT beats plain fine-tuning when both answer from passages", "Zhang et al. 2024 (RAFT)"),
    ("ft+rag", "rag", "fine-tuning adds to retrieval", "Balaguer et al. 2024"),
    ("ft+rag", "ft", "retrieval adds to fine-tuning", "Balaguer et al. 2024"),
    ("rag", "closed-book", "retrieval beats the model alone", "Lewis et al. 2020"),
)


def answer_modes(run) -> dict[str, str]:
    """How each system of `run` answered (`rag.eval.systems.answer_mode_of`), as the run recorded it."""
    recorded = getattr(run, "modes", None) or {}
    return {
        s: recorded.get(s) or (answer_mode_of(s, run.suite.answer_mode) if s in BY_NAME else "generative")
        for s in run.systems
    }


def summarize(run) -> dict:
    """All the numbers of a report (what metrics.json holds)."""
    modes = answer_modes(run)
    systems = {}
    for system, rows in run.rows.items():
        names = list(ANSWER_METRICS) + sorted({m for r in rows for m in r["scores"] if m not in ANSWER_METRICS})
        stats = {}
        for name in names:
            values = [r["scores"][name] for r in rows if r["scores"].get(name) is not None]
            if values:
                stats[name] = _stat(values)
        latencies = [r["latency_s"] for r in rows]
        stats["latency_s"] = _stat(latencies)
        by_lang = {}
        for lang in sorted({r["lang"] for r in rows}):
            values = [
                r["scores"]["accuracy"] for r in rows if r["lang"] == lang and r["scores"]["accuracy"] is not None
            ]
            if values:
                by_lang[lang] = _stat(values)
        systems[system] = {
            "questions": len(rows),
            "answer_mode": modes.get(system),
            "generator": runs_generator(modes.get(system, "generative")),  # False: no language model ran
            "metrics": stats,
            "accuracy_by_language": by_lang,
            "latency_p50_s": _quantile(latencies, 0.5),
            "latency_p95_s": _quantile(latencies, 0.95),
        }
    paired = []
    for a, b in combinations(run.systems, 2):
        for metric in ("accuracy", "f1"):
            pairs = [
                (x["scores"].get(metric), y["scores"].get(metric))
                for x, y in zip(run.rows[a], run.rows[b])
                if x["scores"].get(metric) is not None and y["scores"].get(metric) is not None
            ]
            if pairs:
                test = paired_test([p[0] for p in pairs], [p[1] for p in pairs])
                entry = {"a": a, "b": b, "metric": metric, **_round(test)}
                if not runs_generator(modes[a]) and not runs_generator(modes[b]):
                    entry["note"] = SAME_READER  # not a measured difference between generators
                paired.append(entry)
    return {
        "suite": run.suite.name,
        "started": run.started,
        "seconds": run.seconds,
        "questions": {
            "test": len(next(iter(run.rows.values()), [])),
            "answerable": sum(1 for r in next(iter(run.rows.values()), []) if r["answerable"]),
            "limit": run.limit,
        },
        "k": run.k,
        "index": run.index,
        "systems": systems,
        "paired": paired,
        "expectations": expectations(paired, modes=modes),
        "training": run.training,
    }


def _stat(values) -> dict:
    mean, low, high = bootstrap_ci(values)
    return {"mean": _r(mean), "low": _r(low), "high": _r(high), "n": len(values)}


def _quantile(values, q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return _r(ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)])


def _r(x, digits: int = 4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _round(test: dict) -> dict:
    return {k: (_r(v) if isinstance(v, float) else v) for k, v in test.items()}


def expectations(paired: list[dict], alpha: float = 0.05, modes: dict[str, str] | None = None) -> list[dict]:
    """Whether each published expectation holds on this run (accuracy, paired test at `alpha`). Every claim is
    about what a language model (with or without an adapter) does, so one whose system answered without it
    (`modes`: answer mode "extractive") is "not tested", with the `reason`."""
    verdicts = []
    for better, worse, claim, ref in EXPECTATIONS:
        test = next((p for p in paired if p["metric"] == "accuracy" and {p["a"], p["b"]} == {better, worse}), None)
        if test is None:
            continue
        diff = test["diff"] if test["a"] == better else -test["diff"]
        idle = [s for s in (better, worse) if not runs_generator((modes or {}).get(s, "generative"))]
        reason = None
        if idle:
            verdict = "not tested"
            reason = (
                f"{' and '.join(idle)} answered extractively (answer mode extractive): no language model or "
                "adapter ran" + (", so both gave the same answers" if len(idle) == 2 else "")
            )
        elif test["p"] is not None and test["p"] < alpha:
            verdict = "holds" if diff > 0 else "contradicted"
        else:
            verdict = "inconclusive"
        verdicts.append(
            {
                "better": better,
                "worse": worse,
                "claim": claim,
                "reference": ref,
                "diff": _r(diff),
                "p": test["p"],
                "verdict": verdict,
                **({"reason": reason} if reason else {}),
            }
        )
    return verdicts


# ------------------------------------------------------------------------------------------------ checks


# what a thresholds file may name besides the answer metrics: retrieval at any k and latency percentiles
_THRESHOLD_METRICS = (*ANSWER_METRICS, "mrr@10", "ndcg@10", "latency_s", "latency_p50_s", "latency_p95_s")


def as_bounds(metric: str, limit) -> dict:
    """A threshold as {"min": x} and/or {"max": x}: a bare number is the worst value allowed, so the minimum of a
    metric where higher is better and the maximum of one where lower is better (false refusals, latency).

    >>> as_bounds("accuracy", 0.7), as_bounds("false_refusal", 0.05), as_bounds("latency_p50_s", {"max": 2.0})
    ({'min': 0.7}, {'max': 0.05}, {'max': 2.0})
    """
    if isinstance(limit, dict):
        return limit
    return {"max": limit} if metric in LOWER_IS_BETTER else {"min": limit}


def check_thresholds(metrics: dict, thresholds: dict) -> list[str]:
    """Regressions of `metrics` (a summary) against `thresholds` {system: {metric: limit | {"min"|"max": x}}}, a
    bare limit being a minimum, or a maximum where lower is better (`as_bounds`). Metrics: any per-system metric
    name, plus latency_p50_s / latency_p95_s. Returns readable failures."""
    failures = []
    for system, limits in thresholds.items():
        if system.startswith("_"):
            continue  # comments
        stats = metrics["systems"].get(system)
        if stats is None:
            failures.append(f"{system}: not in this run (run it, or remove it from the thresholds)")
            continue
        for metric, limit in limits.items():
            bounds = as_bounds(metric, limit)
            value = (
                stats.get(metric)
                if metric.startswith("latency_p")
                else (stats["metrics"].get(metric) or {}).get("mean")
            )
            if value is None:
                failures.append(f"{system} {metric}: not measured in this run")
                continue
            if "min" in bounds and value < bounds["min"]:
                failures.append(f"{system} {metric} = {value:.3f}, below the threshold {bounds['min']}")
            if "max" in bounds and value > bounds["max"]:
                failures.append(f"{system} {metric} = {value:.3f}, above the threshold {bounds['max']}")
    return failures


def threshold_systems(thresholds: dict) -> list[str]:
    """The systems a thresholds file sets limits for (comments aside)."""
    return [s for s in thresholds if not s.startswith("_")]


def read_thresholds(path: str | Path) -> dict:
    """CI thresholds from a JSON file: {system: {metric: limit | {"min": x} | {"max": x}}}, a bare limit being
    the minimum, or the maximum of a metric where lower is better (`as_bounds`); keys starting with "_" are
    comments. A missing file, bad JSON, an unknown system or metric, or a limit that is not a number is a
    `ConfigError` naming the file and the entry, raised before anything runs."""
    shape = '{"rag": {"accuracy": 0.5, "false_refusal": {"max": 0.1}}}'
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"thresholds file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"thresholds file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for k, v in data.items() if not k.startswith("_")):
        raise ConfigError(f"{path}: thresholds look like {shape}")
    for system, limits in data.items():
        if system.startswith("_"):
            continue
        if system not in BY_NAME:
            raise ConfigError(f"{path}: unknown system {system!r}; systems are {', '.join(BY_NAME)}")
        for metric, limit in limits.items():
            if metric not in _THRESHOLD_METRICS and not re.fullmatch(r"recall@\d+", metric):
                close = get_close_matches(metric, _THRESHOLD_METRICS, 1, 0.7)
                raise ConfigError(
                    f"{path}: {system}: unknown metric {metric!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; metrics are {', '.join(_THRESHOLD_METRICS)} and recall@K"
                )
            bounds = as_bounds(metric, limit)
            if not bounds or set(bounds) - {"min", "max"} or not all(_is_number(v) for v in bounds.values()):
                which = "the maximum: lower is better" if metric in LOWER_IS_BETTER else "the minimum"
                raise ConfigError(
                    f"{path}: {system} {metric}: a limit is a number ({which}), "
                    f'{{"min": x}} or {{"max": x}}, got {limit!r}'
                )
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------------ writing


def write_report(run, out: str | Path, summary: dict | None = None) -> dict:
    """Write the report folder `out` (replacing an earlier one only once the new one is complete)."""
    summary = summary or summarize(run)
    with atomic_dir(out) as tmp:
        _dump(tmp / "metrics.json", summary)
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for system in run.systems:
                for row in run.rows[system]:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        _dump(tmp / "config.json", environment(run))
        charts = draw_charts(summary, tmp)
        (tmp / "report.md").write_text(report_markdown(summary, run, charts), encoding="utf-8")
    return summary


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def environment(run) -> dict:
    from importlib import metadata

    versions = {}
    for pkg in (
        "rag",
        "torch",
        "transformers",
        "peft",
        "sentence-transformers",
        "faiss-cpu",
        "faiss-gpu-cu12",
        "bm25s",
        "numpy",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        changed = subprocess.run(  # tracked files edited since that commit (refitted weights, code)
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, changed = None, ""
    suite = run.suite
    return {
        "suite": {
            "name": suite.name,
            "file": str(suite.path) if suite.path else None,
            "origin": suite.origin,
            "systems": run.systems,
            "answer_mode": suite.answer_mode,
            "answer_modes": answer_modes(run),  # per system: how it answered
            "train": asdict(suite.train),
            "adapters": suite.adapters,
            "limit": run.limit,
        },
        "config": asdict(suite.config),
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git_commit": commit,
        "git_uncommitted_changes": bool(changed) if commit else None,
    }
