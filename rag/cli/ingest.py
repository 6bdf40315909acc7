"""`rag index`, `rag search` and `rag prepare`: build an index, look into it, get the models ready."""

from __future__ import annotations

import json
import sys

from ..config import EMBED_BACKENDS, EMBED_QUANTIZE, ChunkConfig, EmbedConfig, IndexConfig, RetrieveConfig
from .common import INDEX_HELP, add_embed_args, index_path, print_hits, read_lines, settings, shown_name

# settings that change what an index holds: naming one of them on the command line overrides the index's own
_IDENTITY = {
    ("embed", "model"): "embed",
    ("embed", "query_prefix"): "embed",
    ("embed", "document_prefix"): "embed",
    ("chunk", "size"): "chunk",
    ("chunk", "overlap"): "chunk",
}


def register(sub) -> None:
    p = sub.add_parser("index", help="index files into a searchable index (only what changed is re-embedded)")
    p.add_argument("paths", nargs="*", default=["corpora"], metavar="PATH", help="files or folders (default: corpora)")
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and embed everything anew")
    p.add_argument(
        "--chunk-size",
        dest="chunk.size",
        type=int,
        metavar="TOKENS",
        help=f"chunk size in embedder tokens (default {ChunkConfig.size})",
    )
    p.add_argument(
        "--chunk-overlap",
        dest="chunk.overlap",
        type=int,
        metavar="TOKENS",
        help=f"overlap between chunks (default {ChunkConfig.overlap})",
    )
    p.add_argument(
        "--factory",
        metavar="SPEC",
        dest="index.factory",
        help="FAISS index_factory string (default Flat = exact), e.g. IVF1024,PQ32",
    )
    p.add_argument(
        "--nprobe",
        metavar="N",
        dest="index.nprobe",
        type=int,
        help=f"IVF lists visited per query (default {IndexConfig.nprobe})",
    )
    p.add_argument(
        "--refine",
        metavar="N",
        dest="index.refine",
        type=int,
        help="compressed indexes: re-score this many candidates exactly",
    )
    p.add_argument(
        "--shard-size",
        metavar="ROWS",
        dest="index.shard_size",
        type=int,
        help="build the vector index in shards of this many rows",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default) or ray: read, chunk and embed on a Ray cluster (pip install 'rag[ray]')",
    )
    p.add_argument("--address", help="Ray cluster address for --engine ray (default: $RAY_ADDRESS, else local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_embed_args(p)
    add_embed_backend_args(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="show the chunks most relevant to a query")
    p.add_argument("query", metavar="QUERY", help="the query; '-' reads one query per line from standard input")
    p.add_argument("--index", help=INDEX_HELP)
    p.add_argument("-k", metavar="K", dest="retrieve.k", type=int, help=f"number of hits (default {RetrieveConfig.k})")
    p.add_argument(
        "--mode",
        dest="retrieve.mode",
        choices=["dense", "bm25", "hybrid"],
        help=f"retrieval mode (default {RetrieveConfig.mode})",
    )
    p.add_argument("--json", action="store_true", help="print JSON (one object per query)")
    p.add_argument("--embedder", dest="embed.model", metavar="MODEL", help="must match the index's embedder (checked)")
    add_embed_backend_args(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "prepare", help="get the models ready: the embedder's ONNX export and the generator's conversion, once"
    )
    p.add_argument("--model", help="generator to prepare (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--embedder", metavar="MODEL", help="embedder to export to ONNX (default: the bundled MiniLM)")
    p.add_argument("--only", choices=["embedder", "scorer", "generator"], help="prepare only this one")
    p.set_defaults(func=cmd_prepare)


def add_embed_backend_args(p) -> None:
    # named apart from `rag ask --backend` (the generator's); not identity settings: the vectors agree across
    # backends, so they never force re-embedding an index
    p.add_argument(
        "--embed-backend",
        dest="embed.backend",
        choices=EMBED_BACKENDS,
        help=f"what runs the embedder (default {EmbedConfig.backend}); indexes work with either",
    )
    p.add_argument(
        "--embed-quantize",
        dest="embed.quantize",
        choices=EMBED_QUANTIZE,
        help=f"onnx backend: int8 weights, faster at a small cost in quality (default {EmbedConfig.quantize})",
    )


def cmd_index(args) -> int:
    from ..ingest import build_index

    config, changed = settings(args)
    folder = index_path(args.index)
    summary = build_index(
        args.paths,
        folder,
        config,
        rebuild=args.rebuild,
        progress=False if args.no_progress or args.json else None,
        explicit={_IDENTITY[c] for c in changed if c in _IDENTITY},
        engine=args.engine,
        address=args.address,
    )
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
        return 0
    for s in summary.skipped:
        print(f"skipped {shown_name(s.source)}: {s.reason}", file=sys.stderr)
    print(
        f"{folder}: {len(summary.indexed)} indexed, {len(summary.unchanged)} unchanged, "
        f"{len(summary.removed)} removed, {len(summary.skipped)} skipped; "
        f"{summary.chunks} chunks ({summary.embedded} embedded) in {summary.seconds:.1f}s"
    )
    return 0


def cmd_search(args) -> int:
    from ..retrieve import Retriever

    config, changed = settings(args)
    folder = index_path(args.index)
    embed_config = config.embed if ("embed", "model") in changed else None
    retriever = Retriever(folder, config.retrieve, embed_config=embed_config, runtime=config.embed)
    queries = read_lines(args.query)
    for query in queries:
        hits = retriever.search(query)
        if args.json:
            print(json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False), flush=True)
        else:
            print_hits(query, hits, multiple=len(queries) > 1)
    return 0


def cmd_prepare(args) -> int:
    from ..config import DEFAULT_EMBEDDER, DEFAULT_GENERATOR
    from ..models import prepare_embedder, prepare_model

    def note(message: str) -> None:
        print(f"rag: {message}", file=sys.stderr)

    if args.only in (None, "embedder"):
        print(f"embedder ready (ONNX): {prepare_embedder(args.embedder or DEFAULT_EMBEDDER, progress=note)}")
    if args.only in (None, "scorer"):
        from ..scorer import prepare_scorer, scorer_folder

        config, _ = settings(args)
        folder = scorer_folder(config.answer.scorer)
        if folder is not None and config.embed.backend == "onnx":
            print(f"evidence scorer ready (ONNX): {prepare_scorer(folder, progress=note)}")
    if args.only in (None, "generator"):
        print(f"generator ready: {prepare_model(args.model or DEFAULT_GENERATOR, progress=note)}")
    return 0
