"""Latency of an extractive answer with the learned reader: warm `RAG.ask` over the sample knowledge base, its
questions asked one at a time, with the evidence scorer (the shipped cross-encoder on ONNX Runtime, and on
torch) next to the baseline in the same run, the lexical reader (no scorer, `answer.scorer = "none"`).
Each answer's time is split into retrieval and reading (scoring the top passages' sentences, choosing the
answer, deciding refusal) from `Answer.timings`.

Target (issue 12): warm p50 <= 400 ms with the scorer, <= 150 ms on ONNX Runtime.

Usage: python -m benchmarks.reading_bench [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "reading"

SYSTEMS = {  # name -> (answer.scorer, embed.backend: the scorer runs on the embedder's backend)
    "lexical (baseline)": ("none", "onnx"),
    "scorer, ONNX Runtime": ("bundled", "onnx"),
    "scorer, torch": ("bundled", "torch"),
}


def run(quick: bool = False) -> dict:
    from rag.config import Config
    from rag.ingest import build_index
    from rag.pipeline import RAG

    index = WORK / "index"
    build_index([ROOT / "corpora"], index, progress=False)
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "questions.jsonl").open(encoding="utf-8")]
    if quick:
        questions = questions[:20]
    out: dict = {"questions": len(questions), "systems": {}}
    for name, (scorer, backend) in SYSTEMS.items():
        rag = RAG(index, config=Config().override(answer={"scorer": scorer}, embed={"backend": backend}))
        for q in questions[:3]:  # warm: models loaded, ONNX sessions built
            rag.ask(q)
        total, retrieve, read = [], [], []
        for q in questions:
            started = time.perf_counter()
            answer = rag.ask(q)
            total.append(time.perf_counter() - started)
            retrieve.append(answer.timings.get("retrieve_s", 0.0))
            read.append(answer.timings.get("read_s", 0.0))
        out["systems"][name] = {
            "p50_ms": round(1000 * statistics.median(total), 1),
            "p90_ms": round(1000 * float(np.percentile(total, 90)), 1),
            "retrieve_p50_ms": round(1000 * statistics.median(retrieve), 1),
            "read_p50_ms": round(1000 * statistics.median(read), 1),
        }
    base = out["systems"]["lexical (baseline)"]["p50_ms"]
    for row in out["systems"].values():
        row["ratio_to_lexical"] = round(row["p50_ms"] / base, 2) if base else None
    out["target"] = "p50 <= 400 ms with the scorer, <= 150 ms on ONNX Runtime"
    return out


def report_lines(r: dict | None) -> list[str]:
    if not r:
        return []
    lines = [
        "## Reading latency (extractive answers, warm)",
        "",
        f"`RAG.ask` over the sample knowledge base, {r['questions']} questions one at a time, default hybrid "
        "retrieval (k=3); reading = scoring the sentences of the top passages, choosing the answer and deciding "
        f"refusal. Target: {r['target']}. Baseline: the lexical reader (no scorer) in the same run.",
        "",
        "| reader | p50 ms | p90 ms | retrieval p50 ms | reading p50 ms | p50 / baseline |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r["systems"].items():
        lines.append(
            f"| {name} | {row['p50_ms']} | {row['p90_ms']} | {row['retrieve_p50_ms']} | {row['read_p50_ms']} "
            f"| {row['ratio_to_lexical']} |"
        )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(args.quick)
    print(json.dumps(result, indent=1))
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
