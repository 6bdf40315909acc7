"""`rag ask`, `rag chat` and `rag calibrate`: answers from the index in the terminal, and their refusal level."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import INDEX_HELP, add_answer_args, answer_settings, index_path, print_answer, read_lines, settings


def register(sub) -> None:
    p = sub.add_parser("ask", help="answer a question from the index, with citations (or refuse)")
    p.add_argument(
        "question", metavar="QUESTION", help="the question; '-' reads one question per line from standard input"
    )
    add_answer_args(p)
    p.add_argument(
        "--closed-book", action="store_true", help="answer without retrieval (the model alone; for comparisons)"
    )
    p.add_argument("--json", action="store_true", help="print JSON (one object per question)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="multi-turn conversation in the terminal (follow-up questions work)")
    add_answer_args(p)
    p.add_argument("--closed-book", action="store_true", help="answer without retrieval (the model alone)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser(
        "calibrate",
        help="fit how evidence is weighed and when to refuse, on labelled questions over an index",
        description="Read labelled questions ({question, answers, answerable, split, sources}) over the index and fit "
        "the reader: with a few hundred answerable questions per language its weights, with fewer only its refusal "
        "threshold (the shipped weights are kept), with fewer than 1/--false-refusal (20 at 5%) nothing. Writes a "
        "reader file to use with `reader = FILE` in rag.toml.",
    )
    p.add_argument("--questions", default="eval/questions.jsonl", help="JSONL: question, answers, answerable, split")
    p.add_argument("--split", default="train", help="split to fit on (default train; 'all' for every question)")
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("--out", default="reader.json", help="reader file to write (default reader.json)")
    p.add_argument(
        "--false-refusal", type=float, default=0.05, help="share of answerable questions it may refuse (default 0.05)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)


def _rag(args):
    from ..pipeline import RAG

    config = answer_settings(args, closed_book=args.closed_book)
    return RAG(None if args.closed_book else index_path(args.index), config)  # closed book: no index needed


def cmd_ask(args) -> int:
    rag = _rag(args)
    questions = read_lines(args.question)
    for question in questions:
        if args.json:
            answer = rag.ask(question, closed_book=args.closed_book)
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
            continue
        stream = sys.stdout.isatty()
        if len(questions) > 1:
            print(f"== {question}")
        on_text = (lambda t: print(t, end="", flush=True)) if stream else None
        print_answer(rag.ask(question, closed_book=args.closed_book, on_text=on_text), streamed=stream)
    return 0


def cmd_chat(args) -> int:
    session = _rag(args).chat(closed_book=args.closed_book)
    print("Ask a question (empty line or Ctrl-D to quit).", file=sys.stderr)
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            break
        if not question:
            break
        answer = session.ask(question, on_text=lambda t: print(t, end="", flush=True))
        print_answer(answer, streamed=True)
    return 0


def cmd_calibrate(args) -> int:
    from ..atomic import write_json
    from ..calibrate import fit_reader
    from ..errors import ConfigError
    from ..pipeline import RAG
    from ..records import parse_jsonl_numbered

    path = Path(args.questions)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give labelled questions with --questions FILE")
    if not 0 < args.false_refusal < 0.5:
        raise ConfigError(f"--false-refusal must be between 0 and 0.5, got {args.false_refusal}")
    questions = []
    for number, q in parse_jsonl_numbered(path.read_text(encoding="utf-8"), str(path)):
        # a record that cannot be read as it is meant is named and left out (rag eval refuses such a file)
        skipped = _calibration_problem(q)
        if skipped:
            print(f"rag calibrate: {path} line {number}: {skipped}; left out", file=sys.stderr)
        elif args.split == "all" or q.get("split", "train") == args.split:
            questions.append((number, q))
    bad = [number for number, q in questions if "answerable" not in q]
    if bad or not any(q.get("answerable") for _, q in questions):
        raise ConfigError(
            f"{path}: calibration needs records with 'question', 'answers' and 'answerable', some answerable, in "
            f"split {args.split!r}" + (f" (line {bad[0]} has no 'answerable')" if bad else "")
        )
    config, _ = settings(args)
    rag = RAG(index_path(args.index), config)

    def log(message: str) -> None:  # progress, and a line per reading group (the summary, said once)
        print(message, file=sys.stderr, flush=True)

    questions = [q for _, q in questions]
    model = fit_reader(questions, rag, false_refusal=args.false_refusal, base=rag.reader.model, log=log)
    write_json(args.out, model.to_dict())
    if args.json:
        print(json.dumps({"out": args.out, **model.info}, ensure_ascii=False))
        return 0
    if all(g.get("kept") == "base" for g in model.info["groups"].values()):
        print(
            f"reader written to {args.out}, but nothing was fitted: it weighs and refuses as the reader it started from"
        )
    else:
        print(f'reader written to {args.out}; use it with `reader = "{args.out}"` under [answer] in rag.toml')
    return 0


def _calibration_problem(record: dict) -> str | None:
    """Why a calibration record cannot be used as it is meant (None when it can): no question, or answerable
    without gold answers (it would be read as an unanswerable one)."""
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        return "no 'question'"
    answers = record.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return f"'answers' must be a list of strings, got {answers!r}"
    if record.get("answerable", True) and not any(a.strip() for a in answers):
        hint = " ('answer' should be 'answers', a list)" if "answer" in record else ""
        return f'answerable but no gold answers{hint}: give "answers": [...] or mark it "answerable": false'
    return None
