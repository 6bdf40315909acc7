"""report.md: an evaluation run's numbers as tables a person reads (answers, retrieval, accuracy by
language, published expectations, paired comparisons, training cost), with links to its charts.

What this module does not do: compute the numbers (`rag.eval.report.summarize`) or write files.
"""

from __future__ import annotations

from .metrics import ANSWER_METRICS, LABELS
from .systems import BY_NAME, runs_generator


def _fmt(stat: dict | None, pct: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    scale = 100 if pct else 1
    digits = 1 if pct else 2
    mean, low, high = (stat[k] * scale for k in ("mean", "low", "high"))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _row(*cells) -> str:
    """
    >>> _row("rag", "12.5", 3)
    '| rag | 12.5 | 3 |'
    """
    return "| " + " | ".join(str(c) for c in cells) + " |"


# how each answer mode reads in the report
MODE_NAMES = {
    "closed-book": "closed book",
    "generative": "generative",
    "auto": "auto",
    "extractive": "extractive, no language model",
}


# the reading models a report names: (how it reads, the [answer] setting)
READING_MODELS = (
    ("reader", "reader"),
    ("scorer", "scorer"),
    ("ask model", "asks"),
    ("character scorer", "char_scorer"),
)


def _reading(run) -> list[str]:
    """A line naming the reading models the answers were read with (two reports that differ only in their
    scorer or reader looked alike; config.json alone said which)."""
    answer = getattr(getattr(getattr(run, "suite", None), "config", None), "answer", None)
    if answer is None:
        return []
    parts = [f"{name} `{getattr(answer, key)}`" for name, key in READING_MODELS if getattr(answer, key, None)]
    return [f"Reading models: {', '.join(parts)}.", ""] if parts else []


def _generators(run, modes: dict[str, str]) -> list[str]:
    """A line per system that ran a language model: its backend, model and adapter (what answered); and one for
    the systems that would have but answered extractively (the run's answer mode), saying so."""
    shown = []
    for system, generator in (getattr(run, "generators", None) or {}).items():
        if not BY_NAME.get(system) or not runs_generator(modes.get(system, "generative")) or not generator:
            continue
        parts = [f"{k} `{v}`" for k, v in generator.items() if v and k in ("backend", "model", "adapter", "server")]
        shown.append(f"- `{system}`: {', '.join(parts)}")
    lines = ["Generators:", "", *shown, ""] if shown else []
    idle = _idle(run.systems, modes)
    if idle:
        names = ", ".join(f"`{s}`" for s in idle)
        lines += [
            f"**Answer mode `extractive`: {names} answered extractively, as the `extractive` system does.** No "
            "language model or adapter ran for them (none was loaded or trained), so their scores are the "
            "extractive reader's and say nothing about a generator or adapter; comparisons between them are "
            "marked, not tested. `--answer-mode generative` (or `auto`) compares the generators.",
            "",
        ]
    return lines


def _idle(systems, modes: dict[str, str]) -> list[str]:
    """The systems built around a language model that answered without one (the extractive answer mode)."""
    return [
        s for s in systems if s in BY_NAME and BY_NAME[s].answer_mode != "extractive" and not runs_generator(modes[s])
    ]


def report_markdown(summary: dict, run, charts: list[str]) -> str:
    """report.md of a run: `summary` is `rag.eval.report.summarize(run)`, `charts` the chart files beside it."""
    systems = run.systems
    modes = {s: summary["systems"][s].get("answer_mode") or "generative" for s in systems}
    idle = set(_idle(systems, modes))
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
        "contains-gold is reported too. Citation precision: share of cited passages that come from a gold source. "
        "Ungrounded: share of answers (refusals aside) stating a number, code or name that the passages they cite "
        "do not contain.",
        "",
        "Systems: "
        + "; ".join(
            f"`{s}`, {BY_NAME[s].label if s in BY_NAME else s}"
            + (" (here answered extractively: no language model or adapter ran)" if s in idle else "")
            for s in systems
        )
        + ".",
        "",
        *_generators(run, modes),
        *_reading(run),
        "## Answers",
        "",
        "| System | " + " | ".join(LABELS[m] for m in ANSWER_METRICS) + " | Latency p50 (s) | Answer mode |",
        "|---" * (len(ANSWER_METRICS) + 3) + "|",
    ]
    for s in systems:
        st = summary["systems"][s]
        cells = [_fmt(st["metrics"].get(m)) for m in ANSWER_METRICS]
        mode = MODE_NAMES.get(modes.get(s), modes.get(s))
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {st['latency_p50_s']:.2f} | {mode} |")
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
            "Gold documents among the retrieved ones (documents ranked by their best chunk; "
            f"`{run.index.get('retrieve_mode')}` retrieval over {run.index.get('chunks')} chunks, embedder "
            f"`{run.index.get('embedder')}`). The same for every system that retrieves.",
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
            "Paired randomisation test on accuracy over the same questions; a claim holds or is contradicted at "
            "p < 0.05, else the run cannot tell (more questions narrow the intervals). A claim about a system "
            "that answered without its language model (answer mode extractive) is not tested.",
            "",
            "| Expectation | Source | Difference (points) | p | Verdict |",
            "|---|---|---|---|---|",
        ]
        for e in summary["expectations"]:
            claim = f"{e['better']} > {e['worse']}: {e['claim']}"
            verdict = f"**{e['verdict']}**" + (f": {e['reason']}" if e.get("reason") else "")
            lines.append(_row(claim, e["reference"], f"{e['diff'] * 100:+.1f}", f"{e['p']:.3f}", verdict))
    if summary["paired"]:
        lines += [
            "",
            "## Paired comparisons",
            "",
            "| A | B | Metric | A - B (points) [95% CI] | p |",
            "|---|---|---|---|---|",
        ]
        for p in summary["paired"]:
            diff = f"{p['diff'] * 100:+.1f} [{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}]"
            lines.append(_row(p["a"], p["b"], p["metric"], diff, p["note"] if p.get("note") else f"{p['p']:.3f}"))
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
            method, steps, examples = (t.get(k) or "n/a" for k in ("method", "steps", "examples"))
            lines.append(_row(kind, t["source"], method, steps, minutes, params, examples, loss))
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
