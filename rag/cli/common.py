"""What the commands share: index names, flags that set config fields, and printing hits and answers."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from ..config import DEFAULT_INDEX, GENERATE_BACKENDS, AnswerConfig, EmbedConfig, GenerateConfig

INDEX_HELP = f"index folder, or a bare name for indexes/NAME (default: {DEFAULT_INDEX})"


def index_path(value: str | None) -> Path:
    """`--index` value to a folder: a bare name means indexes/NAME.

    >>> index_path("support"), index_path(None)
    (PosixPath('indexes/support'), PosixPath('indexes/default'))
    """
    if not value:
        return Path(DEFAULT_INDEX)
    path = Path(value)
    if len(path.parts) == 1 and not path.exists() and value not in (".", ".."):
        return Path("indexes") / value
    return path


def settings(args: argparse.Namespace):
    """The config for a command: `--config` (or ./rag.toml), then every flag whose `dest` names a setting
    ("section.field") and was given. Returns (config, the set of (section, field) the flags changed)."""
    from ..config import Config

    sections = flagged(args)
    config = Config.load(args.config).override(**sections)
    return config, {(s, f) for s, fields in sections.items() for f in fields}


def flagged(args: argparse.Namespace) -> dict[str, dict]:
    """The settings the given flags name, section by section: {"answer": {"scorer": ...}} from `--scorer`."""
    sections: dict[str, dict] = {}
    for dest, value in vars(args).items():
        if "." in dest and value is not None:
            section, name = dest.split(".", 1)
            sections.setdefault(section, {})[name] = value
    return sections


def add_embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--embedder",
        dest="embed.model",
        metavar="MODEL",
        help="sentence-transformers model id or folder, or 'hash' (test fake)",
    )
    p.add_argument(
        "--query-prefix", metavar="TEXT", dest="embed.query_prefix", help="put before each query, e.g. 'query: ' for e5"
    )
    p.add_argument(
        "--document-prefix",
        metavar="TEXT",
        dest="embed.document_prefix",
        help="put before each chunk, e.g. 'passage: ' for e5",
    )
    p.add_argument(
        "--batch-size",
        metavar="N",
        dest="embed.batch_size",
        type=int,
        help=f"most texts per embedding batch (default {EmbedConfig.batch_size})",
    )
    p.add_argument(
        "--device", metavar="DEVICE", dest="embed.device", help="torch device for the embedder, e.g. cpu or cuda"
    )


def add_answer_args(p: argparse.ArgumentParser, index: bool = True) -> None:
    if index:
        p.add_argument("--index", help=INDEX_HELP)
    p.add_argument(
        "-k", metavar="K", dest="answer.k", type=int, help=f"passages given to the answer (default {AnswerConfig.k})"
    )
    p.add_argument(
        "--mode",
        dest="answer.mode",
        choices=["extractive", "generative", "auto"],
        help=f"how answers are made (default: {AnswerConfig.mode})",
    )
    p.add_argument(
        "--focus",
        metavar="N",
        dest="answer.focus",
        type=int,
        help="generative and auto modes: show the generator each passage's N best sentences, 0 for whole "
        f"passages (default {AnswerConfig.focus})",
    )
    p.add_argument(
        "--window",
        metavar="N",
        dest="answer.window",
        type=int,
        help="read each retrieved chunk with up to N chunks of its section on either side, 0 for the chunk alone "
        f"(default {AnswerConfig.window})",
    )
    p.add_argument(
        "--show-floor",
        metavar="X",
        dest="answer.show_floor",
        type=float,
        help="generative and auto modes: show the generator only passages whose best sentence the reader rates at "
        f"least X times the best passage's, 0 for all k (default {AnswerConfig.show_floor})",
    )
    p.add_argument(
        "--scorer",
        metavar="DIR",
        dest="answer.scorer",
        help="the evidence scorer: 'bundled' (default), a folder from `rag tune --task scorer`, a cross-encoder's "
        "folder or model hub id, or 'none'",
    )
    p.add_argument(
        "--reader",
        metavar="FILE",
        dest="answer.reader",
        help="the reader's weights: 'bundled' (default) or a file from `rag calibrate`",
    )
    p.add_argument(
        "--asks",
        metavar="DIR",
        dest="answer.asks",
        help="the ask model the reader uses where the scorer cannot read (Chinese): 'bundled' (default), a "
        "folder from scripts/asks.py, or 'none'",
    )
    p.add_argument(
        "--char-scorer",
        metavar="DIR",
        dest="answer.char_scorer",
        help="the character scorer the reader uses where the scorer cannot read (Chinese): 'bundled' (default), "
        "a folder from scripts/char_scorer.py, or 'none'",
    )
    p.add_argument(
        "--model",
        metavar="MODEL",
        dest="generate.model",
        help="generator: a causal LM id or folder (default: the bundled SmolLM2); without --mode, answers are generated",
    )
    p.add_argument(
        "--adapter",
        dest="generate.adapter",
        metavar="DIR",
        help="a PEFT adapter folder for the generator; with --base-url, the server's adapter by name; without "
        "--mode, answers are generated",
    )
    p.add_argument(
        "--max-new-tokens",
        metavar="N",
        dest="generate.max_new_tokens",
        type=int,
        help=f"answer length limit in tokens (default {GenerateConfig.max_new_tokens})",
    )
    add_backend_args(p)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """Where the generator runs: in process (transformers, llama.cpp) or behind an OpenAI-compatible server.
    There is deliberately no flag for the key: flags end up in shell histories and process lists."""
    p.add_argument(
        "--backend",
        dest="generate.backend",
        choices=GENERATE_BACKENDS,
        help="transformers, llamacpp or openai (HTTP); default auto: --base-url means HTTP, a .gguf model llama.cpp",
    )
    p.add_argument(
        "--base-url",
        dest="generate.base_url",
        metavar="URL",
        help="an OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI, a hosted API), e.g. http://127.0.0.1:8080/v1",
    )
    p.add_argument(
        "--api-key-env",
        dest="generate.api_key_env",
        metavar="NAME",
        help="the environment variable holding that server's API key (never the key itself)",
    )


def answer_settings(args: argparse.Namespace, closed_book: bool = False):
    """The config of an answering command: naming a model, an adapter, a backend or a server (or closed book)
    without a mode means the user wants that model to answer, so the extractive default becomes generative."""
    config, changed = settings(args)
    named = {("generate", "model"), ("generate", "adapter"), ("generate", "base_url"), ("generate", "backend")}
    wants_model = closed_book or bool(named & changed)
    if wants_model and ("answer", "mode") not in changed and config.answer.mode == "extractive":
        config = config.override(answer={"mode": "generative"})
    elif wants_model and not closed_book and config.answer.mode == "extractive":
        given = ", ".join(f"--{key.replace('_', '-')}" for section, key in sorted(named & changed))
        print(f"rag: extractive answers quote the passages without a generator: {given} not used", file=sys.stderr)
    return config


def shown_name(name: str) -> str:
    r"""A file name as one line of output: control characters (a newline in a name) written as escapes.

    >>> shown_name("kb/odd\nname.md"), shown_name("kb/退货.md")
    ('kb/odd\\nname.md', 'kb/退货.md')
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in name)


