"""The one reader of question-answering data: SQuAD 1.1/2.0, CMRC 2018, WikiQA, BEIR folders and corpus JSONL.

Everything comes out in one shape, read by suites (`rag.eval.suite`) and by retrieval evaluation
(`rag.eval.retrieval`) alike, so both see the same documents under the same ids:

    documents  [{"id", "title", "text"}]  one per paragraph (SQuAD, CMRC) or corpus record (BEIR, corpus JSONL)
    questions  [{"id", "question", "answers", "sources", "answerable"}]  `sources`: the gold documents' ids

Document ids: a paragraph keeps the id its file gives it (CMRC's `context_id`, or the paragraph's `id` in the
SQuAD-shaped CMRC train/trial files); where the file gives none (SQuAD), it is `<title slug>/<paragraph
number>`, e.g. `Normans/003`, readable in reports and stable when more articles are selected. A second
paragraph with an id already taken gets `-2`, `-3`, ... appended, so no document is ever dropped. BEIR and
corpus JSONL records keep their own ids.

WikiQA (a TSV of Bing questions, each with the sentences of one Wikipedia summary labelled 1 where they answer
it): each summary is a document (its `DocumentID`, the sentences joined), a question's answers are its correct
sentences (an extractive answer must quote one), and a question without one is unanswerable. Its questions
were typed into a search engine, not written from the paragraph, so they test reading a question worded
unlike its answer.

SQuAD 2.0's unanswerable questions (`is_impossible`) come out with `answerable: false` and no answers, still
sourced to their paragraph (a refusal is judged against it); a question whose answers are all blank is not
answerable either. Answers that are not strings (CMRC has numbers) become text; duplicate and blank ones are
dropped. `to_beir` derives retrieval data (`BeirData`) from documents and questions: the answerable questions
are the queries, their sources the relevant documents.

What this module does not do: split questions into train and test, or check a suite's own question files
(`rag.eval.suite`); score anything (`rag.eval.metrics`).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..records import parse_jsonl, parse_jsonl_numbered

KINDS = ("squad", "cmrc", "wikiqa", "beir")


@dataclass(frozen=True)
class BeirData:
    """Retrieval data in BEIR's shape (what `rag.eval.retrieval.evaluate` reads)."""

    name: str
    corpus: dict[str, dict]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}; grades <= 0 are not relevant


# ----------------------------------------------------------------------------------------------- SQuAD, CMRC


def read_public(kind: str, source: str | Path, documents: int | None = None) -> tuple[list[dict], list[dict]]:
    """Documents and questions of a SQuAD or CMRC JSON file, or a BEIR folder (its test split), keeping the
    first `documents` articles (SQuAD), contexts (CMRC) or documents (BEIR). Raises `ConfigError` naming the
    file and what is wrong with it."""
    if kind not in KINDS:
        raise ConfigError(f"data kind must be one of {', '.join(KINDS)}, got {kind!r}")
    source = Path(source)
    if not source.exists():
        raise ConfigError(f"{kind} data {source} does not exist")
    if kind == "beir":
        return beir_questions(read_beir(source), documents)
    if kind == "wikiqa":
        return _wikiqa(source, documents)
    try:
        payload = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source} is not a {kind.upper()} JSON file: {exc}") from exc
    try:
        if kind == "cmrc" and isinstance(payload, list):
            return _cmrc_list(payload, documents)
        if isinstance(payload, dict) and isinstance(payload.get("data"), list):
            return _squad(payload, documents)  # SQuAD, and CMRC's train/trial files, which are SQuAD-shaped
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{source}: a record lacks a field {kind.upper()} data has ({exc!r})") from exc
    raise ConfigError(f"{source} does not look like {kind.upper()} data (no 'data' list of articles)")


def _squad(payload: dict, documents: int | None) -> tuple[list[dict], list[dict]]:
    docs, questions, seen = [], [], set()
    for article in payload["data"][:documents]:
        title = str(article.get("title", "")).replace("_", " ")
        slug = _slug(title) or "article"
        for p, para in enumerate(article.get("paragraphs", [])):
            own = para.get("id")
            doc_id = _unique(str(own) if own not in (None, "") else f"{slug}/{p:03d}", seen)
            docs.append({"id": doc_id, "title": title, "text": para["context"]})
            for qa in para.get("qas", []):
                impossible = bool(qa.get("is_impossible"))
                answers = [] if impossible else _answer_texts(qa.get("answers", []))
                questions.append(_question(qa["id"], qa["question"], answers, doc_id, not impossible and bool(answers)))
    return docs, questions


