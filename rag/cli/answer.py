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

    p = sub.add_parser("calibrate", help="calibrate the refusal threshold on labelled questions")
    p.add_argument("--questions", default="eval/questions.jsonl", help="JSONL with question, answerable, split")
    p.add_argument("--split", default="train", help="split to calibrate on (default train; 'all' for every question)")
    p.add_argument("--index", help=INDEX_HELP)
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
    from ..errors import ConfigError
    from ..evidence import calibrate_min_evidence
    from ..pipeline import RAG
    from ..records import parse_jsonl

    path = Path(args.questions)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give labelled questions with --questions FILE")
    questions = parse_jsonl(path.read_text(encoding="utf-8"), str(path))
    config, _ = settings(args)
    rag = RAG(index_path(args.index), config)
    try:
        result = calibrate_min_evidence(rag, questions, None if args.split == "all" else args.split)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"{path}: calibration needs records with 'question' and 'answerable', some answerable, in split "
            f"{args.split!r} ({exc})"
        ) from exc
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(
            f"min_evidence = {result['min_evidence']} (from {result['questions']} questions; "
            f"{result['unanswerable_refused']} unanswerable ones fall below it). Put it in rag.toml under [answer]."
        )
    return 0
