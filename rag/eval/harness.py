"""Run an evaluation suite: the same test questions through closed-book, RAG, fine-tuned, fine-tuned + RAG
and RAFT + RAG systems, scored without an LLM judge.

`run_eval(suite)` indexes the suite's knowledge base (incrementally, in a work folder that later runs
reuse), trains the adapters the chosen systems need within the suite's budget (or takes given ones; a
trained adapter is cached under a key of its data and settings), answers every test question with every
system and returns per-question rows that keep everything needed to recompute a score: retrieved ids,
the exact prompt, the answer, its citations and latency. `rag.eval.report` aggregates and writes the report.

The systems (closed-book, rag, ft, ft+rag, raft+rag, extractive) are described in `rag.eval.systems`: which
adapter each answers with and whether it retrieves. Each can answer on its own backend and model (the suite's
`generators`), so systems can run on a served model with the server's LoRA adapters. RAG systems answer in the suite's `answer_mode`
(generative by default), with the same refusal rule; `extractive` always answers extractively. In the
extractive answer mode no RAG system runs a language model: their generators and adapters are neither
loaded nor trained, and the run records that (`EvalRun.modes`) for the report.

What this module does not do: read suites (`rag.eval.suite`) or aggregate scores (`rag.eval.report`).
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..adapters import is_adapter_folder, read_meta
from ..answer import ungrounded
from ..errors import ConfigError
from .metrics import (
    ANSWER_METRICS,
    contains_gold,
    exact_match,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    rouge_l,
    token_f1,
)
from .suite import Suite
from .systems import BY_NAME, answer_mode_of, describe_generator, parse_systems, runs_generator, served


@dataclass
class EvalRun:
    """Everything a report is made from."""

    suite: Suite
    systems: list[str]
    rows: dict[str, list[dict]]  # system -> one row per test question, in question order
    training: dict[str, dict] = field(default_factory=dict)  # "ft" / "raft" -> cost and provenance
    index: dict = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0
    k: int = 3
    limit: int | None = None
    generators: dict[str, dict] = field(default_factory=dict)  # system -> backend, model, adapter, server
    # system -> how it answered (`answer_mode_of`): "closed-book", "generative", "auto" or "extractive" (no
    # language model ran; {} in `generators`)
    modes: dict[str, str] = field(default_factory=dict)


def run_eval(
    suite: Suite,
    systems: list[str] | str | None = None,
    limit: int | None = None,
    work: str | Path | None = None,
    embedder=None,
    generator_for: Callable[[str | None], object] | None = None,
    train: Callable | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalRun:
    """Answer the suite's test questions (the first `limit`) with each system and score the answers.

    `embedder`, `generator_for(adapter_dir)` and `train(examples, out, options)` replace the real models and
    the real trainer (tests use fakes). `work` holds the index, the materialised corpus and trained adapters
    (default: eval/work/<suite name>).
    """
    systems = parse_systems(systems) if systems is not None else list(suite.systems)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    progress = sys.stderr.isatty() if progress is None else progress
    work = Path(work or Path("eval") / "work" / suite.name)
    questions = suite.split("test")[:limit]
    started_wall = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    started = time.perf_counter()
    config = suite.config
    run = EvalRun(suite, systems, {}, started=started_wall, k=config.answer.k, limit=limit)

    specs = [BY_NAME[s] for s in systems]
    run.modes = {s: answer_mode_of(s, suite.answer_mode) for s in systems}
    idle = [s.name for s in specs if not runs_generator(run.modes[s.name]) and s.answer_mode != "extractive"]
    if idle:  # the suite's answer_mode decides: its generator systems answer with the extractive reader
        log(
            f"answer mode extractive: {', '.join(idle)} answer as the `extractive` system does, without a language "
            "model or adapter (none is trained or loaded for them); --answer-mode generative or auto compares "
            "generators"
        )
    generating = [s for s in specs if runs_generator(run.modes[s.name])]
    reads_documents = any(s.adapter == "ft" for s in generating) and "ft" not in suite.adapters
    needs_index = any(s.retrieves for s in specs) or (reads_documents and suite.train.ft_data != "questions")
    retriever = kb = None
    if needs_index:
        kb, retriever, run.index = _prepare_index(suite, work, config, embedder, progress, log)

    adapters = {}
    for kind in dict.fromkeys(
        s.adapter for s in generating if s.adapter and "adapter" not in suite.generators.get(s.name, {})
    ):
        remote = any(served(suite.generate_config(s.name)) for s in generating if s.adapter == kind)
        adapters[kind], run.training[kind] = _adapter(kind, suite, config, kb, retriever, work, train, log, remote)

    retrieved: dict[str, list] = {}  # question id -> top-10 hits, shared by the RAG systems
    for system in systems:
        adapter = adapters.get(BY_NAME[system].adapter)
        mode = run.modes[system]
        if runs_generator(mode):
            run.generators[system] = describe_generator(suite.generate_config(system, adapter))
            shown = ", ".join(f"{k} {v}" for k, v in run.generators[system].items() if v)
        else:
            run.generators[system] = {}
            shown = "answer mode extractive, no language model"
        log(f"{system}: {len(questions)} questions ({shown})")
        run.rows[system] = _answer_all(
            system, adapter, mode, questions, suite, config, kb, retriever, generator_for, retrieved, progress
        )
    run.seconds = round(time.perf_counter() - started, 1)
    return run


# ------------------------------------------------------------------------------------------------ corpus


@dataclass
class KnowledgeBase:
    """Where the suite's documents are on disk, and how an index's source names map back to suite sources."""

    root: Path
    prefix: str  # what the index puts before a path relative to `root`
    to_suite: dict[str, str]  # relative file path -> suite source (a document id), for materialised corpora

    def suite_source(self, chunk_source: str) -> str:
        rel = chunk_source[len(self.prefix) :] if chunk_source.startswith(self.prefix) else chunk_source
        return self.to_suite.get(rel, rel)

    def file_of(self, suite_source: str) -> str:
        """The indexed file name of a suite source (what `chunk.source` ends with)."""
        for rel, src in self.to_suite.items():
            if src == suite_source:
                return rel
        return suite_source


def document_files(documents: list[dict]) -> dict[str, str]:
    """{relative file path: document id} for documents {"id", ...}: each id made a safe path (two ids that
    clean to the same name are told apart by a hash), as `materialise` writes them."""
    mapping, used = {}, set()
    for doc in documents:
        parts = [re.sub(r"[^\w.-]+", "_", part).strip("._")[:80] or "_" for part in doc["id"].split("/")]
        rel = "/".join(parts) + ".md"
        if rel.lower() in used:
            rel = "/".join(parts) + "-" + hashlib.sha1(doc["id"].encode()).hexdigest()[:8] + ".md"
        used.add(rel.lower())
        mapping[rel] = doc["id"]
    return mapping


def materialise(documents: list[dict], folder: Path) -> dict[str, str]:
    """Write documents {"id", "title", "text"} as files under `folder` (Markdown with the title as heading);
    returns {relative path: document id}. Files no longer in the corpus are removed, unchanged files are not
    rewritten, so re-indexing stays incremental."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping = document_files(documents)
    by_id = {doc["id"]: doc for doc in documents}
    for rel, doc_id in mapping.items():
        doc = by_id[doc_id]
        text = (f"# {doc['title']}\n\n" if doc.get("title") else "") + doc["text"].strip() + "\n"
        path = folder / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in list(folder.rglob("*.md")):
        if path.relative_to(folder).as_posix() not in mapping:
            path.unlink()
    return mapping


