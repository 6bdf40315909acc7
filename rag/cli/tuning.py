"""`rag tune` and `rag adapters`: train an adapter (or a full model) on your data, list and merge them."""

from __future__ import annotations

import json
import os
import sys

from ..methods import METHODS, SCORER_METHODS, TASKS
from ..tune import TuneOptions
from .common import INDEX_HELP, index_path, options_from, settings


def register(sub) -> None:
    d = TuneOptions  # defaults shown in the help come from the options themselves
    p = sub.add_parser("tune", help="tune an adapter (LoRA and the rest of the PEFT family) on your data")
    p.add_argument(
        "data",
        metavar="DATA",
        help="JSONL/JSON records (alpaca, chat messages, question/answer, text) or a folder of documents",
    )
    p.add_argument(
        "--method", help=f"{', '.join(METHODS)} (default {d.method}; the scorer: {', '.join(SCORER_METHODS)})"
    )
    p.add_argument(
        "--task",
        choices=TASKS,
        help="generator (default): the causal LM that writes answers; scorer: the cross-encoder that decides which "
        "passages and sentences answer a question (DATA: question/text/label pairs, SQuAD/CMRC JSON, or a "
        "feedback log with --index); asks and char-scorer: the ask model and the character scorer of reading "
        "Chinese (same DATA; --epochs, --lr, --init-adapter bundled to continue from the shipped one)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (a PEFT adapter; a model for full)")
    p.add_argument(
        "--base", help="base model id or folder (default: the default generator, or embedder for the scorer)"
    )
    p.add_argument("--max-steps", type=int, help="training steps (default: --epochs epochs)")
    p.add_argument("--epochs", type=float, help=f"epochs when --max-steps is not given (default {d.epochs:g})")
    p.add_argument("--max-minutes", type=float, help="stop and save after this many minutes of training")
    p.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    p.add_argument("--batch-size", type=int, help=f"examples per step (default {d.batch_size})")
    p.add_argument(
        "--max-length",
        type=int,
        help="tokens per example (default 768; 128 for the scorer); longer answers are dropped",
    )
    p.add_argument("--rank", type=int, help=f"LoRA rank (default {d.rank}; bottleneck size is 8x)")
    p.add_argument("--dropout", type=float, help=f"LoRA dropout (default {d.dropout})")
    p.add_argument("--init-adapter", metavar="DIR", help="continue from an earlier adapter (sequential fine-tuning)")
    p.add_argument("--raft", action="store_true", help="build retrieval-augmented examples from Q/A DATA and --index")
    p.add_argument("--index", help=INDEX_HELP + " (for --raft)")
    p.add_argument(
        "--raft-from-documents", action="store_true", help="with --raft: also ask about the index's own fact sentences"
    )
    p.add_argument(
        "--raft-no-gold",
        type=float,
        default=0.2,
        metavar="SHARE",
        help="with --raft: share of examples without the gold passage, answered by refusal (default 0.2)",
    )
    p.add_argument(
        "--focus",
        metavar="N",
        dest="answer.focus",
        type=int,
        help="with --raft: show each passage cut to its N most probable sentences, as `rag ask` shows the generator "
        "([answer] focus of the config, default 1); 0 for whole passages",
    )
    p.add_argument("--save-steps", type=int, help=f"checkpoint (and evaluate) every N steps (default {d.save_steps})")
    p.add_argument(
        "--eval-share", type=float, help=f"share of examples held out for the eval loss (default {d.eval_share})"
    )
    p.add_argument("--resume", action="store_true", help="resume an interrupted run from its last checkpoint")
    p.add_argument(
        "--group-by-length", action="store_true", help="batch examples of similar length (less padding when they vary)"
    )
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("adapters", help="list or merge tuned adapters")
    p.set_defaults(parser=p)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    pa = actions.add_parser("list", help="adapters under a folder (default: adapters/)")
    pa.add_argument("folder", nargs="?", default="adapters")
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(func=cmd_adapters_list)
    pa = actions.add_parser("merge", help="merge an adapter into its base model: a folder `rag ask --model` loads")
    pa.add_argument("adapter", metavar="ADAPTER")
    pa.add_argument("--out", required=True, metavar="DIR")
    pa.set_defaults(func=cmd_adapters_merge)


