"""benchmarks/selection_bench.py: WikiQA's published ranking metrics computed as the published papers do."""

import numpy as np
import pytest

from benchmarks.selection_bench import ranking_scores, read_wikiqa, report_lines


def test_map_and_mrr_skip_questions_without_a_correct_sentence():
    scores = [np.array([0.9, 0.1, 0.5]), np.array([0.2, 0.8]), np.array([0.3, 0.1])]
    labels = [[0, 1, 1], [1, 0], [0, 0]]
    # q1: ranked 0, 1(pos at 2), 1(pos at 3) -> AP (1/2 + 2/3)/2, RR 1/2; q2: pos at 2 -> AP 1/2, RR 1/2; q3 skipped
    assert ranking_scores(scores, labels) == {
        "map": round(((1 / 2 + 2 / 3) / 2 + 0.5) / 2, 4),
        "mrr": 0.5,
        "questions": 2,
    }
    # ties keep input order: a constant ranker is not credited with a perfect ranking
    assert ranking_scores([np.zeros(3)], [[0, 0, 1]])["mrr"] == pytest.approx(1 / 3, abs=1e-4)


def test_wikiqa_tsv_is_read_per_question_with_its_labels(tmp_path):
    path = tmp_path / "WikiQA-test.tsv"
    path.write_text(
        "QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel\n"
        'Q1\thow are glacier caves formed?\tD1\tGlacier cave\tD1-0\tA "partly" submerged cave.\t0\n'
        "Q1\thow are glacier caves formed?\tD1\tGlacier cave\tD1-1\tIt is formed by melting ice.\t1\n",
        encoding="utf-8",
    )
    assert read_wikiqa(path) == [
        {
            "question": "how are glacier caves formed?",
            "title": "Glacier cave",
            "sentences": ['A "partly" submerged cave.', "It is formed by melting ice."],
            "labels": [0, 1],
        }
    ]
    assert report_lines({"skipped": "no data"})[2] == "Skipped: no data."
