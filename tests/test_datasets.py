"""rag.eval.datasets, the one reader of QA data: SQuAD 2.0 (with unanswerables), CMRC 2018 in both layouts,
WikiQA, BEIR folders and corpus JSONL; suites and retrieval evaluation see the same documents under the same ids."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA

from rag.errors import ConfigError
from rag.eval.datasets import read_beir, read_corpus_jsonl, read_public, retrieval_data, to_beir

NORMANS = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy."
SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Normans",
            "paragraphs": [
                {
                    "context": NORMANS,
                    "qas": [
                        {
                            "id": "q1",
                            "question": "In what country is Normandy located?",
                            "is_impossible": True,
                            "answers": [],
                            "plausible_answers": [{"text": "France", "answer_start": 0}],
                        },
                        {
                            "id": "q2",
                            "question": " When did the Normans name Normandy? ",
                            "is_impossible": False,
                            "answers": [{"text": "10th and 11th centuries", "answer_start": 42}] * 2,
                        },
                    ],
                },
                {"context": "Rollo was their first ruler.", "qas": []},
            ],
        },
        {
            "title": "Super_Bowl_50",
            "paragraphs": [
                {
                    "context": "Denver won.",
                    "qas": [{"id": "q3", "question": "Who won?", "answers": [{"text": "Denver"}]}],
                }
            ],
        },
    ],
}
# CMRC 2018 dev: a list of contexts; answers are bare values (in the wild some are numbers)
CMRC_DEV = [
    {
        "context_id": "DEV_0",
        "title": "退货",
        "context_text": "自签收之日起 7 天内可无理由退货。",
        "qas": [{"query_id": "DEV_0_QUERY_0", "query_text": "多少天内可以退货？", "answers": ["7 天", "7 天", 7, " "]}],
    }
]
# CMRC 2018 train and trial: SQuAD-shaped, and every article and paragraph carries its own id
CMRC_TRAIN = {
    "version": "v1.0",
    "data": [
        {
            "id": "TRAIN_186",
            "title": "范廷颂",
            "paragraphs": [
                {
                    "id": "TRAIN_186",
                    "context": "范廷颂是越南罗马天主教枢机。",
                    "qas": [
                        {
                            "id": "TRAIN_186_QUERY_0",
                            "question": "范廷颂是什么时候被任命为主教的？",
                            "answers": [{"text": "1963年", "answer_start": 30}],
                        }
                    ],
                }
            ],
        }
    ],
}


def _write(path, payload):
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return path


def write_beir(folder):
    """A three-document BEIR folder with two judged queries and one unjudged."""
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Router", "text": "Hold the reset button for twelve seconds."},
        {"_id": "d2", "title": "Shipping", "text": "Express delivery takes one business day."},
        {"_id": "d3", "title": "", "text": "Refunds arrive within five business days."},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus) + "\n")
    queries = [
        {"_id": "q1", "text": "reset button seconds"},
        {"_id": "q2", "text": "refund days"},
        {"_id": "q9", "text": "unjudged"},
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\n")
    return folder


# ------------------------------------------------------------------------------------------------ SQuAD, CMRC


def test_squad_v2_paragraphs_become_documents_and_unanswerables_stay(tmp_path):
    docs, questions = read_public("squad", _write(tmp_path / "squad.json", SQUAD))
    assert [d["id"] for d in docs] == ["Normans/000", "Normans/001", "Super-Bowl-50/000"]
    assert docs[0] == {"id": "Normans/000", "title": "Normans", "text": NORMANS}
    assert docs[2]["title"] == "Super Bowl 50"  # SQuAD's underscores read as spaces
    by_id = {q["id"]: q for q in questions}
    # unanswerable: no answers (not even the plausible ones), but still sourced to its paragraph
    assert by_id["q1"] == {
        "id": "q1",
        "question": "In what country is Normandy located?",
        "answers": [],
        "sources": ["Normans/000"],
        "answerable": False,
    }
    assert by_id["q2"]["answers"] == ["10th and 11th centuries"]  # duplicates dropped
    assert by_id["q2"]["question"] == "When did the Normans name Normandy?" and by_id["q2"]["answerable"]
    assert by_id["q3"]["answerable"] is True  # SQuAD 1.1 records have no is_impossible

    docs, questions = read_public("squad", tmp_path / "squad.json", documents=1)
    assert len(docs) == 2 and {q["id"] for q in questions} == {"q1", "q2"}


def test_cmrc_dev_layout_keeps_context_ids_and_odd_answers(tmp_path):
    docs, questions = read_public("cmrc", _write(tmp_path / "dev.json", CMRC_DEV))
    assert docs == [{"id": "DEV_0", "title": "退货", "text": "自签收之日起 7 天内可无理由退货。"}]
    q = questions[0]
    assert q["id"] == "DEV_0_QUERY_0" and q["sources"] == ["DEV_0"] and q["answerable"] is True
    assert q["answers"] == ["7 天", "7"]  # numbers become text; duplicates and blanks go


def test_cmrc_train_layout_is_read_as_squad_with_the_paragraph_ids(tmp_path):
    docs, questions = read_public("cmrc", _write(tmp_path / "train.json", CMRC_TRAIN))
    assert docs == [{"id": "TRAIN_186", "title": "范廷颂", "text": "范廷颂是越南罗马天主教枢机。"}]
    assert questions[0]["sources"] == ["TRAIN_186"] and questions[0]["answers"] == ["1963年"]


def test_a_repeated_document_id_is_made_unique_not_dropped(tmp_path):
    twice = {"data": [SQUAD["data"][1], SQUAD["data"][1]]}
    docs, questions = read_public("squad", _write(tmp_path / "twice.json", twice))
    assert [d["id"] for d in docs] == ["Super-Bowl-50/000", "Super-Bowl-50/000-2"]
    assert [q["sources"] for q in questions] == [["Super-Bowl-50/000"], ["Super-Bowl-50/000-2"]]
    docs, _ = read_public("cmrc", _write(tmp_path / "dev.json", CMRC_DEV * 2))
    assert [d["id"] for d in docs] == ["DEV_0", "DEV_0-2"]


@pytest.mark.parametrize(
    "kind, content, message",
    [
        ("cmrc", json.dumps([{"context_id": "X", "qas": []}]), "lacks a field CMRC data has"),
        ("squad", json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), "lacks a field SQUAD data has"),
        (
            "squad",
            json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": 1, "question": 7}]}]}]}),
            "lacks",
        ),
        ("squad", "{}", "does not look like SQUAD data"),
        ("squad", json.dumps(CMRC_DEV), "does not look like SQUAD data"),  # a list is CMRC's layout, not SQuAD's
        ("cmrc", "not json", "is not a CMRC JSON file"),
    ],
)
def test_bad_public_files_are_named_with_what_is_wrong(tmp_path, kind, content, message):
    path = tmp_path / "data.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_public(kind, path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_and_unknown_data_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="squad data .*missing.json does not exist"):
        read_public("squad", tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="must be one of squad, cmrc, wikiqa, beir"):
        read_public("natural-questions", tmp_path)


# ----------------------------------------------------------------------------------------------------- WikiQA

WIKIQA_HEADER = "QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel\n"
WIKIQA_ROWS = [
    ("Q1", "how are glacier caves formed?", "D1", "Glacier cave", "D1-0", "A partly submerged glacier cave.", "0"),
    (
        "Q1",
        "how are glacier caves formed?",
        "D1",
        "Glacier cave",
        "D1-1",
        'A glacier cave is a "cave" formed in ice .',
        "1",
    ),
    ("Q2", "what is a glacier cave called", "D1", "Glacier cave", "D1-0", "A partly submerged glacier cave.", "0"),
    (
        "Q2",
        "what is a glacier cave called",
        "D1",
        "Glacier cave",
        "D1-1",
        'A glacier cave is a "cave" formed in ice .',
        "0",
    ),
    ("Q3", "who wrote hamlet", "D2", "Hamlet", "D2-0", "Hamlet is a tragedy by William Shakespeare.", "1"),
]


def _wikiqa(path, rows=WIKIQA_ROWS, header=WIKIQA_HEADER):
    path.write_text(header + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_wikiqa_summaries_become_documents_and_correct_sentences_the_answers(tmp_path):
    docs, questions = read_public("wikiqa", _wikiqa(tmp_path / "WikiQA-test.tsv"))
    assert docs[0] == {
        "id": "D1",
        "title": "Glacier cave",
        "text": 'A partly submerged glacier cave. A glacier cave is a "cave" formed in ice .',  # quotes kept as text
    }
    by_id = {q["id"]: q for q in questions}
    assert by_id["Q1"]["answers"] == ['A glacier cave is a "cave" formed in ice .'] and by_id["Q1"]["answerable"]
    assert by_id["Q2"] == {  # no sentence answers it: unanswerable, still sourced to its summary
        "id": "Q2",
        "question": "what is a glacier cave called",
        "answers": [],
        "sources": ["D1"],
        "answerable": False,
    }
    docs, questions = read_public("wikiqa", tmp_path / "WikiQA-test.tsv", documents=1)
    assert [d["id"] for d in docs] == ["D1"] and {q["id"] for q in questions} == {"Q1", "Q2"}


def test_bad_wikiqa_files_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="not a WikiQA TSV: its header lacks .*Label"):
        read_public("wikiqa", _wikiqa(tmp_path / "a.tsv", header=WIKIQA_HEADER.replace("\tLabel", "")))
    bad = [WIKIQA_ROWS[0][:-1] + ("yes",)]
    with pytest.raises(ConfigError, match="b.tsv line 2: Label must be 0 or 1, got 'yes'"):
        read_public("wikiqa", _wikiqa(tmp_path / "b.tsv", rows=bad))


# ---------------------------------------------------------------------------- one id scheme for both readers


def test_suites_and_retrieval_evaluation_see_the_same_ids(tmp_path):
    """A suite over a SQuAD file and `rag eval retrieval --squad` on it read the same documents, ids and gold
    sources; retrieval keeps the answerable questions only."""
    from rag.eval.suite import load_suite

    _write(tmp_path / "squad.json", SQUAD)
    (tmp_path / "s.yaml").write_text("name: s\nsquad: squad.json\nselect: {test_share: 1.0}\n")
    suite = load_suite(tmp_path / "s.yaml")
    data = retrieval_data("squad", tmp_path / "squad.json")
    assert list(data.corpus) == [d["id"] for d in suite.documents]
    assert data.qrels == {q["id"]: {q["sources"][0]: 1} for q in suite.questions if q["answerable"]}
    assert set(data.queries) == {"q2", "q3"} and data.name == "squad"

    _write(tmp_path / "cmrc.json", CMRC_TRAIN)
    (tmp_path / "c.yaml").write_text("name: c\ncmrc: cmrc.json\n")
    suite = load_suite(tmp_path / "c.yaml")
    data = retrieval_data("cmrc", tmp_path / "cmrc.json")
    assert list(data.corpus) == [d["id"] for d in suite.documents] == ["TRAIN_186"]
    assert data.qrels == {"TRAIN_186_QUERY_0": {"TRAIN_186": 1}}


def test_to_beir_joins_several_gold_sources():
    docs = [{"id": "a", "title": "", "text": "x"}, {"id": "b", "title": "B", "text": "y"}]
    questions = [{"id": "q", "question": "x or y?", "answers": ["x"], "sources": ["a", "b"], "answerable": True}]
    data = to_beir("t", docs, questions)
    assert data.corpus == {"a": {"title": "", "text": "x"}, "b": {"title": "B", "text": "y"}}
    assert data.qrels == {"q": {"a": 1, "b": 1}}


# ------------------------------------------------------------------------------------------------------ BEIR


def test_beir_folder_keeps_judged_queries_only(tmp_path):
    data = read_beir(write_beir(tmp_path / "tiny"))
    assert set(data.queries) == {"q1", "q2"} and data.qrels["q2"] == {"d3": 2}
    assert data.corpus["d1"]["title"] == "Router" and data.name == "tiny"
    assert retrieval_data("beir", tmp_path / "tiny") == data


def test_bad_beir_folders_are_explained(tmp_path):
    beir = write_beir(tmp_path / "tiny")
    with pytest.raises(ConfigError, match="does not exist"):
        read_beir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="dev.tsv is missing"):
        read_beir(beir, split="dev")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(ConfigError, match="line 2: the score must be a whole number"):
        read_beir(beir)
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n{broken\n')
    with pytest.raises(ConfigError, match="line 2"):
        read_beir(beir)


def test_beir_suite_has_retrieval_questions(tmp_path):
    from rag.eval.suite import load_suite

    write_beir(tmp_path / "beir")
    (tmp_path / "b.yaml").write_text("name: b\nbeir: beir\nselect: {documents: 2}\n")
    suite = load_suite(tmp_path / "b.yaml")
    assert [d["id"] for d in suite.documents] == ["d1", "d2"]
    # q2's only relevant document (d3) is not selected, so q2 is left out; BEIR has no answer strings
    assert [(q["id"], q["sources"], q["answers"]) for q in suite.questions] == [("q1", ["d1"], [])]


# ----------------------------------------------------------------------------------------------- corpus JSONL


def test_corpus_jsonl(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"_id": "d1", "title": "Router", "text": "Hold RESET for 12 seconds."}\n\n{"id": 2, "text": "x"}\n'
    )
    assert read_corpus_jsonl(corpus) == [
        {"id": "d1", "title": "Router", "text": "Hold RESET for 12 seconds."},
        {"id": "2", "title": "", "text": "x"},
    ]
    for content, message in [
        ('{"id": "d1", "text": "a"}\n\n{"id": "d1", "text": "b"}\n', "line 3: duplicate document id 'd1'"),
        ('{"id": "d1", "body": "a"}\n', 'line 1: a corpus document looks like {"id"'),
        ("not json\n", "line 1 is not valid JSON"),
        ("\n", "holds no documents"),
    ]:
        corpus.write_text(content)
        with pytest.raises(ConfigError) as err:
            read_corpus_jsonl(corpus)
        assert message in str(err.value)


# ------------------------------------------------------------------------------------------ the shared data


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data not present")
def test_shared_public_data():
    squad = retrieval_data("squad", SHARED_DATA / "squad2-dev-half" / "dev-v2.0.json")
    assert len(squad.corpus) == 646 and len(squad.queries) == 2910  # answerable questions only
    assert next(iter(squad.corpus)) == "Normans/000"
    cmrc = retrieval_data("cmrc", SHARED_DATA / "cmrc2018-dev" / "cmrc2018_dev.json")
    assert len(cmrc.corpus) == 848 and len(cmrc.queries) == 3219
    docs, questions = read_public("cmrc", SHARED_DATA / "cmrc2018-trial" / "cmrc2018_trial.json")
    assert len(docs) == 256 and len(questions) == 1002 and docs[0]["id"] == "TRIAL_800"
    docs, questions = read_public("wikiqa", SHARED_DATA / "wikiqa" / "WikiQA-test.tsv")
    assert len(docs) == 619 and len(questions) == 633 and sum(q["answerable"] for q in questions) == 243