def _other_embedder(index_dir: Path, wanted: str) -> str:
    """The embedder an existing index at `index_dir` was built with, when it is not `wanted` (else "")."""
    from .. import store
    from ..errors import IndexFormatError

    try:
        previous = store.read_manifest(index_dir)
    except IndexFormatError:
        return ""  # a damaged cache: build_index says so
    built = (previous.embedder.get("id") or "") if previous is not None else ""
    return built if built and built != wanted else ""


def _prepare_index(suite: Suite, work: Path, config, embedder, progress, log):
    from ..documents import source_name
    from ..embeddings import embedder_id
    from ..ingest import build_index
    from ..retrieve import Retriever

    if suite.documents is not None:
        root = work / "kb"
        mapping = materialise(suite.documents, root)
    else:
        root, mapping = suite.corpus, {}
    index_dir = work / "index"
    explicit = [s for s in ("embed", "chunk") if getattr(suite.config, s) != getattr(type(suite.config)(), s)]
    # the suite's index is a cache under its name: one built with another embedder (the suite's settings changed,
    # or another suite of the same name) is rebuilt, not an error telling the user to run `rag index --rebuild`
    rebuild = _other_embedder(index_dir, embedder.id if embedder is not None else embedder_id(config.embed.model))
    if rebuild:
        log(f"index {index_dir} was built with embedder '{rebuild}': rebuilding it")
    summary = build_index(
        [root], index_dir, config, embedder=embedder, progress=progress, explicit=explicit, rebuild=bool(rebuild)
    )
    log(
        f"index {index_dir}: {len(summary.indexed) + len(summary.unchanged)} files, {summary.chunks} chunks "
        f"({summary.embedded} embedded now, {summary.seconds:.1f} s)"
    )
    retriever = Retriever(index_dir, config.retrieve, embedder=embedder, embed_config=config.embed)
    kb = KnowledgeBase(root, source_name(root.resolve()) + "/", {rel: doc_id for rel, doc_id in mapping.items()})
    info = {
        "folder": index_dir.as_posix(),
        "files": len(summary.indexed) + len(summary.unchanged),
        "chunks": summary.chunks,
        "embedder": retriever.manifest.embedder.get("id"),
        "retrieve_mode": config.retrieve.mode,
        "seconds": round(summary.seconds, 1),
    }
    return kb, retriever, info


