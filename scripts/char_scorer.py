"""Train the character scorer of the reader's "unread" group (`rag.charscorer`, shipped in
rag/weights/char-scorer) on CMRC 2018 train and trial, leaving out the train paragraphs the reader is fitted on
(scripts/reader_data.held_out), and check it on those: how often the best-scoring sentence of a question's
paragraph holds its answer, against the ask model and overlap alone.

    python scripts/char_scorer.py [--data ../shared/data] [--out rag/weights/char-scorer] [--dim 96] [--epochs 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reader_data import chinese_model_info, chinese_reading_data

from rag.asks import load_asks
from rag.asks import top1 as ask_top1
from rag.charscorer import top1, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="rag/weights/char-scorer")
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    started = time.time()
    training, check, described = chinese_reading_data(data)
    print(f"{len(training)} training questions, {len(check)} to check on", flush=True)
    model = train(training, dim=args.dim, epochs=args.epochs, progress=lambda m: print(m, flush=True))
    mine = top1(model, check)
    asks = load_asks("bundled")
    theirs = {"ask_model": ask_top1(asks, check), "overlap_only": ask_top1(asks, check, ask=False)} if asks else {}
    print(f"held-out paragraphs: best sentence holds the answer {mine:.3f} (others: {theirs})")
    made_by = "scripts/char_scorer.py; make char-scorer"
    top = {"": mine, **theirs}
    model.info.update(chinese_model_info(described, made_by, "char-scorer", args.out, len(check), top, started))
    model.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