def print_hits(query: str, hits, multiple: bool) -> None:
    if multiple:
        print(f"== {query}")
    if not hits:
        print("no matching passages")
    for hit in hits:
        where = shown_name(hit.chunk.source) + (f" p.{hit.chunk.page}" if hit.chunk.page else "")
        print(f"[{hit.rank}] {hit.score:.3f}  {where}" + (f"  ({hit.chunk.context})" if hit.chunk.context else ""))
        text = " ".join(hit.chunk.text.split())
        print(textwrap.indent(textwrap.shorten(text, 320, placeholder=" ..."), "    "))


def print_answer(answer, streamed: bool) -> None:
    print() if streamed else print(answer.answer)
    if answer.citations:
        for n in answer.citations:
            hit = answer.sources[n - 1]
            page = f", page {hit.chunk.page}" if hit.chunk.page else ""
            print(f"  [{n}] {shown_name(hit.chunk.source)}{page}")
    elif answer.refused and answer.sources:  # where to look by hand: what was read and judged not to answer
        closest = list(dict.fromkeys(shown_name(hit.chunk.source) for hit in answer.sources))[:3]
        print(f"  (no passage answers it; the closest read: {', '.join(closest)})")
    elif answer.refused:
        print("  (no supporting passage found)")
    for warning in answer.warnings:
        print(f"  (warning: {warning})")


def read_lines(value: str) -> list[str]:
    """The argument itself, or one item per non-blank line of standard input when it is '-'."""
    if value == "-":
        return [line.strip() for line in sys.stdin if line.strip()]
    return [value]


def options_from(cls, args: argparse.Namespace, **fixed):
    """An options dataclass (`TuneOptions`, `TrainBudget`, ...) from the flags whose `dest` is one of its
    fields and that were given; the rest keep the dataclass's defaults. `fixed` sets fields directly."""
    import dataclasses

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}
    return cls(**{**given, **fixed})