def cmd_tune(args) -> int:
    from ..tune import tune

    options = options_from(TuneOptions, args)
    data = args.data
    if options.task in ("asks", "char-scorer"):
        return _tune_chinese_reading(args, options)
    source = None
    if options.task == "scorer":
        data, source = _scorer_data(args)
    elif args.raft:
        data, source = _raft_data(args, options)
    result = tune(data, args.out, options, source=source)
    if result.left_out:
        from ..tunedata import left_out_note

        print(f"rag: {left_out_note(result.left_out)}", file=sys.stderr)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under `accelerate launch`, rank 0 reports
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    print(
        f"{result.out}: {result.method}, {result.steps} steps, {result.trainable_params:,} trainable parameters "
        f"({result.trainable_params / result.total_params:.2%}), train loss {result.train_loss:.4f}"
        + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else "")
        + f", {result.seconds:.0f}s"
        + (f"; {result.dropped_too_long} examples over --max-length dropped" if result.dropped_too_long else "")
    )
    return 0


SCRATCH_MIN = 1000  # questions a character scorer needs from scratch (the shipped one learned from 8,332)
IGNORED_BY_ASKS = ("method", "base", "max_steps", "max_minutes", "batch_size", "max_length", "rank", "dropout")


def _tune_chinese_reading(args, options) -> int:
    """`rag tune --task asks` or `--task char-scorer`: the ask model (rag.asks) or the character scorer
    (rag.charscorer) from scorer data, grouped by question."""
    import time

    from ..asks import listwise
    from ..errors import ConfigError
    from ..tunedata import data_hash, read_records

    task = options.task
    if task == "asks":
        from ..asks import load_asks as load
        from ..asks import train

        what, key, default_lr = "ask model", "asks", 3e-3
    else:
        from ..charscorer import load_char_scorer as load
        from ..charscorer import train

        what, key, default_lr = "character scorer", "char_scorer", 1e-3
    started = time.time()
    ignored = [f"--{name.replace('_', '-')}" for name in IGNORED_BY_ASKS if getattr(args, name, None) is not None]
    if ignored:
        print(
            f"rag: --task {task} ignores {', '.join(ignored)} (it takes --epochs, --lr, --seed and --init-adapter)",
            file=sys.stderr,
        )
    records = read_records(args.data)
    examples, _ = _scorer_data(args)
    groups = listwise([(e.pair[0], e.pair[1], e.label) for e in examples])
    if not groups:
        raise ConfigError(
            f"{args.data}: no question has both a text that answers it (label 1) and one that does not (label 0); "
            f"the {what} learns which of a question's texts answers it"
        )
    init = load(options.init_adapter) if options.init_adapter else None
    if options.init_adapter and init is None:
        raise ConfigError(f"--init-adapter {options.init_adapter!r}: no {what} there to continue from")
    if task == "char-scorer" and init is None and len(groups) < SCRATCH_MIN:
        raise ConfigError(
            f"{args.data}: {len(groups)} questions are too few to train a character scorer from scratch (at least "
            f"{SCRATCH_MIN}); continue from the shipped one with --init-adapter bundled"
        )
    epochs = max(1, round(options.epochs))
    model = train(
        groups,
        epochs=epochs,
        learning_rate=options.lr or default_lr,
        seed=options.seed,
        init=init,
        progress=lambda message: print(f"rag: {message}", file=sys.stderr, flush=True),
    )
    model.info.update(
        {
            "data": {"path": str(args.data), "examples": len(groups), "hash": data_hash(records)},
            "lineage": (init.info.get("lineage", []) if init is not None else [])
            + [{"task": task, "init": options.init_adapter or None, "out": str(args.out)}],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    model.save(args.out)
    loss = model.info["history"][-1]["loss"]
    summary = {"out": str(args.out), "task": task, "questions": len(groups), "epochs": epochs, "loss": loss}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(
            f"{args.out}: {what}, {len(groups)} questions, {epochs} epochs, listwise loss {loss:.4f}, "
            f'{time.time() - started:.0f}s; use it with `answer.{key} = "{args.out}"` (or --{key.replace("_", "-")}), '
            "then refit the reader on your questions (rag calibrate --questions Q.jsonl)"
        )
    return 0


def _train_only(records: list[dict]) -> list[dict]:
    """`records` of the train split, saying what was left out (an eval question set's dev and test questions)."""
    from ..tunedata import left_out_note, train_records

    kept, left = train_records(records)
    if left:
        print(f"rag: {left_out_note(left)}", file=sys.stderr)
    return kept


def _scorer_data(args):
    """What `rag tune --task scorer` trains on: labelled pairs as they are (or SQuAD/CMRC JSON, made into
    pairs), a feedback log or question/answer records over the index's passages (`--index`)."""
    from ..errors import ConfigError
    from ..readerdata import qa_pairs
    from ..retrieve import Retriever
    from ..tunedata import detect_format, is_feedback, read_records, to_examples

    records = read_records(args.data)
    if is_feedback(records):
        return _feedback_examples(records, args), {"path": str(args.data), "format": "feedback"}
    records = _train_only(records)
    fmt = detect_format(records) if records else "pairs"
    if fmt == "pairs":
        examples = to_examples(records, "pairs")[1]
    elif fmt == "qa":
        if not args.index:
            raise ConfigError(
                f"{args.data}: question/answer records train the scorer over your knowledge base's passages (their "
                "sentences holding the answer against the others): give the index with --index NAME"
            )
        retriever = Retriever(index_path(args.index))
        pairs, unused = qa_pairs(records, lambda q: [h.chunk for h in retriever.search(q, k=5)])
        print(
            f"rag: {len(pairs)} pairs from {len(records) - unused} of {len(records)} questions"
            + (f" ({unused} left out: no sentence of their top 5 passages holds their answer)" if unused else ""),
            file=sys.stderr,
        )
        examples = to_examples(pairs, "pairs")[1] if pairs else []
    else:
        raise ConfigError(
            f"{args.data}: {fmt} records cannot train the scorer; it learns from pairs "
            '{"question", "text", "label": 0 or 1}, question/answer records with --index, SQuAD/CMRC 2018 JSON, '
            "or rag serve's feedback log with --index"
        )
    if not any(e.label for e in examples) or all(e.label for e in examples):
        raise ConfigError(
            f"{args.data}: reading models learn from both texts that answer their question (label 1) and texts "
            f"that do not (label 0); these {len(examples)} pairs have only "
            + ("answers" if examples and examples[0].label else "non-answers")
        )
    return examples, {"path": str(args.data), "format": fmt}


def _raft_data(args, options):
    """RAFT examples (`rag tune --raft`) from the question/answer records of the train split over `--index`."""
    from ..errors import ConfigError
    from ..pipeline import RAG
    from ..tunedata import qa_from_chunks, raft_examples, read_records

    config, _ = settings(args)
    rag = RAG(index_path(args.index), config)
    records = _train_only(read_records(args.data))
    names = {c.source for c in rag.retriever.chunks}
    named = [r for r in records if r.get("sources")]
    unmatched = [r for r in named if not any(n.endswith(s) for s in r["sources"] for n in names)]
    if unmatched:
        shown = ", ".join(repr(s) for s in unmatched[0]["sources"][:2])
        message = (
            f"{len(unmatched)} of {len(named)} records name sources no file of the index {args.index} has (e.g. "
            f"{shown}; the index holds names like {sorted(names)[0]!r})"
        )
        if len(unmatched) == len(named) and not args.raft_from_documents:
            raise ConfigError(f"{args.data}: {message}: fix 'sources', or index the documents they name")
        print(f"rag: {message}; their questions are taught as refusals", file=sys.stderr)
    if args.raft_from_documents:
        records += qa_from_chunks(rag.retriever.chunks)
    if not records:
        raise ConfigError(f"{args.data}: no question/answer records of the train split to make RAFT examples from")
    examples = raft_examples(records, rag.retriever, without_gold=args.raft_no_gold, seed=options.seed, focus=rag.shown)
    return examples, {"path": str(args.data), "format": "raft", "index": str(args.index)}


def _feedback_examples(records: list[dict], args) -> list:
    """Scorer examples from a feedback log, over the chunks of the index the answers came from."""
    import sys

    from ..errors import ConfigError
    from ..readerdata import feedback_pairs
    from ..retrieve import Retriever
    from ..tunedata import to_examples

    if not args.index:
        raise ConfigError("training the scorer on a feedback log needs the index its answers came from: --index NAME")
    chunks = {c.id: c for c in Retriever(index_path(args.index)).chunks}
    pairs, unused = feedback_pairs(records, chunks)
    print(f"rag: {len(pairs)} pairs from {len(records) - unused} of {len(records)} feedback records", file=sys.stderr)
    if not pairs:
        raise ConfigError(
            f"{args.data}: no usable feedback (ratings of 1 or -1 on answers whose passages are still in the index, "
            "with their question: feedback logged by this version of rag serve)"
        )
    return to_examples(pairs, "pairs")[1]


def cmd_adapters_list(args) -> int:
    from ..adapters import list_adapters

    rows = list_adapters(args.folder)
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no adapters under {args.folder}")
    for r in rows if not args.json else []:
        lineage = " -> ".join(str(m) for m in r["lineage"])
        print(
            f"{r['path']}  {r['method']}  base={r['base']}  steps={r['steps']}  eval_loss={r['eval_loss']}  "
            f"lineage={lineage}"
        )
    return 0


def cmd_adapters_merge(args) -> int:
    from ..adapters import merge_adapter

    print(f"merged model: {merge_adapter(args.adapter, args.out)}")
    return 0
