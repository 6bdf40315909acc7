"""Fit the reader (`rag.evidence.ReaderModel`) on labelled questions: how sentence features combine, when to
refuse, and the refusal threshold for a stated false-refusal rate.

`fit_reader(questions, rag)` retrieves for every question with the pipeline `rag` (its index, embedder and
scorer), and collects every candidate sentence with its features:
- sentences: a sentence is a positive when it contains a gold answer; one logistic regression per reading
  group ("read": the scorer reads the question; "unread": it does not);
- refusal: each answerable question is a positive with the passages retrieval gives it, and a negative with
  the retrieved passages that lack its gold documents (what an unanswerable question looks like: related
  text without the answer, as RAFT builds its negatives); labelled unanswerable questions are negatives too.
  A split of the questions (`dev_share`) is held out; the threshold is the one at which `false_refusal` of
  its answerable questions would be refused. The model reports how it did on that split. Questions marked
  "refusal_only" (made-up unanswerable ones, `foreign_questions`) train refusal alone.

`rag calibrate` runs this on a suite's or a team's own questions; `make reader` fits the shipped model on
public training data (never a dev or eval set). What this module does not do: train the cross-encoder
(`rag tune --task scorer`) or answer questions.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable

import numpy as np

from .errors import ConfigError
from .evidence import QUESTION_FEATURES, SENTENCE_FEATURES, Reader, ReaderModel, entities, logistic, never_mentioned
from .text import has_cjk, mentions

GROUPS = ("read", "unread")


def collect(questions: list[dict], rag, reader: Reader, progress: Callable | None = None) -> list[dict]:
    """Per question: its reading group, candidate features with labels, and the candidates with and without
    its gold passages. Questions are {"question", "answers", "answerable", "sources" (optional: document names
    that a hit's source ends with)}."""
    k = rag.config.answer.k
    rows = []
    for number, q in enumerate(questions, start=1):
        question, answers = q["question"], [a for a in q.get("answers", []) if a.strip()]
        answerable = bool(q.get("answerable", True)) and bool(answers)
        group = reader.group(question)
        pool = rag.retrieve(question, k=k + 4)
        hits = pool[:k]
        candidates = reader.candidates(question, hits, group)
        row = {"group": group, "answerable": answerable, "sentences": [], "with": None, "without": None}
        for c in candidates:
            row["sentences"].append((c.features, float(mentions(c.text, answers)) if answerable else 0.0))
        row["with"] = (candidates, hits)
        gold = tuple(q.get("sources") or ())
        if answerable and gold:
            lacking = [h for h in pool if not h.chunk.source.endswith(gold) and not mentions(h.chunk.text, answers)]
            row["without"] = (reader.candidates(question, lacking[:k], group), lacking[:k])
        row["question"] = question
        row["refusal_only"] = bool(q.get("refusal_only"))
        rows.append(row)
        if progress and number % 50 == 0:
            progress(f"read {number}/{len(questions)} questions")
    return rows


def _fit_logistic(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float = 1.0) -> dict:
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        raise ConfigError("fitting the reader needs both positive and negative examples in every group it fits")
    model = LogisticRegression(C=c, max_iter=2000).fit(x, y)
    return {"weights": dict(zip(names, map(float, model.coef_[0]))), "bias": float(model.intercept_[0])}


def _question_rows(rows: list[dict], weights: dict, tools: Reader, group: str):
    """Question-level features and labels: each question with its passages (1 when answerable) and, for an
    answerable one, with the passages lacking its gold documents (0); and which of the two each row is."""
    xs, ys, kinds = [], [], []
    for r in rows:
        for key, label in (("with", 1.0 if r["answerable"] else 0.0), ("without", 0.0)):
            if r[key] is None:
                continue
            candidates, hits = r[key]
            for c in candidates:
                c.probability = logistic(weights, c.features)
            features = tools.question_features(r["question"], hits, candidates, group)
            xs.append([features[n] for n in QUESTION_FEATURES])
            ys.append(label)
            kinds.append((key, r["answerable"]))
    return np.array(xs, np.float64), np.array(ys), kinds


def fit_reader(
    questions: list[dict],
    rag,
    false_refusal: float = 0.05,
    dev_share: float = 0.3,
    seed: int = 0,
    base: ReaderModel | None = None,
    min_fit: int = 200,
    log: Callable[[str], None] | None = None,
    memo: dict | None = None,
) -> ReaderModel:
    """A reader fitted on `questions` with the pipeline `rag` (see the module docstring).

    Per reading group: with at least `min_fit` answerable questions the weights are fitted on a split and
    the threshold chosen on the held-out `dev_share`; with fewer (a team's few dozen labelled questions),
    `base`'s weights are kept and only the threshold is chosen, on all of them; with fewer than
    `min_threshold_questions(false_refusal)` (20 at 5%), `base` is kept whole and how its threshold does on
    them is reported (e.g. English-only questions leave the Chinese model as shipped). `log` gets progress and
    a line per group (`describe_group`); `info["groups"]` holds the same numbers. `memo` remembers the scorer's
    logits ({(question, text): logit}) across fits of the same questions. Raises `ConfigError` when a group
    cannot be fitted and there is no `base`."""
    from .evidence import load_reader

    log = log or (lambda m: print(f"rag: {m}", file=sys.stderr, flush=True))
    needed = min_threshold_questions(false_refusal)
    started = time.perf_counter()
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    dev_ids = set(order[: int(len(order) * dev_share)])
    blank = {g: {"weights": {}, "bias": 0.0, "threshold": 0.5} for g in GROUPS}
    tools = load_reader(rag.config, rag.idf, model=ReaderModel(blank, blank))  # features only
    if tools.scorer is not None and memo is not None:
        tools.scorer.memo = memo
    rows = collect(questions, rag, tools, progress=log)
    sentence, refusal, info = {}, {}, {"questions": len(questions), "groups": {}}
    for group in GROUPS:
        mine = [(i, r) for i, r in enumerate(rows) if r["group"] == group]
        answerable = sum(r["answerable"] for _, r in mine)
        if answerable >= min_fit:
            fit_rows = [r for i, r in mine if i not in dev_ids]
            dev_rows = [r for i, r in mine if i in dev_ids]
            # which sentence answers is learned from real questions: a made-up negative's would-be answer
            # sentence ("refusal_only") teaches refusal, not that answer-like sentences are wrong
            chosen = [r for r in fit_rows if not r["refusal_only"]]
            x = np.array([[f[n] for n in SENTENCE_FEATURES] for r in chosen for f, _ in r["sentences"]], np.float64)
            y = np.array([label for r in chosen for _, label in r["sentences"]])
            sentence[group] = _fit_logistic(x, y, SENTENCE_FEATURES)
            xq, yq, _ = _question_rows(fit_rows, sentence[group], tools, group)
            refusal[group] = _fit_logistic(xq, yq, QUESTION_FEATURES)
            how = {"fitted": len(fit_rows), "sentences": int(len(y))}
        elif base is not None and answerable >= needed:
            sentence[group], refusal[group] = base.sentence[group], dict(base.refusal[group])
            dev_rows, how = [r for _, r in mine], {"fitted": 0, "threshold_from": len(mine)}
        elif base is not None:
            # too few to choose a threshold: the false_refusal quantile of fewer than 1/false_refusal answerable
            # questions is their lowest value or near it (8 questions moved English from 0.144 to 0.441 and
            # refused 14%); `base` is kept whole, and how it does on these questions is reported
            sentence[group], refusal[group] = base.sentence[group], base.refusal[group]
            info["groups"][group] = {"kept": "base", "questions": len(mine)}
            if not answerable:
                continue
            dev_rows, how = [r for _, r in mine], {"kept": "base", "questions": len(mine), "too_few": needed}
        else:
            raise ConfigError(
                f"{answerable} answerable question(s) fall in the {group!r} reading group: too few to fit it (at "
                f"least {min_fit}); give more labelled questions, or start from the shipped reader"
            )
        xd, yd, kinds = _question_rows(dev_rows, sentence[group], tools, group)
        probs = np.array([logistic(refusal[group], dict(zip(QUESTION_FEATURES, row))) for row in xd])
        positive = np.array([kind == ("with", True) for kind in kinds])
        negative = yd == 0
        if "too_few" in how:
            threshold = refusal[group]["threshold"]
        else:
            threshold = float(np.quantile(probs[positive], false_refusal)) if positive.any() else 0.5
            refusal[group] = {**refusal[group], "threshold": round(threshold, 4)}
        refused = round(float((probs[positive] < threshold).mean()), 4) if positive.any() else None
        info["groups"][group] = {
            **how,
            "answerable": answerable,
            "dev_answerable": int(positive.sum()),
            "threshold": refusal[group]["threshold"],
            "base_threshold": base.refusal[group]["threshold"] if base is not None else None,
            "dev_questions": len(dev_rows),
            "dev_false_refusal": refused,
            "dev_refused_without_gold": round(float((probs[negative] < threshold).mean()), 4)
            if negative.any()
            else None,
        }
        if refused is not None and refused > false_refusal and "too_few" not in how:
            info["groups"][group]["warning"] = "false refusals above the target"
        log(describe_group(group, info["groups"][group], false_refusal))
    info["false_refusal_target"] = false_refusal
    info["seconds"] = round(time.perf_counter() - started, 1)
    return ReaderModel(sentence, refusal, info)


def min_threshold_questions(false_refusal: float) -> int:
    """How many answerable questions a reading group needs for its threshold to be chosen: the `false_refusal`
    quantile of fewer than 1/false_refusal values is the lowest of them or interpolated towards it, which says
    more about one question than about the reader (20 at the default 5%; never fewer than 5).

    >>> min_threshold_questions(0.05), min_threshold_questions(0.1), min_threshold_questions(0.3)
    (20, 10, 5)
    """
    return max(5, math.ceil(round(1 / false_refusal, 6)))


GROUP_NAMES = {"read": "read (questions the scorer reads: English)", "unread": "unread (Chinese and other text)"}


def describe_group(group: str, result: dict, target: float) -> str:
    """One reading group's outcome of `fit_reader` (its `info["groups"][group]`), as a line a person reads.

    >>> describe_group("read", {"kept": "base", "questions": 0}, 0.05)
    'read (questions the scorer reads: English): no questions; kept as it was'
    >>> print(describe_group("unread", {"fitted": 0, "threshold_from": 30, "answerable": 24, "threshold": 0.2,
    ...     "base_threshold": 0.31, "dev_questions": 30, "dev_answerable": 24, "dev_false_refusal": 0.0417,
    ...     "dev_refused_without_gold": 0.5}, 0.05))
    unread (Chinese and other text): threshold 0.31 -> 0.2, chosen on 30 questions (24 answerable): 4.2% of the answerable questions refused (target 5%), 50% of the unanswerable ones (and answerable ones shown without their gold passages)
    """
    name = GROUP_NAMES.get(group, group)
    if "dev_questions" not in result:
        n = result.get("questions", 0)
        return f"{name}: {'no questions' if not n else f'{n} question(s), none answerable'}; kept as it was"

    def pct(x: float) -> str:
        return f"{x * 100:.1f}".removesuffix(".0") + "%"

    refused = result.get("dev_false_refusal")
    shown = [
        f"{pct(refused)} of the answerable questions refused (target {pct(target)})" if refused is not None else None,
        f"{pct(result['dev_refused_without_gold'])} of the unanswerable ones (and answerable ones shown without their "
        "gold passages)"
        if result.get("dev_refused_without_gold") is not None
        else None,
    ]
    measured = ", ".join(s for s in shown if s)
    if "too_few" in result:
        return (
            f"{name}: kept as it was (threshold {result['threshold']}): {result['answerable']} answerable "
            f"question(s) are too few to choose a threshold for {pct(target)} false refusals (at least "
            f"{result['too_few']}); at that threshold {measured}"
        )
    base = result.get("base_threshold")
    threshold = f"threshold {base} -> {result['threshold']}" if base is not None else f"threshold {result['threshold']}"
    how = (
        f"weights fitted on {result['fitted']} questions, {threshold} chosen on {result['dev_questions']} held out"
        if result.get("fitted")
        else f"{threshold}, chosen on {result['dev_questions']} questions ({result['answerable']} answerable)"
    )
    line = f"{name}: {how}: {measured}"
    if result.get("warning"):
        one = pct(1 / result["dev_answerable"])
        line += f"; warning: {pct(refused)} is above the {pct(target)} target (one question is {one})"
    return line


def foreign_questions(questions: list[dict], others: list[dict], vocabulary, seed: int = 5) -> list[str]:
    """Questions about something the knowledge base does not cover, worded as ones it does: a name a question
    shares with its own paragraph (which the knowledge base holds) swapped for a name from another article that
    the knowledge base never mentions ("Is there a service centre in Beijing?" over Shenzhen's address). For
    English a capitalised name replaces a capitalised name; for Chinese a place, person or organisation name
    (jieba's tags) one of the same kind. Questions are {"question", "context" (their paragraph)}; `vocabulary`
    holds the knowledge base's tokens.

    >>> foreign_questions([{"question": "When did Tesla die?", "context": "Tesla died in 1943."}],
    ...                   [{"question": "What did Edison invent?"}], {"tesla", "died"})
    ['When did Edison die?']
    """
    rng = random.Random(seed)

    def kinds(question: str) -> dict[str, str]:
        names = entities(question)
        if not names or not has_cjk(question):
            return {n: "name" for n in names}
        import jieba.posseg as pseg

        flags = {w.word: w.flag[:2] for w in pseg.cut(question)}
        return {n: flags.get(n, "nz") for n in names}

    pool: dict[str, set[str]] = {}
    for q in others:
        for name, kind in kinds(q["question"]).items():
            pool.setdefault(kind, set()).add(name)
    unknown = {kind: sorted(n for n in names if never_mentioned(n, vocabulary)) for kind, names in pool.items()}
    changed = []
    for q in questions:
        text = q.get("context", "")
        anchors = [(n, k) for n, k in kinds(q["question"]).items() if n in text and unknown.get(k)]
        if anchors:
            name, kind = rng.choice(anchors)
            changed.append(q["question"].replace(name, rng.choice(unknown[kind]), 1))
    return changed
