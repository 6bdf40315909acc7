"""The `rag` command line. Imports nothing heavy until a command runs: `rag --help` never loads torch.

Errors that `rag` raises on purpose print as one line (`rag: error: ...`) with exit code 1; usage errors
exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__

INDEX_HELP = "index folder, or a bare name for indexes/NAME (default: indexes/default)"


def index_path(value: str | None) -> Path:
    """`--index` value to a folder: a bare name means indexes/NAME."""
    if not value:
        return Path("indexes/default")
    path = Path(value)
    if len(path.parts) == 1 and not path.exists() and value not in (".", ".."):
        return Path("indexes") / value
    return path


def _add_embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--embedder", metavar="MODEL", help="sentence-transformers model id or folder, or 'hash' (test fake)"
    )
    p.add_argument("--query-prefix", help="text put before each query, e.g. 'query: ' for e5 models")
    p.add_argument("--document-prefix", help="text put before each chunk, e.g. 'passage: ' for e5 models")
    p.add_argument("--batch-size", type=int, help="embedding batch size (default 32)")
    p.add_argument("--device", help="torch device for the embedder, e.g. cpu or cuda (default: auto)")


def _add_answer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("-k", type=int, help="passages given to the answer (default 3)")
    p.add_argument(
        "--mode", choices=["extractive", "generative", "auto"], help="how answers are made (default: extractive)"
    )
    p.add_argument("--model", help="generator: a causal LM id or folder (default: SmolLM2-135M-Instruct, bundled)")
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter folder to load onto the generator")
    p.add_argument(
        "--closed-book", action="store_true", help="answer without retrieval (the model alone; for comparisons)"
    )
    p.add_argument("--max-new-tokens", type=int, help="answer length limit in tokens (default 96)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Retrieval-augmented answers over your own knowledge base, with optional adapter tuning.",
        epilog='Start with `make index`, then `rag search "..."`. Docs: README.md.',
    )
    parser.add_argument("--version", action="version", version=f"rag {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (default: ./rag.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="index files into a searchable index (only what changed is re-embedded)")
    p.add_argument("paths", nargs="*", default=["corpora"], metavar="PATH", help="files or folders (default: corpora)")
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and embed everything anew")
    p.add_argument("--chunk-size", type=int, metavar="TOKENS", help="chunk size in embedder tokens (default 200)")
    p.add_argument("--chunk-overlap", type=int, metavar="TOKENS", help="overlap between chunks (default 32)")
    p.add_argument("--factory", help="FAISS index_factory string (default Flat = exact), e.g. IVF1024,PQ32")
    p.add_argument("--nprobe", type=int, help="IVF lists visited per query (default 16)")
    p.add_argument("--refine", type=int, help="compressed indexes: re-score this many candidates exactly (e.g. 100)")
    p.add_argument("--shard-size", type=int, help="build the vector index in shards of this many rows, merged")
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default) or ray: read, chunk and embed on a Ray cluster (pip install 'rag[ray]')",
    )
    p.add_argument("--address", help="Ray cluster address for --engine ray (default: $RAY_ADDRESS, else local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_embed_args(p)

    p = sub.add_parser("search", help="show the chunks most relevant to a query")
    p.add_argument("query", metavar="QUERY", help="the query; '-' reads one query per line from standard input")
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("-k", type=int, help="number of hits (default 5)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default hybrid)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per query)")
    p.add_argument("--embedder", metavar="MODEL", help="must match the index's embedder (checked)")

    p = sub.add_parser("ask", help="answer a question from the index, with citations (or refuse)")
    p.add_argument(
        "question", metavar="QUESTION", help="the question; '-' reads one question per line from standard input"
    )
    _add_answer_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object per question)")

    p = sub.add_parser("chat", help="multi-turn conversation in the terminal (follow-up questions work)")
    _add_answer_args(p)

    p = sub.add_parser("prepare", help="get the default models ready (converts the bundled generator once)")
    p.add_argument("--model", help="generator to prepare (default: the bundled SmolLM2-135M-Instruct)")

    p = sub.add_parser("calibrate", help="calibrate the refusal threshold on labelled questions")
    p.add_argument("--questions", default="eval/questions.jsonl", help="JSONL with question, answerable, split")
    p.add_argument(
        "--split", default="train", help="which split to calibrate on (default train; 'all' for every question)"
    )
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("tune", help="tune an adapter (LoRA and the rest of the PEFT family) on your data")
    p.add_argument(
        "data",
        metavar="DATA",
        help="JSONL/JSON records (alpaca, chat messages, question/answer, text) or a folder of documents",
    )
    p.add_argument(
        "--method",
        default="lora",
        help="lora (default), adalora, ia3, prefix, prompt, ptuning, bottleneck, full, qlora",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (a PEFT adapter; a full model for --method full)"
    )
    p.add_argument("--base", help="base model id or folder (default: the default generator)")
    p.add_argument("--max-steps", type=int, default=-1, help="training steps (default: --epochs epochs)")
    p.add_argument("--epochs", type=float, default=3.0, help="epochs when --max-steps is not given (default 3)")
    p.add_argument("--max-minutes", type=float, help="stop and save after this many minutes of training")
    p.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per step (default 4)")
    p.add_argument(
        "--max-length", type=int, default=768, help="tokens per example; longer supervised ones are dropped and counted"
    )
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (bottleneck size is 8x)")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    p.add_argument("--init-adapter", metavar="DIR", help="continue from an earlier adapter (sequential fine-tuning)")
    p.add_argument(
        "--raft", action="store_true", help="build retrieval-augmented examples from question/answer DATA and --index"
    )
    p.add_argument("--index", help=INDEX_HELP + " (for --raft)")
    p.add_argument(
        "--raft-from-documents",
        action="store_true",
        help="with --raft: also make questions from the index's own fact sentences",
    )
    p.add_argument(
        "--raft-no-gold",
        type=float,
        default=0.2,
        metavar="SHARE",
        help="with --raft: share of examples without the gold passage, answered by refusal (default 0.2)",
    )
    p.add_argument("--resume", action="store_true", help="resume an interrupted run from its last checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = sub.add_parser("adapters", help="list or merge tuned adapters")
    asub = p.add_subparsers(dest="adapters_command", metavar="ACTION")
    pa = asub.add_parser("list", help="adapters under a folder (default: adapters/)")
    pa.add_argument("folder", nargs="?", default="adapters")
    pa.add_argument("--json", action="store_true")
    pa = asub.add_parser("merge", help="merge an adapter into its base model: a folder `rag ask --model` loads")
    pa.add_argument("adapter", metavar="ADAPTER")
    pa.add_argument("--out", required=True, metavar="DIR")

    p = sub.add_parser(
        "serve",
        help="HTTP API for bots: OpenAI chat completions (streamed too), search, feedback",
        description="Serve the index over HTTP with FastAPI/uvicorn. API keys come from RAG_API_KEYS "
        "(comma-separated) and/or --api-keys-file; --no-auth is only allowed on a loopback address.",
    )
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-keys-file", metavar="FILE", help="API keys, one per line (adds to RAG_API_KEYS)")
    p.add_argument("--no-auth", action="store_true", help="accept requests without a key (loopback only)")
    p.add_argument("--adapters-dir", default="adapters", help="adapters offered as models, by folder name")
    p.add_argument("--indexes-dir", default="indexes", help="indexes a request may name (default indexes/)")
    p.add_argument(
        "--mode", choices=["extractive", "generative", "auto"], help="how answers are made (default: extractive)"
    )
    p.add_argument("--model", help="generator: a causal LM id or folder (default: SmolLM2-135M-Instruct, bundled)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes on the same port, sharing the index (default 1)"
    )
    p.add_argument("--generation-slots", type=int, default=1, help="concurrent generations per worker (default 1)")
    p.add_argument("--max-queue", type=int, default=32, help="answers waiting for a slot before 503 (default 32)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (default 1 MB)")
    p.add_argument("--feedback-log", default="feedback.jsonl", help="where POST /v1/feedback appends (JSONL)")
    p.add_argument("--log-questions", action="store_true", help="log questions (off: they may hold personal data)")

    p = sub.add_parser(
        "eval",
        help="compare closed-book, RAG, fine-tuned and RAFT systems on a suite; writes a report",
        description="Answer a suite's test questions with each system, score them (retrieval recall/MRR/nDCG, "
        "EM, F1, ROUGE-L, contains-gold, refusals, citations, latency) with 95% bootstrap intervals and paired "
        "tests, and write eval/reports/<run>/ (report.md, metrics.json, predictions.jsonl, charts). "
        "Retrieval metrics alone on BEIR/SQuAD/CMRC data: `rag eval retrieval --help`.",
    )
    p.add_argument("suite", metavar="SUITE", help="suite file (YAML or JSON), e.g. eval/suites/sample.yaml")
    p.add_argument(
        "--systems", help="comma-separated: closed-book, rag, ft, ft+rag, raft+rag, extractive (default: the suite's)"
    )
    p.add_argument("--out", metavar="DIR", help="report folder (default eval/reports/<suite>-<time>)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N test questions")
    p.add_argument("--data", metavar="PATH", help="where the suite's SQuAD/CMRC/BEIR data is (overrides its path)")
    p.add_argument("--answer-mode", choices=["generative", "auto", "extractive"], help="how RAG systems answer")
    p.add_argument("--train-steps", type=int, metavar="N", help="training steps per adapter (overrides the suite)")
    p.add_argument("--train-minutes", type=float, metavar="M", help="training time limit per adapter")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="KIND=DIR",
        help="use a trained adapter instead of training one: ft=DIR or raft=DIR (repeatable)",
    )
    p.add_argument("--work", metavar="DIR", help="index and adapter cache (default eval/work/<suite>)")
    p.add_argument("--check", metavar="THRESHOLDS", help="JSON thresholds; exit 3 when a metric regresses below them")
    p.add_argument("--json", action="store_true", help="print metrics.json")

    pe = sub.add_parser(
        "eval-retrieval",
        help="retrieval metrics alone (nDCG@10, recall@10/100, MRR@10) on BEIR/SQuAD/CMRC data; also `rag eval retrieval`",
    )
    src = pe.add_mutually_exclusive_group(required=True)
    src.add_argument("--beir", metavar="DIR", help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    src.add_argument("--squad", metavar="FILE", help="SQuAD v1/v2 JSON: paragraphs as documents")
    src.add_argument("--cmrc", metavar="FILE", help="CMRC 2018 JSON: paragraphs as documents")
    pe.add_argument(
        "--ignore-identical-ids", action="store_true", help="drop hits whose id equals the query id (ArguAna, Quora)"
    )
    pe.add_argument("--split", default="test", help="qrels split (default test)")
    pe.add_argument("--mode", default="dense", help="dense, bm25, hybrid, or a comma-separated list (default dense)")
    pe.add_argument("--limit", type=int, help="evaluate only the first N queries")
    pe.add_argument("--json", action="store_true", help="print JSON")
    _add_embed_args(pe)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["eval", "retrieval"]:
        argv = ["eval-retrieval", *argv[2:]]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _quiet_libraries(args.verbose)
    from .errors import RagError

    try:
        if args.command == "index":
            return cmd_index(args)
        if args.command == "search":
            return cmd_search(args)
        if args.command == "ask":
            return cmd_ask(args)
        if args.command == "chat":
            return cmd_chat(args)
        if args.command == "prepare":
            return cmd_prepare(args)
        if args.command == "calibrate":
            return cmd_calibrate(args)
        if args.command == "tune":
            return cmd_tune(args)
        if args.command == "adapters":
            return cmd_adapters(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "eval-retrieval":
            return cmd_eval_retrieval(args)
        return 2
    except RagError as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rag: interrupted; the index is unchanged unless the run had committed", file=sys.stderr)
        return 130


def _quiet_libraries(verbose: bool) -> None:
    """Keep library chatter (load bars, advisory warnings) off the terminal unless --verbose."""
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("rag: %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("sentence_transformers", "transformers", "jieba", "faiss"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


def _config(args):
    from .config import Config

    config = Config.load(args.config)
    explicit = set()
    embed = config.embed
    for attr, arg in (
        ("model", "embedder"),
        ("query_prefix", "query_prefix"),
        ("document_prefix", "document_prefix"),
        ("batch_size", "batch_size"),
        ("device", "device"),
    ):
        value = getattr(args, arg, None)
        if value is not None:
            setattr(embed, attr, value)
            if attr in ("model", "query_prefix", "document_prefix"):
                explicit.add("embed")
    embed.__post_init__()
    if getattr(args, "chunk_size", None) is not None:
        config.chunk.size = args.chunk_size
        explicit.add("chunk")
    if getattr(args, "chunk_overlap", None) is not None:
        config.chunk.overlap = args.chunk_overlap
        explicit.add("chunk")
    config.chunk.__post_init__()
    if getattr(args, "factory", None):
        config.index.factory = args.factory
    if getattr(args, "nprobe", None) is not None:
        config.index.nprobe = args.nprobe
    if getattr(args, "refine", None) is not None:
        config.index.refine = args.refine
    if getattr(args, "shard_size", None) is not None:
        config.index.shard_size = args.shard_size
    config.index.__post_init__()
    return config, explicit


def cmd_index(args) -> int:
    from .ingest import build_index

    config, explicit = _config(args)
    folder = index_path(args.index)
    progress = False if args.no_progress or args.json else None
    summary = build_index(
        args.paths,
        folder,
        config,
        rebuild=args.rebuild,
        progress=progress,
        explicit=explicit,
        engine=args.engine,
        address=args.address,
    )
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        for s in summary.skipped:
            print(f"skipped {s.source}: {s.reason}", file=sys.stderr)
        print(
            f"{folder}: {len(summary.indexed)} indexed, {len(summary.unchanged)} unchanged, "
            f"{len(summary.removed)} removed, {len(summary.skipped)} skipped; "
            f"{summary.chunks} chunks ({summary.embedded} embedded) in {summary.seconds:.1f}s"
        )
    return 0


def cmd_search(args) -> int:
    from .config import Config
    from .retrieve import Retriever

    config = Config.load(args.config)
    embed_config = None
    if args.embedder:
        embed_config = config.embed
        embed_config.model = args.embedder
    retriever = Retriever(index_path(args.index), config.retrieve, embed_config=embed_config)
    queries = [line.strip() for line in sys.stdin if line.strip()] if args.query == "-" else [args.query]
    for query in queries:
        hits = retriever.search(query, k=args.k, mode=args.mode)
        if args.json:
            print(json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False), flush=True)
        else:
            _print_hits(query, hits, multiple=len(queries) > 1)
    return 0


def _print_hits(query: str, hits, multiple: bool) -> None:
    import textwrap

    if multiple:
        print(f"== {query}")
    if not hits:
        print("no matching passages")
    for hit in hits:
        where = hit.chunk.source + (f" p.{hit.chunk.page}" if hit.chunk.page else "")
        print(f"[{hit.rank}] {hit.score:.3f}  {where}" + (f"  ({hit.chunk.context})" if hit.chunk.context else ""))
        text = " ".join(hit.chunk.text.split())
        print(textwrap.indent(textwrap.shorten(text, 320, placeholder=" ..."), "    "))


def _rag(args):
    from .config import Config
    from .pipeline import RAG

    config = Config.load(args.config)
    if args.model:
        config.generate.model = args.model
    if args.adapter:
        config.generate.adapter = args.adapter
    if args.max_new_tokens:
        config.generate.max_new_tokens = args.max_new_tokens
    config.generate.__post_init__()
    if args.mode:
        config.answer.mode = args.mode
    if args.k:
        config.answer.k = args.k
    config.answer.__post_init__()
    if args.closed_book or args.adapter or args.model:
        if config.answer.mode == "extractive":
            config.answer.mode = "generative"  # naming a model means the user wants it to answer
    if args.closed_book:
        return RAG(None, config)  # the model alone: no index needed
    return RAG(index_path(args.index), config)


def _print_answer(answer, streamed: bool) -> None:
    if not streamed:
        print(answer.answer)
    else:
        print()
    if answer.citations:
        for n in answer.citations:
            hit = answer.sources[n - 1]
            page = f", page {hit.chunk.page}" if hit.chunk.page else ""
            print(f"  [{n}] {hit.chunk.source}{page}")
    elif answer.refused:
        print("  (no supporting passage found)")


def cmd_ask(args) -> int:
    rag = _rag(args)
    if args.question == "-":
        questions = [line.strip() for line in sys.stdin if line.strip()]
    else:
        questions = [args.question]
    ask = (lambda q, **kw: rag.ask(q, closed_book=True, **kw)) if args.closed_book else rag.ask
    for question in questions:
        if args.json:
            answer = ask(question)
            print(json.dumps({**answer.to_dict(), "question": question}, ensure_ascii=False), flush=True)
            continue
        stream = sys.stdout.isatty()
        if len(questions) > 1:
            print(f"== {question}")
        answer = ask(question, on_text=(lambda t: print(t, end="", flush=True)) if stream else None)
        _print_answer(answer, streamed=stream)
    return 0


def cmd_chat(args) -> int:
    rag = _rag(args)
    session = rag.chat(closed_book=args.closed_book)
    print("Ask a question (empty line or Ctrl-D to quit).", file=sys.stderr)
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            break
        if not question:
            break
        answer = session.ask(question, on_text=lambda t: print(t, end="", flush=True))
        _print_answer(answer, streamed=True)
    return 0


def cmd_prepare(args) -> int:
    from .config import DEFAULT_GENERATOR
    from .generate import prepare_model

    path = prepare_model(args.model or DEFAULT_GENERATOR, progress=lambda m: print(f"rag: {m}", file=sys.stderr))
    print(f"generator ready: {path}")
    return 0


def cmd_calibrate(args) -> int:
    from .config import Config
    from .pipeline import RAG, calibrate_min_evidence

    path = Path(args.questions)
    if not path.is_file():
        print(f"rag: error: {path} does not exist", file=sys.stderr)
        return 1
    questions = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rag = RAG(index_path(args.index), Config.load(args.config))
    result = calibrate_min_evidence(rag, questions, None if args.split == "all" else args.split)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(
            f"min_evidence = {result['min_evidence']} (from {result['questions']} questions; "
            f"{result['unanswerable_refused']} unanswerable ones fall below it). Put it in rag.toml under [answer]."
        )
    return 0


def cmd_tune(args) -> int:
    from .config import DEFAULT_GENERATOR
    from .tune import TuneOptions, tune

    options = TuneOptions(
        method=args.method,
        base=args.base or DEFAULT_GENERATOR,
        max_steps=args.max_steps,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        rank=args.rank,
        dropout=args.dropout,
        init_adapter=args.init_adapter,
        resume=args.resume,
        seed=args.seed,
        max_minutes=args.max_minutes,
    )
    data = args.data
    if args.raft:
        from .retrieve import Retriever
        from .tunedata import raft_examples, read_records

        retriever = Retriever(index_path(args.index))
        records = [r for r in read_records(args.data) if r.get("split", "train") == "train"]
        if args.raft_from_documents:
            from .tunedata import qa_from_chunks

            records += qa_from_chunks(retriever.chunks)
        data = raft_examples(records, retriever, without_gold=args.raft_no_gold, seed=args.seed)
    result = tune(data, args.out, options)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under `accelerate launch`, rank 0 reports
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print(
            f"{result.out}: {result.method}, {result.steps} steps, {result.trainable_params:,} trainable parameters "
            f"({result.trainable_params / result.total_params:.2%}), train loss {result.train_loss:.4f}"
            + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else "")
            + f", {result.seconds:.0f}s"
            + (f"; {result.dropped_too_long} examples over --max-length dropped" if result.dropped_too_long else "")
        )
    return 0


def cmd_adapters(args) -> int:
    if args.adapters_command == "list":
        from .tune import META

        rows = []
        root = Path(args.folder)
        for config in sorted(root.rglob("adapter_config.json")) + sorted(root.rglob("rag_tune.json")):
            folder = config.parent
            if any(r["path"] == str(folder) for r in rows):
                continue
            meta = json.loads((folder / META).read_text()) if (folder / META).exists() else {}
            base = meta.get("base_model") or json.loads(config.read_text()).get("base_model_name_or_path")
            m = meta.get("metrics", {})
            rows.append(
                {
                    "path": str(folder),
                    "method": meta.get("method", "?"),
                    "base": base,
                    "steps": m.get("steps"),
                    "eval_loss": m.get("eval_loss"),
                    "lineage": [s.get("method") for s in meta.get("lineage", [])],
                }
            )
        if args.json:
            print(json.dumps(rows))
        elif not rows:
            print(f"no adapters under {root}")
        for r in rows if not args.json else []:
            print(
                f"{r['path']}  {r['method']}  base={r['base']}  steps={r['steps']}  eval_loss={r['eval_loss']}  lineage={' -> '.join(r['lineage'])}"
            )
        return 0
    if args.adapters_command == "merge":
        from .adapters import merge_adapter

        print(f"merged model: {merge_adapter(args.adapter, args.out)}")
        return 0
    build_parser().parse_args(["adapters", "--help"])
    return 2


def cmd_serve(args) -> int:
    from .serve import ServeConfig, Service, read_api_keys, run

    config, _ = _config(args)
    if args.mode:
        config.answer.mode = args.mode
    if args.model:
        config.generate.model = args.model
    serve = ServeConfig(
        host=args.host,
        port=args.port,
        index=str(index_path(args.index)),
        indexes_dir=args.indexes_dir,
        adapters_dir=args.adapters_dir,
        api_keys=read_api_keys(os.environ.get("RAG_API_KEYS"), args.api_keys_file),
        no_auth=args.no_auth,
        max_body_bytes=args.max_body_bytes,
        generation_slots=args.generation_slots,
        max_queue=args.max_queue,
        feedback_log=args.feedback_log,
        log_questions=args.log_questions,
    )
    from . import store

    store.require_manifest(Path(serve.index))  # a clear error now rather than on the first request
    if args.workers < 1:
        from .errors import ConfigError

        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    service = Service(serve, config, mmap=args.workers > 1)
    if args.workers == 1:
        print(f"rag serve: loading {serve.index} ...", file=sys.stderr, flush=True)
        service.warm_up()
    keys = "no auth (loopback only)" if serve.no_auth else f"{len(serve.api_keys)} API key(s)"
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(
        f"rag serve: http://{serve.host}:{serve.port}/v1 ({keys}{workers}); Ctrl-C stops", file=sys.stderr, flush=True
    )
    run(service, workers=args.workers)
    return 0


def cmd_eval(args) -> int:
    import time

    from .errors import ConfigError
    from .harness import run_eval
    from .report import check_thresholds, read_thresholds, write_report
    from .suite import load_suite, parse_systems

    suite = load_suite(args.suite, data=args.data)
    thresholds = read_thresholds(args.check) if args.check else None
    if args.answer_mode:
        suite.answer_mode = args.answer_mode
    if args.train_steps is not None:
        suite.train.steps = args.train_steps
    if args.train_minutes is not None:
        suite.train.minutes = args.train_minutes
    suite.train.__post_init__()
    for spec in args.adapter:
        kind, _, folder = spec.partition("=")
        if kind not in ("ft", "raft") or not folder:
            raise ConfigError(f"--adapter takes ft=DIR or raft=DIR, got {spec!r}")
        suite.adapters[kind] = folder
    systems = parse_systems(args.systems) if args.systems else None
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
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


def cmd_eval_retrieval(args) -> int:
    from . import beir

    config, _ = _config(args)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    if args.beir:
        data = beir.load_beir(args.beir, args.split)
    elif args.squad:
        data = beir.from_squad(args.squad)
    else:
        data = beir.from_cmrc(args.cmrc)
    report = beir.evaluate(
        data,
        config,
        modes=modes,
        limit=args.limit,
        ignore_identical_ids=args.ignore_identical_ids,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(
            f"{report['dataset']}: {report['queries']} queries, {report['documents']} documents, embedder {report['embedder']}"
        )
        for mode, metrics in report["modes"].items():
            shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"  {mode:7s} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
