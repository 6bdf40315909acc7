"""Train the ask model of the reader's "unread" group (`rag.asks`, shipped in rag/weights/asks) on CMRC 2018
train and trial, leaving out the train paragraphs the reader is fitted on (scripts/reader_data.held_out), and
check it on those: how often the best-scoring sentence of a question's paragraph holds its answer, with the
learned score and without it.

    python scripts/asks.py [--data ../shared/data] [--out rag/weights/asks] [--dim 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from reader_data import CMRC, held_out

from rag.asks import examples, top1, train
from rag.eval.datasets import read_public

TRIAL = Path("cmrc2018-trial") / "cmrc2018_trial.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="rag/weights/asks")
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    started = time.time()
    documents, questions = read_public("squad", data / CMRC)
    fitted = {d["id"] for d in held_out(data)["zh"][0]}
    trial_docs, trial_questions = read_public("squad", data / TRIAL)
    training = examples([d for d in documents if d["id"] not in fitted], questions)
    training += examples(trial_docs, trial_questions)
    check = examples([d for d in documents if d["id"] in fitted], questions)
    print(f"{len(training)} training questions, {len(check)} to check on", flush=True)
    model = train(training, dim=args.dim, epochs=args.epochs, progress=lambda m: print(m, flush=True))
    with_ask, without = top1(model, check), top1(model, check, ask=False)
    print(f"held-out paragraphs: best sentence holds the answer {with_ask:.3f} (overlap alone {without:.3f})")
    digest = hashlib.sha256(repr([(q, s, y) for q, s, y in training]).encode()).hexdigest()[:16]
    model.info.update(
        {
            "data": {
                "path": f"{CMRC} without the reader's 600 fitting paragraphs, and {TRIAL}, in ../shared/data "
                "(scripts/asks.py; make asks)",
                "examples": len(training),
                "hash": digest,
            },
            "metrics": {
                "held_out_questions": len(check),
                "held_out_top1": round(with_ask, 4),
                "held_out_top1_overlap_only": round(without, 4),
                "seconds": round(time.time() - started),
            },
            "lineage": [{"task": "asks", "init": None, "out": args.out}],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    model.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
