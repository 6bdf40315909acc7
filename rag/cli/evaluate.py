"""`rag eval` (closed-book vs RAG vs fine-tuned vs RAFT on a suite, with a report) and `rag eval retrieval`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_embed_args, flagged, settings


def register(sub) -> None:
    from ..eval.systems import NAMES  # the one list of systems; light (no models, no numpy)

    p = sub.add_parser(
        "eval",
        help="compare closed-book, RAG, fine-tuned and RAFT systems on a suite; writes a report",
        description="Answer a suite's test questions with each system, score them (retrieval recall/MRR/nDCG, "
        "EM, F1, ROUGE-L, contains-gold, refusals, citations, latency) with 95% bootstrap intervals and paired "
        "tests, and write eval/reports/<run>/ (report.md, metrics.json, predictions.jsonl, charts). "
        "Retrieval metrics alone on BEIR/SQuAD/CMRC data: `rag eval retrieval --help`.",
    )
    p.add_argument("suite", metavar="SUITE", help="suite file (YAML or JSON), e.g. eval/suites/sample.yaml")
    p.add_argument("--systems", help=f"comma-separated: {', '.join(NAMES)} (default: the suite's)")
    p.add_argument("--out", metavar="DIR", help="report folder (default eval/reports/<suite>-<time>)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N test questions")
    p.add_argument(
        "--data", metavar="PATH", help="where the suite's SQuAD/CMRC/WikiQA/BEIR data is (overrides its path)"
    )
    p.add_argument("--answer-mode", choices=["generative", "auto", "extractive"], help="how RAG systems answer")
    p.add_argument("--train-steps", dest="steps", type=int, metavar="N", help="training steps per adapter")
    p.add_argument("--train-minutes", dest="minutes", type=float, metavar="M", help="training time limit per adapter")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="KIND=DIR",
        help="use a trained adapter instead of training one: ft=DIR, raft=DIR or reader=DIR (repeatable)",
    )
    models = p.add_argument_group(
        "retrained reading models",
        "override the suite's `config: {answer: ...}`, e.g. to compare a scorer from `rag tune --task scorer` "
        "or a reader from `rag calibrate` with the shipped ones on the same questions",
    )
    models.add_argument("--scorer", metavar="DIR", dest="answer.scorer", help="'bundled', a folder, a hub id or 'none'")
    models.add_argument("--reader", metavar="FILE", dest="answer.reader", help="'bundled' or a reader weights file")
    models.add_argument("--asks", metavar="DIR", dest="answer.asks", help="'bundled', a folder or 'none'")
    models.add_argument("--char-scorer", metavar="DIR", dest="answer.char_scorer", help="'bundled', a folder or 'none'")
    p.add_argument("--work", metavar="DIR", help="index and adapter cache (default eval/work/<suite>)")
    p.add_argument("--check", metavar="THRESHOLDS", help="JSON thresholds; exit 3 when a metric regresses below them")
    p.add_argument("--json", action="store_true", help="print metrics.json")
    p.set_defaults(func=cmd_eval)

    pe = sub.add_parser(
        "eval-retrieval",
        help="retrieval metrics alone (nDCG@10, recall@10/100, MRR@10) on BEIR/SQuAD/CMRC data; "
        "also `rag eval retrieval`",
    )
    src = pe.add_mutually_exclusive_group(required=True)
    src.add_argument("--beir", metavar="DIR", help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    src.add_argument("--squad", metavar="FILE", help="SQuAD v1/v2 JSON: paragraphs as documents")
    src.add_argument("--cmrc", metavar="FILE", help="CMRC 2018 JSON: paragraphs as documents")
    src.add_argument("--wikiqa", metavar="FILE", help="WikiQA TSV: Wikipedia summaries as documents")
    pe.add_argument(
        "--ignore-identical-ids", action="store_true", help="drop hits whose id equals the query id (ArguAna, Quora)"
    )
    pe.add_argument("--split", default="test", help="qrels split (default test)")
    pe.add_argument("--mode", default="dense", help="dense, bm25, hybrid, or a comma-separated list (default dense)")
    pe.add_argument("--limit", type=int, help="evaluate only the first N queries")
    pe.add_argument("--json", action="store_true", help="print JSON")
    add_embed_args(pe)
    pe.set_defaults(func=cmd_eval_retrieval)


def cmd_eval(args) -> int:
    import dataclasses
    import time

    from ..errors import ConfigError
    from ..eval.harness import run_eval
    from ..eval.report import check_thresholds, read_thresholds, threshold_systems, write_report
    from ..eval.suite import load_suite
    from ..eval.systems import parse_systems

    suite = load_suite(args.suite, data=args.data)
    notice = unread_config_notice(args.config)
    if notice:
        print(notice, file=sys.stderr)
    suite.config = suite.config.override(**flagged(args))  # --scorer, --reader, --asks, --char-scorer
    _check_reading_models(suite.config)
    thresholds = read_thresholds(args.check) if args.check else None
    if args.answer_mode:
        suite.answer_mode = args.answer_mode
    budget = {k: v for k, v in (("steps", args.steps), ("minutes", args.minutes)) if v is not None}
    suite.train = dataclasses.replace(suite.train, **budget)
    for spec in args.adapter:
        kind, _, folder = spec.partition("=")
        if kind not in ("ft", "raft", "reader") or not folder:
            raise ConfigError(f"--adapter takes ft=DIR, raft=DIR or reader=DIR, got {spec!r}")
        suite.adapters[kind] = folder
    systems = parse_systems(args.systems) if args.systems else None
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if thresholds is not None:  # told now, not as a regression after an hour's run
        running = systems or suite.systems
        absent = [s for s in threshold_systems(thresholds) if s not in running]
        if absent:
            raise ConfigError(
                f"{args.check} sets limits for {', '.join(absent)}, which this run does not include (systems: "
                f"{', '.join(running)}); add them with --systems or use a thresholds file for these systems"
            )
    out = Path(args.out or Path("eval/reports") / f"{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = run_eval(suite, systems=systems, limit=args.limit, work=args.work)
    summary = write_report(run, out)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"report: {out / 'report.md'}")
        for system in run.systems:
            m = summary["systems"][system]["metrics"]
            shown = "  ".join(
                f"{name}={m[name]['mean']:.3f}"
                for name in ("accuracy", "f1", "refusal_accuracy", "citation_precision", f"recall@{run.k}")
                if name in m
            )
            print(f"  {system:12s} {shown}  p50={summary['systems'][system]['latency_p50_s']:.2f}s")
    if thresholds is not None:
        failures = check_thresholds(summary, thresholds)
        if failures:
            print(f"rag: regression against {args.check}:", file=sys.stderr)
            for failure in failures:
                print(f"  {failure}", file=sys.stderr)
            return 3
        print(f"thresholds {args.check}: all met")
    return 0


def _check_reading_models(config) -> None:
    """A reader file or scorer folder that cannot be used is an error before any system runs, not after the
    ones before it have (a bad --reader failed once closed-book had answered every question)."""
    from ..evidence import ReaderModel
    from ..scorer import scorer_folder

    if config.answer.reader != "bundled":
        ReaderModel.load(config.answer.reader)
    scorer_folder(config.answer.scorer)


def unread_config_notice(config_arg: str | None) -> str | None:
    """The line that tells `rag eval`'s user which settings file it does not read (--config, $RAG_CONFIG or
    ./rag.toml, the one every other command would read), and how to pass the reading models it may set; None
    when there is none. A reader from `rag calibrate` kept in rag.toml is otherwise silently not measured."""
    import os

    path = config_arg or os.environ.get("RAG_CONFIG") or ("rag.toml" if Path("rag.toml").is_file() else None)
    if not path:
        return None
    flags = {"scorer": "--scorer", "reader": "--reader", "asks": "--asks", "char_scorer": "--char-scorer"}
    try:
        import tomllib

        answer = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("answer") or {}
    except (OSError, ValueError):
        answer = {}
    given = [f"{flag} {answer[key]}" for key, flag in flags.items() if isinstance(answer, dict) and key in answer]
    how = (
        f"to measure the reading models it names, add {' '.join(given)}"
        if given
        else "pass a retrained scorer or refitted reader with --scorer DIR, --reader FILE, --asks DIR or --char-scorer DIR"
    )
    return (
        f"rag eval: {path} is not read: a suite carries its own settings (its `config:`), so that its report can be "
        f"reproduced; {how}"
    )


def cmd_eval_retrieval(args) -> int:
    from ..eval.datasets import KINDS, retrieval_data
    from ..eval.retrieval import evaluate

    config, _ = settings(args)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    kind = next(k for k in KINDS if getattr(args, k))
    data = retrieval_data(kind, getattr(args, kind), args.split)
    report = evaluate(
        data,
        config,
        modes=modes,
        limit=args.limit,
        ignore_identical_ids=args.ignore_identical_ids,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(
        f"{report['dataset']}: {report['queries']} queries, {report['documents']} documents, "
        f"embedder {report['embedder']}"
    )
    for mode, metrics in report["modes"].items():
        print(f"  {mode:7s} " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return 0
