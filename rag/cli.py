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
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_embed_args(p)

    p = sub.add_parser("search", help="show the chunks most relevant to a query")
    p.add_argument("query", metavar="QUERY", help="the query; '-' reads one query per line from standard input")
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("-k", type=int, help="number of hits (default 5)")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], help="retrieval mode (default hybrid)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per query)")
    p.add_argument("--embedder", metavar="MODEL", help="must match the index's embedder (checked)")

    p = sub.add_parser("eval", help="evaluate retrieval (and, later, answers)")
    esub = p.add_subparsers(dest="eval_command", metavar="WHAT")
    pe = esub.add_parser("retrieval", help="nDCG@10, recall@10/100 and MRR@10 on a BEIR-format dataset")
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
        if args.command == "eval":
            if args.eval_command == "retrieval":
                return cmd_eval_retrieval(args)
            parser.parse_args(["eval", "--help"])
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
    config.index.__post_init__()
    return config, explicit


def cmd_index(args) -> int:
    from .ingest import build_index

    config, explicit = _config(args)
    folder = index_path(args.index)
    progress = False if args.no_progress or args.json else None
    summary = build_index(args.paths, folder, config, rebuild=args.rebuild, progress=progress, explicit=explicit)
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