# ------------------------------------------------------------------------------------------------ adapters


def _adapter(kind: str, suite: Suite, config, kb, retriever, work: Path, train, log, remote=False) -> tuple[str, dict]:
    """The adapter folder for `kind` ("ft" or "raft") and what it cost: given, cached, or trained now. Over
    HTTP an adapter is the server's, named in the suite (`adapters: {raft: NAME}`): nothing is trained."""
    if remote:
        if kind not in suite.adapters:
            raise ConfigError(
                f"the {kind} systems answer over HTTP, where adapters are the server's: name it in the suite "
                f"(adapters: {{{kind}: NAME}}) or with --adapter {kind}=NAME, as the server lists it in /v1/models"
            )
        return suite.adapters[kind], {"source": "served", "name": Path(suite.adapters[kind]).name}
    if kind == "reader" and kind not in suite.adapters:  # the reader adapter shipped with rag: nothing to train
        from ..models import BUNDLED_READER_ADAPTER

        if not BUNDLED_READER_ADAPTER.is_dir():
            raise ConfigError(f"the reader+rag system needs the shipped reader adapter in {BUNDLED_READER_ADAPTER}")
        return str(BUNDLED_READER_ADAPTER), {"source": "shipped", "folder": str(BUNDLED_READER_ADAPTER),
                                             **_cost(read_meta(BUNDLED_READER_ADAPTER))}  # fmt: skip
    if kind in suite.adapters:
        folder = suite.adapters[kind]
        if not is_adapter_folder(folder) and not Path(folder, "config.json").is_file():
            raise ConfigError(f"adapters.{kind}: {folder} is not an adapter folder (no adapter_config.json)")
        meta = read_meta(folder)
        return folder, {"source": "given", "folder": folder, **_cost(meta)}
    from ..tune import TuneOptions

    budget = suite.train
    examples = training_examples(kind, suite, config, kb, retriever)
    if not examples:
        raise ConfigError(
            f"the {kind} adapter has no training data: suite {suite.name!r} needs training questions "
            "(split: train) with answers" + (" or documents" if kind == "ft" else "")
        )
    options = TuneOptions(
        method=budget.method,
        base=config.generate.model,
        max_steps=budget.steps,
        max_minutes=budget.minutes,
        lr=budget.lr,
        batch_size=budget.batch_size,
        max_length=budget.max_length,
        seed=budget.seed,
        save_steps=max(budget.steps, 50),
    )
    key = adapter_key(kind, options, examples)
    folder = work / "adapters" / f"{kind}-{key[:12]}"
    if is_adapter_folder(folder):
        log(f"{kind} adapter: reusing {folder} (same data and settings)")
        return str(folder), {"source": "cached", "folder": str(folder), **_cost(read_meta(folder))}
    log(
        f"{kind} adapter: training {budget.method} on {len(examples)} examples "
        f"({budget.steps} steps, {budget.minutes} min at most)"
    )
    if train is None:
        from ..tune import tune

        def train(examples, out, options):
            return tune(examples, out, options).to_dict()

    result = train(examples, folder, options)
    return str(folder), {"source": "trained", "folder": str(folder), **_cost({"metrics": result})}