def _cmrc_list(payload: list, documents: int | None) -> tuple[list[dict], list[dict]]:
    """CMRC 2018's dev layout: a list of {context_id, context_text, title, qas: [{query_id, query_text, answers}]}."""
    docs, questions, seen = [], [], set()
    for item in payload[:documents]:
        doc_id = _unique(str(item["context_id"]), seen)
        docs.append({"id": doc_id, "title": str(item.get("title", "")), "text": item["context_text"]})
        for qa in item.get("qas", []):
            # CMRC has no unanswerable questions: each was written from its paragraph
            answers = _answer_texts(qa.get("answers", []))
            questions.append(_question(qa["query_id"], qa["query_text"], answers, doc_id, True))
    return docs, questions


def wikiqa_rows(path: str | Path):
    """The rows of a WikiQA TSV (header QuestionID, Question, DocumentID, DocumentTitle, SentenceID, Sentence,
    Label), checked: {"qid", "question", "doc", "title", "sentence" (stripped), "label" (0 or 1)}."""
    needed = {"QuestionID", "Question", "DocumentID", "DocumentTitle", "Sentence", "Label"}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not needed <= set(reader.fieldnames or ()):
            raise ConfigError(
                f"{path} is not a WikiQA TSV: its header lacks {sorted(needed - set(reader.fieldnames or ()))}"
            )
        for number, row in enumerate(reader, start=2):
            if row["Label"] not in ("0", "1"):
                raise ConfigError(f"{path} line {number}: Label must be 0 or 1, got {row['Label']!r}")
            yield {
                "qid": row["QuestionID"],
                "question": row["Question"] or "",
                "doc": row["DocumentID"],
                "title": row["DocumentTitle"] or "",
                "sentence": (row["Sentence"] or "").strip(),
                "label": int(row["Label"]),
            }


def _wikiqa(path: Path, documents: int | None) -> tuple[list[dict], list[dict]]:
    """WikiQA's summaries as documents and its questions (the first `documents` documents and their questions)."""
    docs: dict[str, dict] = {}
    questions: dict[str, dict] = {}
    for row in wikiqa_rows(path):
        doc_id, sentence = row["doc"], row["sentence"]
        if doc_id not in docs:
            if documents is not None and len(docs) >= documents:
                continue
            docs[doc_id] = {"id": doc_id, "title": row["title"], "sentences": []}
        if sentence and sentence not in docs[doc_id]["sentences"]:
            docs[doc_id]["sentences"].append(sentence)
        q = questions.setdefault(row["qid"], _question(row["qid"], row["question"], [], doc_id, False))
        if row["label"] and sentence:
            q["answers"].append(sentence)
            q["answerable"] = True
    out = [{"id": d["id"], "title": d["title"], "text": " ".join(d["sentences"])} for d in docs.values()]
    return [d for d in out if d["text"]], [q for q in questions.values() if q["question"]]


def _question(qid, text: str, answers: list[str], source: str, answerable: bool) -> dict:
    return {"id": str(qid), "question": text.strip(), "answers": answers, "sources": [source], "answerable": answerable}


def _answer_texts(answers: list) -> list[str]:
    """Distinct, non-blank answer texts from SQuAD's {"text": ...} records or bare values (CMRC has numbers).

    >>> _answer_texts([{"text": "7 天"}, {"text": "7 天"}, 1998, " ", {"answer_start": 3}])
    ['7 天', '1998']
    """
    texts = [str(a.get("text", "") if isinstance(a, dict) else a) for a in answers]
    return [a for a in dict.fromkeys(texts) if a.strip()]


def _slug(text: str) -> str:
    """
    >>> _slug("Super Bowl 50"), _slug("Yuan dynasty (1271–1368)")
    ('Super-Bowl-50', 'Yuan-dynasty-1271-1368')
    """
    return re.sub(r"[^\w-]+", "-", text.strip()).strip("-")[:60]


def _unique(doc_id: str, seen: set[str]) -> str:
    candidate, n = doc_id, 1
    while candidate in seen:
        n += 1
        candidate = f"{doc_id}-{n}"
    seen.add(candidate)
    return candidate


# ------------------------------------------------------------------------------------------------------ BEIR


def _read_beir_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing; a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    return parse_jsonl(path.read_text(encoding="utf-8"), str(path), require="_id")


