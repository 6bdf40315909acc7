"""Fit the shipped reader (rag/weights/reader.json, or reader-lexical.json for reading without a scorer) on
the held-out public training data of scripts/reader_data.py: each language's paragraphs become a knowledge
base (indexed under --work), and its questions are read by the real pipeline with the scorer given.

    python scripts/fit_reader.py [--data ../shared/data] [--work work/reader] [--scorer bundled|none|DIR]
                                 [--char-scorer bundled|none|DIR]
                                 [--questions 1200] [--removed 0.15] [--adversarial 0]
                                 [--false-refusal 0.05] [--out FILE]
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
from pathlib import Path

from reader_data import held_out

from rag.atomic import write_json
from rag.calibrate import GROUPS, fit_reader, foreign_questions
from rag.config import Config
from rag.embeddings import HashEmbedder
from rag.eval.harness import materialise
from rag.evidence import ReaderModel
from rag.ingest import build_index
from rag.pipeline import RAG
from rag.readerdata import adversarial_pairs


def knowledge_base(name: str, documents: list[dict], work: Path) -> tuple[Path, dict[str, str]]:
    """The index of `documents` under work/name (built once), and document id -> indexed file name."""
    folder = work / name
    mapping = materialise(documents, folder / "kb")
    # MiniLM reads no Chinese, so its vectors add nothing to a Chinese index (hybrid search then ranks by BM25
    # alone): a hash embedder gives the same rankings at no cost
    embedder = HashEmbedder(64) if name == "zh" else None
    build_index([folder / "kb"], folder / "index", embedder=embedder, progress=sys.stderr.isatty())
    return folder / "index", {doc_id: rel for rel, doc_id in mapping.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--work", default="work/reader")
    parser.add_argument("--scorer", default="bundled")
    parser.add_argument("--char-scorer", default="bundled", help="the Chinese group's character scorer")
    parser.add_argument("--questions", type=int, default=1200, help="answerable questions per language")
    parser.add_argument(
        "--outside", type=int, default=300, help="unanswerable questions per language: ones about other paragraphs"
    )
    parser.add_argument(
        "--removed",
        type=float,
        default=0.15,
        help="share of paragraphs left out of the knowledge base: their questions are unanswerable, with "
        "passages on the same topic retrieved (as SQuAD 2.0's unanswerable questions have)",
    )
    parser.add_argument("--removed-questions", type=int, default=400, help="unanswerable questions of that kind")
    parser.add_argument(
        "--adversarial",
        type=int,
        default=0,
        help="unanswerable questions per language made by changing a name, number or word of an answerable one "
        "(SQuAD 2.0's kind: the knowledge base holds the original's paragraph; English only). The shipped reader "
        "uses none: 300 of them left SQuAD 2.0 dev unchanged (43.2 vs 43.4 accuracy, eval/reports/reading/README.md)",
    )
    parser.add_argument(
        "--foreign",
        type=int,
        default=300,
        help="unanswerable Chinese questions made by swapping a name an answerable question shares with its "
        "paragraph for one the knowledge base never mentions (a customer asking about a city, company or person the "
        "documents do not cover); they train refusal only. Not for English: there they lowered SQuAD 2.0 dev and "
        "WikiQA (eval/reports/reading/README.md)",
    )
    parser.add_argument("--false-refusal", type=float, default=0.05)
    parser.add_argument("--out", help="default: rag/weights/reader.json, or reader-lexical.json with --scorer none")
    args = parser.parse_args()
    out = Path(args.out or f"rag/weights/{'reader-lexical' if args.scorer == 'none' else 'reader'}.json")
    blank = {g: {"weights": {}, "bias": 0.0, "threshold": 0.5} for g in GROUPS}
    placeholder = ReaderModel(blank, blank)  # the group a language does not fall in is not taken from its fit
    config = Config().override(answer={"scorer": args.scorer, "char_scorer": args.char_scorer})
    memo_path = Path(args.work) / f"scorer-memo-{args.scorer.replace('/', '_')}.pkl"
    memo = pickle.loads(memo_path.read_bytes()) if memo_path.is_file() else {}  # refits reuse the logits
    fitted = {}
    for lang, (documents, questions, others) in held_out(Path(args.data), with_outside=True).items():
        # RAFT's negatives: some paragraphs stay out of the knowledge base, so their questions retrieve passages
        # about the same subject that lack the answer
        removed = {d["id"] for d in random.Random(2).sample(documents, round(args.removed * len(documents)))}
        index, files = knowledge_base(lang, [d for d in documents if d["id"] not in removed], Path(args.work))
        answerable = [q for q in questions if q["sources"][0] not in removed]
        picked = random.Random(0).sample(answerable, min(args.questions, len(answerable)))
        picked = [{**q, "sources": [files[s] for s in q["sources"]]} for q in picked]
        near = [q for q in questions if q["sources"][0] in removed]
        near = random.Random(3).sample(near, min(args.removed_questions, len(near)))
        picked += [{**q, "answers": [], "answerable": False, "sources": []} for q in near]
        # questions about paragraphs outside the knowledge base: what a customer asks that it cannot answer
        outside = random.Random(1).sample(others, min(args.outside, len(others)))
        picked += [{**q, "answers": [], "answerable": False, "sources": []} for q in outside]
        # questions changed so that their own paragraph, which the knowledge base holds, no longer answers them
        asked = {q["question"] for q in picked}
        unpicked = [q for q in answerable if q["question"] not in asked]
        changed = [p["question"] for p in adversarial_pairs(documents, unpicked, seed=4) if not p["label"]]
        changed = random.Random(4).sample(changed, min(args.adversarial if lang == "en" else 0, len(changed)))
        picked += [{"question": c, "answers": [], "answerable": False, "sources": []} for c in changed]
        rag = RAG(index, config)
        if args.foreign and lang == "zh":
            texts = {d["id"]: d["text"] for d in documents}
            pool = [{**q, "context": texts[q["sources"][0]]} for q in unpicked]
            swapped = foreign_questions(
                random.Random(5).sample(pool, min(len(pool), 4 * args.foreign)), others, rag.idf
            )
            swapped = random.Random(5).sample(swapped, min(args.foreign, len(swapped)))
            print(f"{lang}: {len(swapped)} questions with a foreign name, e.g. {swapped[:3]}", file=sys.stderr)
            picked += [
                {"question": c, "answers": [], "answerable": False, "sources": [], "refusal_only": True}
                for c in swapped
            ]
        fitted[lang] = fit_reader(picked, rag, false_refusal=args.false_refusal, base=placeholder, memo=memo)
        memo_path.write_bytes(pickle.dumps(memo))
    en, zh = fitted["en"], fitted["zh"]  # English falls in the group the scorer reads, Chinese in the other
    model = ReaderModel(
        sentence={"read": en.sentence["read"], "unread": zh.sentence["unread"]},
        refusal={"read": en.refusal["read"], "unread": zh.refusal["unread"]},
        info={
            "scorer": args.scorer,
            "asks": config.answer.asks,
            "char_scorer": config.answer.char_scorer,
            "data": "SQuAD 1.1 train articles 400-441 (unseen by the scorer), CMRC 2018 train (600 paragraphs); "
            f"unanswerable: questions about {args.removed:.0%} of those paragraphs, left out of the knowledge base, "
            + (
                f"questions about other articles, and up to {args.adversarial} answerable questions changed (a name, "
                "number or word swapped) so that their paragraph no longer answers them"
                if args.adversarial
                else "and questions about other articles"
            )
            + (
                f"; for Chinese, {args.foreign} answerable questions with a name swapped for one the knowledge base "
                "never mentions"
                if args.foreign
                else ""
            ),
            "read": en.info["groups"]["read"],
            "unread": zh.info["groups"]["unread"],
            "false_refusal_target": args.false_refusal,
        },
    )
    write_json(out, model.to_dict())
    print(f"reader written to {out}: {model.info}")


if __name__ == "__main__":
    main()