def adapter_key(kind: str, options, examples) -> str:
    """What a cached adapter is known by: its kind, the settings that differ from the defaults (so that a new
    setting with a default does not invalidate earlier adapters) and its examples."""
    from ..tune import TuneOptions
    from ..tunedata import data_hash

    defaults = asdict(TuneOptions())
    changed = {k: v for k, v in asdict(options).items() if defaults.get(k) != v}
    return data_hash([{"kind": kind, "options": changed}] + [asdict(e) for e in examples])


def training_examples(kind: str, suite: Suite, config, kb, retriever) -> list:
    """The examples an adapter of `kind` learns from (see the module docstring)."""
    from ..tunedata import Example, qa_from_chunks, raft_examples, to_examples

    train_qs = [q for q in suite.split("train") if q["answers"] or not q["answerable"]]
    records = [
        {
            "id": q["id"],
            "question": q["question"],
            "answers": q["answers"],
            "answerable": q["answerable"],
            "sources": [kb.file_of(s) if kb else s for s in q["sources"]],
        }
        for q in train_qs
    ]
    if kind == "raft":
        if suite.train.raft_from_documents:
            records += qa_from_chunks(retriever.chunks)
        if not records:
            return []
        from ..pipeline import RAG

        return raft_examples(
            records,
            retriever,
            k=config.answer.k,
            without_gold=suite.train.raft_no_gold,
            seed=suite.train.seed,
            focus=RAG(config=config, retriever=retriever).shown,
        )
    examples = []
    if suite.train.ft_data in ("both", "documents"):
        examples += [Example(text=(f"{c.context}\n\n" if c.context else "") + c.text) for c in retriever.chunks]
    if suite.train.ft_data in ("both", "questions") and records:
        examples += to_examples(records, "qa")[1]
    return examples


def _cost(meta: dict) -> dict:
    result = meta.get("metrics") or {}  # rag_tune.json keeps a run's TuneResult under "metrics"
    keys = ("method", "steps", "seconds", "trainable_params", "total_params", "examples", "train_loss", "eval_loss")
    return {k: result.get(k) for k in keys}


# ------------------------------------------------------------------------------------------------ answers


