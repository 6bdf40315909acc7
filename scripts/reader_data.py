"""The public training data of the shipped reader, and how it is split; CC BY-SA training sets in
../shared/data only, never a dev or eval set:

- the evidence scorer trains on pairs from SQuAD 1.1 train articles [0, 400) (`scorer_pairs`);
- the reader's weights (scripts/fit_reader.py) and the generator's reader adapter (scripts/reader_adapter.py)
  learn from knowledge bases the scorer never saw: SQuAD 1.1 train articles [400, 442) and CMRC 2018 train
  (`held_out`), so the scorer's scores there are what it gives on unseen text.

    python scripts/reader_data.py [--data ../shared/data] [--out work/reader]

writes into --out scorer-pairs.jsonl (question/text/label), what the shipped scorer trains on, and two
second stages that were measured and not shipped (eval/reports/reading/README.md): scorer-pairs-apart.jsonl
(`rag.readerdata.worded_apart`: the quarter of those questions that share fewest words with their answer, and
as many other pairs), and scorer-pairs-adversarial.jsonl: every answerable question of those articles that
`rag.readerdata.adversarial_pairs` can perturb, with and without the change, mixed half and half with
first-stage pairs. The data stays out of the repository.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from rag.eval.datasets import read_public
from rag.readerdata import adversarial_pairs, scorer_pairs, worded_apart

SCORER_ARTICLES = 400  # of SQuAD 1.1 train's 442
SQUAD = Path("squad11-train") / "train-v1.1.json"
CMRC = Path("cmrc2018-train") / "cmrc2018_train.json"
TRIAL = Path("cmrc2018-trial") / "cmrc2018_trial.json"


def scorer_data(data: Path) -> tuple[list[dict], list[dict]]:
    """The first stage's pairs and the second stage's (see the module docstring)."""
    documents, questions = read_public("squad", data / SQUAD)
    titles = set(list(dict.fromkeys(d["title"] for d in documents))[:SCORER_ARTICLES])
    keep = {d["id"] for d in documents if d["title"] in titles}
    documents = [d for d in documents if d["id"] in keep]
    questions = [q for q in questions if q["sources"][0] in keep]
    first = scorer_pairs(documents, questions)
    adversarial = adversarial_pairs(documents, questions, share=1.0)
    second = adversarial + random.Random(1).sample(first, len(adversarial))
    random.Random(2).shuffle(second)
    return first, second


def held_out(data: Path, chinese_paragraphs: int = 600, with_outside: bool = False) -> dict[str, tuple]:
    """{"en": (documents, questions), "zh": (...)}: every paragraph of the SQuAD articles the scorer did not
    see, and `chinese_paragraphs` CMRC 2018 train paragraphs (a seeded sample) with all their questions.
    `with_outside` adds a third item: questions about other paragraphs of the same data (which that knowledge
    base cannot answer: the unanswerable questions of fitting)."""
    documents, questions = read_public("squad", data / SQUAD)
    titles = set(list(dict.fromkeys(d["title"] for d in documents))[SCORER_ARTICLES:])
    en_docs = [d for d in documents if d["title"] in titles]
    en_ids = {d["id"] for d in en_docs}
    documents, questions_zh = read_public("squad", data / CMRC)
    zh_docs = random.Random(0).sample(documents, chinese_paragraphs)
    zh_ids = {d["id"] for d in zh_docs}
    parts = {
        "en": (en_docs, [q for q in questions if q["sources"][0] in en_ids]),
        "zh": (zh_docs, [q for q in questions_zh if q["sources"][0] in zh_ids]),
    }
    if not with_outside:
        return parts
    outside = {
        "en": [q for q in questions if q["sources"][0] not in en_ids],
        "zh": [q for q in questions_zh if q["sources"][0] not in zh_ids],
    }
    return {lang: (*parts[lang], outside[lang]) for lang in parts}


def chinese_reading_data(data: Path) -> tuple[list, list, dict]:
    """What the Chinese group's ask model and character scorer learn from and are checked on
    (`rag.asks.examples` groups): CMRC 2018 train without the reader's fitting paragraphs, plus the trial set;
    and those fitting paragraphs' questions. The third item describes the training data for rag_tune.json."""
    import hashlib

    from rag.asks import examples

    documents, questions = read_public("squad", data / CMRC)
    fitted = {d["id"] for d in held_out(data)["zh"][0]}
    trial_docs, trial_questions = read_public("squad", data / TRIAL)
    training = examples([d for d in documents if d["id"] not in fitted], questions)
    training += examples(trial_docs, trial_questions)
    check = examples([d for d in documents if d["id"] in fitted], questions)
    described = {
        "path": f"{CMRC} without the reader's 600 fitting paragraphs, and {TRIAL}, in ../shared/data",
        "examples": len(training),
        "hash": hashlib.sha256(repr([(q, s, y) for q, s, y in training]).encode()).hexdigest()[:16],
    }
    return training, check, described


def chinese_model_info(described: dict, made_by: str, task: str, out: str, checked: int, top1: dict, started: float):
    """The rag_tune.json record of a Chinese reading model trained on `chinese_reading_data`: its data (`made_by`:
    the script and make target), held-out answer-sentence choice (`top1`: {"": the model's, name: another's}),
    training time since `started` and lineage."""
    import time

    return {
        "data": {**described, "path": f"{described['path']} ({made_by})"},
        "metrics": {
            "held_out_questions": checked,
            **{"held_out_top1" + (f"_{k}" if k else ""): round(v, 4) for k, v in top1.items()},
            "seconds": round(time.time() - started),
        },
        "lineage": [{"task": task, "init": None, "out": out}],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="work/reader")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    first, adversarial = scorer_data(Path(args.data))
    stages = {"scorer-pairs": first, "scorer-pairs-apart": worded_apart(first), "scorer-pairs-adversarial": adversarial}
    for name, pairs in stages.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for pair in pairs:
                fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
        positives = sum(p["label"] for p in pairs)
        print(f"{out / name}.jsonl: {len(pairs)} pairs ({positives:.0f} positive)")


if __name__ == "__main__":
    main()
