"""The `rag` command line. Imports nothing heavy until a command runs: `rag --help` never loads torch.

Each command lives in the module of the stage it drives (`ingest`: index, search, prepare; `answer`: ask,
chat, calibrate; `tuning`: tune, adapters; `evaluate`: eval, eval retrieval; `serving`: serve) and registers
itself with `set_defaults(func=...)`. Flags that change a setting are declared with the setting's dotted
name as `dest` (`--mode` -> "answer.mode"), and one helper (`common.settings`) applies them to the
config from `rag.toml`, so every command validates its flags the same way.

Errors that `rag` raises on purpose print as one line (`rag: error: ...`) with exit code 1; usage errors
exit with 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from . import answer, evaluate, ingest, serving, tuning

COMMANDS = (ingest, answer, tuning, serving, evaluate)  # the order `rag --help` lists them in


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Retrieval-augmented answers over your own knowledge base, with optional adapter tuning.",
        epilog='Start with `make index`, then `rag ask "..."`. Docs: README.md.',
    )
    parser.add_argument("--version", action="version", version=f"rag {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (default: ./rag.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


# what an interrupted command leaves behind, and how to go on
INTERRUPTED = {
    "index": "the index is unchanged unless the run had committed (run rag index again to finish)",
    "tune": "the last saved checkpoint is kept: run the same command with --resume to go on (--save-steps sets how "
    "often one is saved); OUT was not written",
    "eval": "the report was not written",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["eval", "retrieval"]:
        argv = ["eval-retrieval", *argv[2:]]
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        (getattr(args, "parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    _quiet_libraries(args.verbose)
    from ..errors import RagError

    try:
        return args.func(args)
    except RagError as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"rag: interrupted; {INTERRUPTED.get(args.command, 'nothing half-written was left behind')}",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        # whoever read the output stopped (`rag search ... | head`): stop quietly, as Unix tools do; point
        # stdout at /dev/null so that flushing it at exit does not raise again
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141


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
    # pypdf: what it recovers from, or the damage a skipped file's message already names
    for name in ("sentence_transformers", "transformers", "jieba", "faiss", "pypdf"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:  # deprecations inside the libraries (peft reading transformers' renamed attributes)
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|torch)\b")


if __name__ == "__main__":
    sys.exit(main())
