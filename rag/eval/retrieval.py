"""Retrieval evaluation on BEIR-format data, and converters from SQuAD 2.0 / CMRC 2018 into that shape.

BEIR layout: `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}) and
`qrels/<split>.tsv` (query-id, corpus-id, score, with a header). As MTEB does, each document is embedded
whole as `title + " " + text` (the embedder truncates at its window) and ranked by cosine similarity;
metrics are computed like pytrec_eval's (see `rag.metrics`).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config, RetrieveConfig
from .errors import ConfigError
from .metrics import retrieval_metrics
from .records import parse_jsonl
from .types import Chunk


@dataclass
class BeirData:
    name: str
    corpus: dict[str, dict]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing; a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    return parse_jsonl(path.read_text(encoding="utf-8"), str(path), require="_id")


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR dataset folder. Only queries with judgements in `qrels/<split>.tsv` are kept."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"BEIR folder {folder} does not exist")
    corpus = {
        str(r["_id"]): {"title": r.get("title") or "", "text": r.get("text") or ""}
        for r in _read_jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): r.get("text") or "" for r in _read_jsonl(folder / "queries.jsonl")}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise ConfigError(f"{qrels_path} is missing; pick an existing split with --split")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for number, row in enumerate(reader, start=1):
            if not row or (number == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) < 3:
                raise ConfigError(f"{qrels_path} line {number}: expected query-id, corpus-id, score")
            qid, did, grade = row[0], row[1], int(row[2])
            if qid in queries:
                qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise ConfigError(f"{qrels_path} judges none of the queries in queries.jsonl")
    return BeirData(folder.name, corpus, {q: queries[q] for q in qrels}, qrels)


def from_squad(path: str | Path, limit_articles: int | None = None) -> BeirData:
    """SQuAD v1/v2 JSON as retrieval data: each paragraph a document, each answerable question a query."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    corpus, queries, qrels = {}, {}, {}
    for a, article in enumerate(data["data"][:limit_articles]):
        for p, para in enumerate(article["paragraphs"]):
            did = f"{a}-{p}"
            corpus[did] = {"title": article.get("title", "").replace("_", " "), "text": para["context"]}
            for qa in para["qas"]:
                if qa.get("is_impossible"):
                    continue
                queries[qa["id"]] = qa["question"]
                qrels[qa["id"]] = {did: 1}
    return BeirData(Path(path).stem, corpus, queries, qrels)


def from_cmrc(path: str | Path, limit: int | None = None) -> BeirData:
    """CMRC 2018 JSON (a list of {context_id, context_text, title, qas}) as retrieval data."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):  # the SQuAD-shaped variant
        return from_squad(path)
    corpus, queries, qrels = {}, {}, {}
    for item in data[:limit]:
        did = str(item["context_id"])
        corpus[did] = {"title": item.get("title", ""), "text": item["context_text"]}
        for qa in item["qas"]:
            queries[qa["query_id"]] = qa["query_text"]
            qrels[qa["query_id"]] = {did: 1}
    return BeirData(Path(path).stem, corpus, queries, qrels)


def doc_text(doc: dict) -> str:
    """MTEB's document text: title and text joined by a space."""
    return f"{doc['title']} {doc['text']}".strip() if doc.get("title") else doc["text"]


def evaluate(
    data: BeirData,
    config: Config | None = None,
    modes: list[str] = ("dense",),
    limit: int | None = None,
    embedder=None,
    ignore_identical_ids: bool = False,
    progress: bool = False,
) -> dict:
    """Metrics per retrieval mode over `data`. Returns {"dataset", "queries", "documents", "embedder", "modes"}."""
    from .embeddings import load_embedder
    from .retrieve import Retriever

    config = config or Config()
    embedder = embedder or load_embedder(config.embed)
    for mode in modes:
        if mode not in ("dense", "bm25", "hybrid"):
            raise ConfigError(f"mode must be dense, bm25 or hybrid, got {mode!r}")
    ids = list(data.corpus)
    chunks = [Chunk(id=d, source=d, ordinal=0, text=doc_text(data.corpus[d])) for d in ids]
    qids = list(data.queries)[:limit]
    needs = ("dense", "bm25") if "hybrid" in modes else tuple(modes)
    started = time.perf_counter()
    retriever = Retriever.in_memory(chunks, embedder, RetrieveConfig(candidates=100), modes=needs, progress=progress)
    build_s = time.perf_counter() - started
    report = {
        "dataset": data.name,
        "queries": len(qids),
        "documents": len(ids),
        "embedder": embedder.id,
        "index_seconds": round(build_s, 2),
        "modes": {},
    }
    texts = [data.queries[q] for q in qids]
    for mode in modes:
        hits = retriever.search_many(texts, k=101 if ignore_identical_ids else 100, mode=mode)
        run = {}
        for qid, found in zip(qids, hits):
            ranked = [h.chunk.id for h in found if not (ignore_identical_ids and h.chunk.id == qid)]
            run[qid] = ranked[:100]
        report["modes"][mode] = retrieval_metrics(run, {q: data.qrels[q] for q in qids})
    return report


def evaluate_beir(folder, config: Config | None = None, modes=("dense",), split="test", limit=None, **kw) -> dict:
    return evaluate(load_beir(folder, split), config, list(modes), limit, **kw)
