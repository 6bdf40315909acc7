"""Train the ask model of the reader's "unread" group (`rag.asks`, shipped in rag/weights/asks) on CMRC 2018
train and trial, leaving out the train paragraphs the reader is fitted on (scripts/reader_data.held_out), and
check it on those: how often the best-scoring sentence of a question's paragraph holds its answer, with the
learned score and without it.

    python scripts/asks.py [--data ../shared/data] [--out rag/weights/asks] [--dim 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reader_data import chinese_model_info, chinese_reading_data

from rag.asks import top1, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="rag/weights/asks")
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    started = time.time()
    training, check, described = chinese_reading_data(data)
    print(f"{len(training)} training questions, {len(check)} to check on", flush=True)
    model = train(training, dim=args.dim, epochs=args.epochs, progress=lambda m: print(m, flush=True))
    with_ask, without = top1(model, check), top1(model, check, ask=False)
    print(f"held-out paragraphs: best sentence holds the answer {with_ask:.3f} (overlap alone {without:.3f})")
    top = {"": with_ask, "overlap_only": without}
    model.info.update(
        chinese_model_info(described, "scripts/asks.py; make asks", "asks", args.out, len(check), top, started)
    )
    model.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