def _answer_all(system, adapter, mode, questions, suite, config, kb, retriever, generator_for, retrieved, progress):
    from ..pipeline import RAG

    spec = BY_NAME[system]
    cfg = replace(config, generate=suite.generate_config(system, adapter))
    if generator_for is None:
        from ..generate import load_generator

        generator = load_generator(cfg.generate)
    else:
        generator = generator_for(adapter)
    rag = RAG(None, cfg, retriever=retriever if spec.retrieves else None, generator=generator)
    rows = []
    iterator = questions
    if progress:
        from tqdm import tqdm

        iterator = tqdm(questions, desc=system, unit="q")
    for q in iterator:
        top = None
        if spec.retrieves:
            if q["id"] not in retrieved:
                retrieved[q["id"]] = rag.retrieve(q["question"], k=10)
            top = retrieved[q["id"]]
        started = time.perf_counter()
        if spec.retrieves:
            answer = rag.ask(q["question"], mode=mode)
        else:
            answer = rag.ask(q["question"], closed_book=True)
        latency = time.perf_counter() - started
        row = score_row(system, q, answer, top, kb, config.answer.k, latency)
        row["generator"] = describe_generator(cfg.generate) if runs_generator(mode) else None
        rows.append(row)
    return rows


def score_row(system: str, q: dict, answer, top: list | None, kb, k: int, latency: float) -> dict:
    """One prediction with its scores (None where a metric does not apply to this question or system)."""
    to_suite = kb.suite_source if kb else (lambda s: s)
    golds, gold_sources = q["answers"], set(q["sources"])
    scores: dict[str, float | None] = dict.fromkeys(ANSWER_METRICS)
    refused = bool(answer.refused)
    if q["answerable"]:
        scores["false_refusal"] = float(refused)
        if golds:
            text = "" if refused else answer.answer
            scores["contains"] = contains_gold(text, golds)
            scores["em"] = exact_match(text, golds)
            scores["f1"] = token_f1(text, golds)
            scores["rouge_l"] = rouge_l(text, golds)
            scores["accuracy"] = scores["contains"]
    else:
        scores["refusal_accuracy"] = float(refused)
        scores["accuracy"] = float(refused)
    cited = [to_suite(answer.sources[n - 1].chunk.source) for n in answer.citations if 0 < n <= len(answer.sources)]
    spec = BY_NAME.get(system)
    if spec is not None and spec.retrieves and q["answerable"] and cited and gold_sources:
        scores["citation_precision"] = sum(s in gold_sources for s in cited) / len(cited)
    if spec is not None and spec.retrieves and not refused and answer.sources:
        # a number, code or name the answer states that the passages it cites (all it read, uncited) lack, with
        # the heading paths they are shown under
        read = [answer.sources[n - 1] for n in answer.citations if 0 < n <= len(answer.sources)] or answer.sources
        scores["ungrounded"] = float(bool(ungrounded(answer.answer, [h.chunk.indexed_text for h in read])))
    if top is not None and q["answerable"] and gold_sources:
        ranked = list(dict.fromkeys(to_suite(h.chunk.source) for h in top))  # documents, best rank first
        qrels = dict.fromkeys(gold_sources, 1)
        scores[f"recall@{k}"] = recall_at_k(ranked, qrels, k)
        scores["recall@10"] = recall_at_k(ranked, qrels, 10)
        scores["mrr@10"] = mrr_at_k(ranked, qrels, 10)
        scores["ndcg@10"] = ndcg_at_k(ranked, qrels, 10)
    return {
        "system": system,
        "id": q["id"],
        "question": q["question"],
        "lang": q["lang"],
        "answerable": q["answerable"],
        "answers": golds,
        "sources": q["sources"],
        "retrieved": [
            {"chunk_id": h.chunk.id, "source": to_suite(h.chunk.source), "score": round(float(h.score), 5)}
            for h in (top or [])
        ],
        "passages": [h.chunk.id for h in answer.sources],
        "prompt": answer.prompt,
        "answer": answer.answer,
        "refused": refused,
        "mode": answer.mode,
        "citations": answer.citations,
        "cited_sources": cited,
        "latency_s": round(latency, 4),
        "new_tokens": answer.timings.get("new_tokens"),
        "scores": scores,
    }
