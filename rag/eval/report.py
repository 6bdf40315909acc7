"""Aggregate an evaluation run and write its report folder.

`summarize(run)` turns per-question rows into means with 95% bootstrap intervals, per-language accuracy,
latency percentiles, paired tests between every two systems, and verdicts on what published work
expects. `write_report(run, out)` writes, atomically (a crash leaves the previous report in place):

    report.md          systems x metrics with intervals, paired tests, training cost, expectations
    metrics.json       the same numbers, for CI (`check_thresholds`) and scripts
    predictions.jsonl  one line per question and system: retrieved ids, prompt, answer, per-metric scores
    answers.png, latency.png  charts
    config.json        the suite, rag's configuration, package versions and the git commit
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict
from itertools import combinations
from pathlib import Path

from .atomic import atomic_dir
from .errors import ConfigError
from .metrics import bootstrap_ci, paired_test

ANSWER_METRICS = (
    "accuracy",
    "contains",
    "em",
    "f1",
    "rouge_l",
    "refusal_accuracy",
    "false_refusal",
    "citation_precision",
)
LOWER_IS_BETTER = {"false_refusal", "latency_s", "latency_p50_s", "latency_p95_s"}
LABELS = {
    "accuracy": "Accuracy",
    "contains": "Contains gold",
    "em": "EM",
    "f1": "F1",
    "rouge_l": "ROUGE-L",
    "refusal_accuracy": "Refusal acc.",
    "false_refusal": "False refusal",
    "citation_precision": "Citation prec.",
    "latency_s": "Latency (s)",
}
# What published work leads one to expect, as (better system, worse system, claim, reference).
EXPECTATIONS = (
    ("rag", "ft", "retrieval injects facts better than fine-tuning on them", "Ovadia et al. 2023"),
    ("raft+rag", "rag", "a RAFT adapter improves answers over the same passages", "Zhang et al. 2024 (RAFT)"),
    ("raft+rag", "ft+rag", "RAFT beats plain fine-tuning when both answer from passages", "Zhang et al. 2024 (RAFT)"),
    ("ft+rag", "rag", "fine-tuning adds to retrieval", "Balaguer et al. 2024"),
    ("ft+rag", "ft", "retrieval adds to fine-tuning", "Balaguer et al. 2024"),
    ("rag", "closed-book", "retrieval beats the model alone", "Lewis et al. 2020"),
)


def summarize(run) -> dict:
    """All the numbers of a report (what metrics.json holds)."""
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
                paired.append({"a": a, "b": b, "metric": metric, **_round(test)})
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
        "expectations": expectations(paired),
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


def expectations(paired: list[dict], alpha: float = 0.05) -> list[dict]:
    """Whether each published expectation holds on this run (accuracy, paired test at `alpha`)."""
    verdicts = []
    for better, worse, claim, ref in EXPECTATIONS:
        test = next((p for p in paired if p["metric"] == "accuracy" and {p["a"], p["b"]} == {better, worse}), None)
        if test is None:
            continue
        diff = test["diff"] if test["a"] == better else -test["diff"]
        if test["p"] is not None and test["p"] < alpha:
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
            }
        )
    return verdicts


# ------------------------------------------------------------------------------------------------ checks


def check_thresholds(metrics: dict, thresholds: dict) -> list[str]:
    """Regressions of `metrics` (a summary) against `thresholds` {system: {metric: minimum | {"min"|"max": x}}}.
    Metrics: any per-system metric name, plus latency_p50_s / latency_p95_s. Returns readable failures."""
    failures = []
    for system, limits in thresholds.items():
        if system.startswith("_"):
            continue  # comments
        stats = metrics["systems"].get(system)
        if stats is None:
            failures.append(f"{system}: not in this run (run it, or remove it from the thresholds)")
            continue
        for metric, limit in limits.items():
            bound = limit if isinstance(limit, dict) else {"min": limit}
            value = (
                stats.get(metric)
                if metric.startswith("latency_p")
                else (stats["metrics"].get(metric) or {}).get("mean")
            )
            if value is None:
                failures.append(f"{system} {metric}: not measured in this run")
                continue
            if "min" in bound and value < bound["min"]:
                failures.append(f"{system} {metric} = {value:.3f}, below the threshold {bound['min']}")
            if "max" in bound and value > bound["max"]:
                failures.append(f"{system} {metric} = {value:.3f}, above the threshold {bound['max']}")
    return failures


def read_thresholds(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"thresholds file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"thresholds file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for k, v in data.items() if not k.startswith("_")):
        raise ConfigError(
            f'{path}: thresholds look like {{"rag": {{"accuracy": 0.5, "false_refusal": {{"max": 0.1}}}}}}'
        )
    return data


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
        charts = _charts(summary, tmp)
        (tmp / "report.md").write_text(markdown(summary, run, charts), encoding="utf-8")
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
    except (OSError, subprocess.SubprocessError):
        commit = None
    suite = run.suite
    return {
        "suite": {
            "name": suite.name,
            "file": str(suite.path) if suite.path else None,
            "origin": suite.origin,
            "systems": run.systems,
            "answer_mode": suite.answer_mode,
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
    }


def _fmt(stat: dict | None, pct: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    scale = 100 if pct else 1
    digits = 1 if pct else 2
    mean, low, high = (stat[k] * scale for k in ("mean", "low", "high"))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(summary: dict, run, charts: list[str]) -> str:
    systems = run.systems
    q = summary["questions"]
    lines = [
        f"# Evaluation: {summary['suite']}",
        "",
        f"{q['test']} test questions ({q['answerable']} answerable, {q['test'] - q['answerable']} not), "
        f"{len(systems)} systems, answer mode `{run.suite.answer_mode}`, {summary['k']} passages per answer. "
        f"Started {summary['started']}, took {summary['seconds']:.0f} s.",
        "",
        "Scores are percentages: the mean with its 95% bootstrap interval in brackets. Accuracy counts an "
        "answerable question as correct when the answer contains a gold answer (after SQuAD normalisation; "
        "characters for Chinese) and an unanswerable one when the system refuses. EM, F1 and ROUGE-L compare the "
        "answer (citations removed) with the best gold answer; they punish full-sentence answers, which is why "
        "contains-gold is reported too. Citation precision: share of cited passages that come from a gold source.",
        "",
        "## Answers",
        "",
        "| System | " + " | ".join(LABELS[m] for m in ANSWER_METRICS) + " | Latency p50 (s) |",
        "|---" * (len(ANSWER_METRICS) + 2) + "|",
    ]
    for s in systems:
        st = summary["systems"][s]
        cells = [_fmt(st["metrics"].get(m)) for m in ANSWER_METRICS]
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {st['latency_p50_s']:.2f} |")
    retrieval = [
        s for s in systems if any(m.startswith(("recall@", "ndcg", "mrr")) for m in summary["systems"][s]["metrics"])
    ]
    if retrieval:
        st = summary["systems"][retrieval[0]]["metrics"]
        names = [m for m in st if m.startswith(("recall@", "mrr", "ndcg"))]
        lines += [
            "",
            "## Retrieval",
            "",
            f"Gold documents among the retrieved ones (documents ranked by their best chunk; `{run.index.get('retrieve_mode')}` "
            f"retrieval over {run.index.get('chunks')} chunks, embedder `{run.index.get('embedder')}`). The same for every "
            "system that retrieves.",
            "",
            "| " + " | ".join(names) + " |",
            "|---" * len(names) + "|",
            "| " + " | ".join(_fmt(st[m]) for m in names) + " |",
        ]
    langs = sorted({lang for s in systems for lang in summary["systems"][s]["accuracy_by_language"]})
    if len(langs) > 1:
        lines += [
            "",
            "## Accuracy by language",
            "",
            "| System | " + " | ".join(langs) + " |",
            "|---" * (len(langs) + 1) + "|",
        ]
        for s in systems:
            by = summary["systems"][s]["accuracy_by_language"]
            lines.append(
                f"| {s} | "
                + " | ".join(f"{_fmt(by.get(lang))} (n={by.get(lang, {}).get('n', 0)})" for lang in langs)
                + " |"
            )
    if summary["expectations"]:
        lines += [
            "",
            "## What published work expects, checked here",
            "",
            "Paired randomisation test on accuracy over the same questions; a claim holds or is contradicted at p < 0.05, "
            "else the run cannot tell (more questions narrow the intervals).",
            "",
            "| Expectation | Source | Difference (points) | p | Verdict |",
            "|---|---|---|---|---|",
        ]
        for e in summary["expectations"]:
            lines.append(
                f"| {e['better']} > {e['worse']}: {e['claim']} | {e['reference']} | {e['diff'] * 100:+.1f} | {e['p']:.3f} | **{e['verdict']}** |"
            )
    if summary["paired"]:
        lines += [
            "",
            "## Paired comparisons",
            "",
            "| A | B | Metric | A - B (points) [95% CI] | p |",
            "|---|---|---|---|---|",
        ]
        for p in summary["paired"]:
            lines.append(
                f"| {p['a']} | {p['b']} | {p['metric']} | {p['diff'] * 100:+.1f} [{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}] | {p['p']:.3f} |"
            )
    if summary["training"]:
        lines += [
            "",
            "## Training cost",
            "",
            "| Adapter | Source | Method | Steps | Minutes | Trainable params | Examples | Train loss |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for kind, t in summary["training"].items():
            minutes = f"{t['seconds'] / 60:.1f}" if t.get("seconds") is not None else "n/a"
            params = f"{t['trainable_params']:,} of {t['total_params']:,}" if t.get("trainable_params") else "n/a"
            loss = f"{t['train_loss']:.3f}" if t.get("train_loss") is not None else "n/a"
            lines.append(
                f"| {kind} | {t['source']} | {t.get('method') or 'n/a'} | {t.get('steps') or 'n/a'} | {minutes} | {params} | {t.get('examples') or 'n/a'} | {loss} |"
            )
    if charts:
        lines += ["", "## Charts", ""] + [f"![{c}]({c})" for c in charts]
    lines += [
        "",
        "## Files",
        "",
        "`metrics.json` (these numbers), `predictions.jsonl` (per question and system: retrieved ids, prompt, answer, "
        "scores), `config.json` (suite, configuration, package versions, git commit).",
        "",
    ]
    return "\n".join(lines)


def _charts(summary: dict, folder: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    systems = list(summary["systems"])
    written = []
    metrics = [
        m
        for m in ("accuracy", "contains", "f1", "rouge_l", "refusal_accuracy", "false_refusal")
        if any(m in summary["systems"][s]["metrics"] for s in systems)
    ]
    if metrics:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + 2), 4))
        width = 0.8 / len(systems)
        for i, s in enumerate(systems):
            st = summary["systems"][s]["metrics"]
            means = [100 * (st.get(m) or {}).get("mean", 0) or 0 for m in metrics]
            errs = [
                [100 * ((st[m]["mean"] - st[m]["low"]) if m in st else 0) for m in metrics],
                [100 * ((st[m]["high"] - st[m]["mean"]) if m in st else 0) for m in metrics],
            ]
            ax.bar([j + i * width for j in range(len(metrics))], means, width, yerr=errs, capsize=3, label=s)
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels([LABELS[m] for m in metrics])
        ax.set_ylabel("% (95% bootstrap CI)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{summary['suite']}: answers by system")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "answers.png", dpi=110)
        plt.close(fig)
        written.append("answers.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    data = [[summary["systems"][s]["latency_p50_s"] or 0, summary["systems"][s]["latency_p95_s"] or 0] for s in systems]
    ax.bar([i - 0.2 for i in range(len(systems))], [d[0] for d in data], 0.4, label="p50")
    ax.bar([i + 0.2 for i in range(len(systems))], [d[1] for d in data], 0.4, label="p95")
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels(systems)
    ax.set_ylabel("seconds per answer")
    ax.set_title("Latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=110)
    plt.close(fig)
    written.append("latency.png")
    return written