def read_beir(folder: str | Path, split: str = "test") -> BeirData:
    """A BEIR dataset folder: `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}) and
    `qrels/<split>.tsv` (query-id, corpus-id, score, with a header). Only queries judged in that split are kept."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"BEIR folder {folder} does not exist")
    corpus = {
        str(r["_id"]): {"title": r.get("title") or "", "text": r.get("text") or ""}
        for r in _read_beir_jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): r.get("text") or "" for r in _read_beir_jsonl(folder / "queries.jsonl")}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise ConfigError(f"{qrels_path} is missing; pick an existing split with --split")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or (number == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) < 3:
                raise ConfigError(f"{qrels_path} line {number}: expected query-id, corpus-id, score")
            try:
                qid, did, grade = row[0], row[1], int(row[2])
            except ValueError as exc:
                raise ConfigError(
                    f"{qrels_path} line {number}: the score must be a whole number, got {row[2]!r}"
                ) from exc
            if qid in queries:
                qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise ConfigError(f"{qrels_path} judges none of the queries in queries.jsonl")
    return BeirData(folder.name, corpus, {q: queries[q] for q in qrels}, qrels)


def beir_questions(data: BeirData, documents: int | None = None) -> tuple[list[dict], list[dict]]:
    """BEIR data as documents and questions: the first `documents` documents with text, and the queries with a
    relevant document among them (retrieval only: BEIR has no answer strings)."""
    docs = [{"id": d, "title": v["title"], "text": v["text"]} for d, v in data.corpus.items() if v["text"].strip()]
    docs = docs[:documents]
    kept = {d["id"] for d in docs}
    questions = []
    for qid, text in data.queries.items():
        sources = [d for d, grade in data.qrels[qid].items() if grade > 0 and d in kept]
        if sources:
            questions.append({"id": qid, "question": text, "answers": [], "sources": sources, "answerable": True})
    return docs, questions


def to_beir(name: str, documents: list[dict], questions: list[dict]) -> BeirData:
    """Retrieval data from documents and questions: every document, and each answerable question with sources
    as a query whose sources are relevant (grade 1). A repeated question id keeps its last occurrence.

    >>> data = to_beir("t", [{"id": "a/000", "title": "A", "text": "x"}],
    ...     [{"id": "q1", "question": "x?", "answers": ["x"], "sources": ["a/000"], "answerable": True},
    ...      {"id": "q2", "question": "y?", "answers": [], "sources": ["a/000"], "answerable": False}])
    >>> data.queries, data.qrels
    ({'q1': 'x?'}, {'q1': {'a/000': 1}})
    """
    corpus = {d["id"]: {"title": d["title"], "text": d["text"]} for d in documents}
    queries, qrels = {}, {}
    for q in questions:
        if q["answerable"] and q["sources"]:
            queries[q["id"]] = q["question"]
            qrels[q["id"]] = dict.fromkeys(q["sources"], 1)
    return BeirData(name, corpus, queries, qrels)


def retrieval_data(kind: str, source: str | Path, split: str = "test") -> BeirData:
    """What `rag eval retrieval` evaluates: a BEIR folder's `split` as it is, or a SQuAD/CMRC file's paragraphs
    and answerable questions (through `read_public`, so the ids are those suites use)."""
    if kind == "beir":
        return read_beir(source, split)
    documents, questions = read_public(kind, source)
    return to_beir(Path(source).stem, documents, questions)


# ----------------------------------------------------------------------------------------------- corpus JSONL


def read_corpus_jsonl(path: str | Path) -> list[dict]:
    """A corpus file: one document per line, {"id" (or BEIR's "_id"), "title" (optional), "text"}."""
    path = Path(path)
    docs, seen = [], set()
    for number, record in parse_jsonl_numbered(path.read_text(encoding="utf-8"), str(path)):
        doc_id = record.get("id", record.get("_id"))
        if doc_id is None or not isinstance(record.get("text"), str) or not record["text"].strip():
            raise ConfigError(f'{path} line {number}: a corpus document looks like {{"id": "...", "text": "..."}}')
        if str(doc_id) in seen:
            raise ConfigError(f"{path} line {number}: duplicate document id {doc_id!r}")
        seen.add(str(doc_id))
        docs.append({"id": str(doc_id), "title": str(record.get("title") or ""), "text": record["text"]})
    if not docs:
        raise ConfigError(f"{path} holds no documents")
    return docs
