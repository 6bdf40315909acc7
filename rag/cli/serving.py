"""`rag serve`: the HTTP API for bots (OpenAI chat completions, search, feedback) on FastAPI/uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

from .common import INDEX_HELP, add_backend_args, index_path, settings


def register(sub) -> None:
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
        "--mode",
        dest="answer.mode",
        choices=["extractive", "generative", "auto"],
        help="how answers are made (default: extractive)",
    )
    p.add_argument(
        "--model",
        metavar="MODEL",
        dest="generate.model",
        help="generator: a causal LM id or folder, a .gguf file, or the served model's name with --base-url",
    )
    add_backend_args(p)
    p.add_argument(
        "--embedder",
        dest="embed.model",
        metavar="MODEL",
        help="search every index with this embedder (each must have been built with it; default: each index's own)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes on one port, sharing the index (1)")
    p.add_argument("--generation-slots", type=int, default=1, help="concurrent generations per worker (default 1)")
    p.add_argument(
        "--generation-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run an in-process model in a child process at lower priority, so searches stay fast (default on)",
    )
    p.add_argument("--max-queue", type=int, default=32, help="answers waiting for a slot before 503 (default 32)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (default 1 MB)")
    p.add_argument("--feedback-log", default="feedback.jsonl", help="where POST /v1/feedback appends (JSONL)")
    p.add_argument("--log-questions", action="store_true", help="log questions (off: they may hold personal data)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from .. import store
    from ..errors import ConfigError
    from ..serve import ServeConfig, Service, read_api_keys, run

    config, changed = settings(args)
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
        generation_process=args.generation_process,
        max_queue=args.max_queue,
        feedback_log=args.feedback_log,
        log_questions=args.log_questions,
    )
    store.require_manifest(index_path(args.index))  # a clear error now rather than on the first request
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    # Each index is searched with the embedder its manifest names, unless the user named one here
    forced = config.embed if ("embed", "model") in changed else None
    service = Service(serve, config, mmap=args.workers > 1, embed_config=forced)
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
