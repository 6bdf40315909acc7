"""Measure what a RAFT adapter does for the generator (issue 4's target), base model vs adapter.

    python scripts/raft_eval.py --adapter adapters/raft-sample [--squad N]

On the sample knowledge base's test questions: the share of generative answers that contain a gold answer
string, with and without the adapter (refusal decided by the same evidence rule for both). With --squad N,
the same on N answerable SQuAD 2.0 dev questions over their paragraphs: a knowledge base the adapter never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def contains_gold(answer: str, golds: list[str]) -> bool:
    return any(g.lower() in answer.lower() for g in golds)


def run(rag, questions) -> tuple[int, int, list]:
    good, rows = 0, []
    for q in questions:
        a = rag.ask(q["question"], mode="generative")
        ok = (not q["answerable"] and a.refused) or (q["answerable"] and contains_gold(a.answer, q["answers"]))
        good += ok
        rows.append({"id": q["id"], "ok": ok, "answer": a.answer})
    return good, len(questions), rows


def main() -> int:
    from rag.config import Config
    from rag.pipeline import RAG

    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--index", default="indexes/default")
    parser.add_argument("--squad", type=int, default=0)
    parser.add_argument("--out", default="eval/raft_eval.json")
    args = parser.parse_args()
    qs = [json.loads(x) for x in (ROOT / "eval/questions.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    test = [q for q in qs if q["split"] == "test"]
    report = {}
    for name, adapter in (("base", None), ("raft", args.adapter)):
        config = Config()
        config.generate.adapter = adapter
        good, n, rows = run(RAG(args.index, config), test)
        report[f"sample_test_{name}"] = {"correct": good, "questions": n, "share": round(good / n, 3), "rows": rows}
        print(name, "sample test", good, "/", n, flush=True)
    if args.squad:
        from rag.beir import from_squad
        from rag.ingest import build_index

        data = json.loads((ROOT.parent / "shared/data/squad2-dev-half/dev-v2.0.json").read_text(encoding="utf-8"))
        squad_qs = []
        with tempfile.TemporaryDirectory() as tmp:
            kb = Path(tmp) / "kb"
            kb.mkdir()
            for a, article in enumerate(data["data"][:4]):
                for p, para in enumerate(article["paragraphs"]):
                    (kb / f"{a}-{p}.txt").write_text(para["context"], encoding="utf-8")
                    for qa in para["qas"]:
                        if not qa["is_impossible"] and len(squad_qs) < args.squad and p % 3 == 0:
                            squad_qs.append(
                                {
                                    "id": qa["id"],
                                    "question": qa["question"],
                                    "answers": [x["text"] for x in qa["answers"]],
                                    "answerable": True,
                                }
                            )
            build_index([kb], Path(tmp) / "idx", progress=False)
            for name, adapter in (("base", None), ("raft", args.adapter)):
                config = Config()
                config.generate.adapter = adapter
                good, n, rows = run(RAG(Path(tmp) / "idx", config), squad_qs)
                report[f"squad_{name}"] = {"correct": good, "questions": n, "share": round(good / n, 3), "rows": rows}
                print(name, "squad", good, "/", n, flush=True)
        del from_squad
    (ROOT / args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
