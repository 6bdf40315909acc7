"""Answer-sentence selection on WikiQA test, the published setting: each question's candidates are the sentences
of one Wikipedia summary, ranked by a model; MAP and MRR over the 243 questions that have a correct sentence
(Yang et al., 2015). WikiQA's questions are Bing queries, typed without seeing the summary, so they share fewer
words with their answers than SQuAD's: this measures reading a question worded unlike its answer.

Ranked in the same run: the shipped evidence scorer (`rag.scorer`, the cross-encoder the reader uses; trained
on SQuAD 1.1, never on WikiQA, whose license forbids training a model that ships), the index's embedder
(cosine of question and sentence, the baseline: what dense retrieval would rank by), and IDF-weighted word
overlap (Yang et al.'s "Wgt Cnt" baseline). Every sentence is read as the reader reads it: under its title.

Published on the same split (Yang et al., 2015): Wgt Cnt MAP 0.5099 / MRR 0.5132, CNN-Cnt 0.6520 /
0.6652. The data is read from `../shared/data/wikiqa` (never copied).

Usage: python -m benchmarks.selection_bench [--quick] [--scorer FOLDER]   (a retrained scorer in place of the shipped one)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "wikiqa" / "WikiQA-test.tsv"
PUBLISHED = {"Wgt Cnt (Yang et al., 2015)": (0.5099, 0.5132), "CNN-Cnt (Yang et al., 2015)": (0.6520, 0.6652)}
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an the of in on at to for by is are was were what who when where which how why do does did".split()
)


def read_wikiqa(path: Path) -> list[dict]:
    """Questions with their title, candidate sentences and labels, in file order (rows read and checked by
    `rag.eval.datasets.wikiqa_rows`, as the WikiQA reading suite reads them)."""
    from rag.eval.datasets import wikiqa_rows

    questions: dict[str, dict] = {}
    for row in wikiqa_rows(path):
        q = questions.setdefault(
            row["qid"], {"question": row["question"], "title": row["title"], "sentences": [], "labels": []}
        )
        q["sentences"].append(row["sentence"])
        q["labels"].append(row["label"])
    return list(questions.values())


def ranking_scores(scores: list[np.ndarray], labels: list[list[int]]) -> dict:
    """MAP and MRR over the questions with at least one correct candidate (ties broken by input order).

    >>> ranking_scores([np.array([0.1, 0.9, 0.5])], [[0, 0, 1]])
    {'map': 0.5, 'mrr': 0.5, 'questions': 1}
    """
    aps, rrs = [], []
    for s, y in zip(scores, labels):
        y = np.asarray(y)
        if y.sum() == 0:
            continue
        ranked = y[np.argsort(-np.asarray(s), kind="stable")]
        precision = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
        aps.append(float((precision * ranked).sum() / ranked.sum()))
        rrs.append(1.0 / (int(np.argmax(ranked)) + 1))
    return {"map": round(float(np.mean(aps)), 4), "mrr": round(float(np.mean(rrs)), 4), "questions": len(aps)}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _overlap_scores(questions: list[dict]) -> list[np.ndarray]:
    """IDF-weighted count of the question's words in each sentence, IDF over all candidate sentences."""
    sentences = [s for q in questions for s in q["sentences"]]
    df = Counter(w for s in sentences for w in set(_words(s)))
    idf = {w: math.log(len(sentences) / n) for w, n in df.items()}
    out = []
    for q in questions:
        asked = set(_words(q["question"]))
        out.append(np.array([sum(idf.get(w, 0.0) for w in asked & set(_words(s))) for s in q["sentences"]]))
    return out


def run(quick: bool = False, scorer: str = "bundled") -> dict:
    from rag.config import Config
    from rag.embeddings import load_embedder
    from rag.readerdata import scorer_text
    from rag.scorer import Scorer, scorer_folder

    if not DATA.is_file():
        return {"skipped": f"{DATA} not found (../shared/data/wikiqa)"}
    questions = read_wikiqa(DATA)
    if quick:
        questions = questions[:150]
    labels = [q["labels"] for q in questions]
    texts = [[scorer_text(q["title"], s) for s in q["sentences"]] for q in questions]
    config = Config()
    out: dict = {"questions": len(questions), "systems": {}}

    model = Scorer(scorer_folder(scorer), backend=config.embed.backend)
    started = time.perf_counter()
    ce = [model.logits(q["question"], t) for q, t in zip(questions, texts)]
    name = "evidence scorer (shipped)" if scorer == "bundled" else f"evidence scorer ({scorer})"
    out["systems"][name] = {**ranking_scores(ce, labels), "seconds": _since(started)}

    embedder = load_embedder(config.embed)
    started = time.perf_counter()
    cosine = [
        embedder.embed_documents(t) @ embedder.embed_queries([q["question"]])[0] for q, t in zip(questions, texts)
    ]
    out["systems"][f"embedder cosine (baseline, {config.embed.model.split('/')[-1]})"] = {
        **ranking_scores(cosine, labels),
        "seconds": _since(started),
    }
    out["systems"]["IDF-weighted word overlap"] = ranking_scores(_overlap_scores(questions), labels)
    base = next(v for k, v in out["systems"].items() if "baseline" in k)["map"]
    for row in out["systems"].values():
        row["map_ratio_to_baseline"] = round(row["map"] / base, 3) if base else None
    out["published"] = {k: {"map": m, "mrr": r} for k, (m, r) in PUBLISHED.items()}
    return out


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 1)


def report_lines(r: dict | None) -> list[str]:
    if not r:
        return []
    if "skipped" in r:
        return ["## Answer-sentence selection (WikiQA test)", "", f"Skipped: {r['skipped']}.", ""]
    lines = [
        "## Answer-sentence selection (WikiQA test)",
        "",
        f"Each question's candidates are the sentences of its Wikipedia summary (read under the title); MAP and MRR "
        f"over the {next(iter(r['systems'].values()))['questions']} questions with a correct sentence "
        f"({r['questions']} read). Bing queries, typed without seeing the text. The scorer was trained on SQuAD 1.1 "
        "only. Baseline: the embedder's cosine in the same run. The word-overlap row is this benchmark's own (IDF over "
        "the split's sentences, a short stopword list), not Yang et al.'s code; their published figures on the same "
        "split are for reference.",
        "",
        "| ranker | MAP | MRR | MAP / baseline |",
        "|---|---|---|---|",
    ]
    for name, row in r["systems"].items():
        lines.append(f"| {name} | {row['map']} | {row['mrr']} | {row['map_ratio_to_baseline']} |")
    for name, row in r["published"].items():
        lines.append(f"| {name}, published | {row['map']} | {row['mrr']} | |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scorer", default="bundled", help="scorer folder or model id (default: the shipped one)")
    args = parser.parse_args()
    result = run(args.quick, args.scorer)
    print(json.dumps(result, indent=1))
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
