"""rag.eval.metrics: retrieval metrics as trec_eval computes them, answer metrics as SQuAD's script does,
bootstrap intervals and paired tests. Hand-computed values throughout."""

import math

import pytest

from rag.eval.metrics import (
    answer_tokens,
    bootstrap_ci,
    contains_gold,
    exact_match,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    paired_test,
    recall_at_k,
    retrieval_metrics,
    rouge_l,
    token_f1,
)

# --------------------------------------------------------------------------------------- retrieval metrics


def test_ndcg_hand_computed_graded():
    # ranks: d1 (grade 2), d2 (0), d3 (1); ideal: 2, 1
    dcg = 2 / math.log2(2) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["d1", "d2", "d3"], {"d1": 2, "d3": 1}, 10) == pytest.approx(dcg / idcg)


def test_ndcg_cutoff_and_perfect():
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a": 1}, 10) == 0.0


def test_recall_and_mrr():
    assert recall_at_k(["a", "b", "c"], {"c": 1, "d": 1}, 2) == 0.0
    assert recall_at_k(["a", "b", "c"], {"c": 1, "d": 1}, 3) == 0.5
    assert mrr_at_k(["a", "b"], {"b": 1}) == 0.5
    assert mrr_at_k(["a"] * 11 + ["b"], {"b": 1}, 10) == 0.0
    assert recall_at_k(["a"], {"a": 0}, 1) == 0.0  # grade 0 is not relevant


def test_retrieval_metrics_averages_over_judged_queries():
    run = {"q1": ["a"], "q2": ["x"]}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}  # q3 missing from the run counts as 0
    m = retrieval_metrics(run, qrels)
    assert m["recall@10"] == pytest.approx(1 / 3)
    assert m["mrr@10"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------------ answer metrics


def test_squad_normalisation_matches_the_official_script():
    # the official script: lower, drop string.punctuation, drop a/an/the as words, collapse whitespace
    assert normalize_answer("The Norman  Conquest, in 1066!") == "norman conquest in 1066"
    assert normalize_answer("Theater") == "theater"  # "the" only as a whole word
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("“Quoted”") == "“quoted”"  # non-ASCII punctuation is kept, as in the official script


def test_exact_match_and_f1_hand_computed():
    assert exact_match("The Normans.", ["Normans", "Norman people"]) == 1.0
    assert exact_match("Normans from France", ["Normans"]) == 0.0
    # prediction "normans from france" vs gold "normans": p = 1/3, r = 1 -> F1 = 0.5
    assert token_f1("Normans from France", ["Normans"]) == pytest.approx(0.5)
    # best over golds: "10th and 11th centuries" vs "10th century" (1 common of 4 / 2) and the same gold
    assert token_f1("10th and 11th centuries", ["10th century", "10th and 11th centuries"]) == 1.0
    assert token_f1("nothing shared", ["Normans"]) == 0.0
    assert token_f1("anything", []) == 0.0


def test_chinese_is_scored_by_character():
    assert answer_tokens("7天内") == ["7", "天", "内"]
    # gold "7天" vs prediction "7天内可以退货" (7 characters): common 2, p = 2/7, r = 2/2 -> F1 = 4/9
    assert token_f1("7天内可以退货", ["7天"]) == pytest.approx(4 / 9)
    assert exact_match("7 天。", ["7天"]) == 1.0  # punctuation and spaces do not count
    assert contains_gold("自签收之日起 7 天内可无理由退货 [1]", ["7天"]) == 1.0


def test_a_pair_is_tokenised_one_way():
    # a Chinese answer around a Latin gold: both sides by character, so the hotline number matches
    assert contains_gold("客服热线：400-820-7788 [1]", ["400-820-7788"]) == 1.0
    assert exact_match("400-820-7788。", ["400-820-7788"]) == 1.0
    assert contains_gold("客服热线：400-820-7789", ["400-820-7788"]) == 0.0
    # symbols outside ASCII separate words for contains-gold only (SQuAD's EM keeps them)
    assert contains_gold("Express, 1 business day, €14.90 [2]", ["14.90"]) == 1.0
    assert contains_gold("Express costs €114.90", ["14.90"]) == 0.0
    assert exact_match("€14.90", ["14.90"]) == 0.0


def test_rouge_l_and_contains_hand_computed():
    # LCS of "hold reset button for 12 seconds" and "hold the reset button" (normalised: hold reset button) = 3
    # p = 3/6, r = 3/3 -> F = 2 * 0.5 * 1 / 1.5
    assert rouge_l("Hold RESET button for 12 seconds", ["hold the reset button"]) == pytest.approx(2 / 3)
    assert contains_gold("It takes 12 seconds [2].", ["12 seconds"]) == 1.0
    assert contains_gold("It takes 112 seconds.", ["12 seconds"]) == 0.0  # whole tokens, not substrings
    assert exact_match("12 seconds [1]", ["12 seconds"]) == 1.0  # the citation is not part of the answer


def test_bootstrap_interval_on_known_data():
    assert bootstrap_ci([0.7] * 20) == pytest.approx((0.7, 0.7, 0.7))
    mean, low, high = bootstrap_ci([0, 1] * 50)
    assert mean == 0.5
    # binomial standard error sqrt(.25/100) = 0.05: the 95% interval is about +-0.098
    assert 0.38 < low < 0.42 and 0.58 < high < 0.62
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert bootstrap_ci([0, 1] * 50) == bootstrap_ci([0, 1] * 50)  # seeded: reproducible


def test_paired_test_separates_real_and_null_differences():
    same = paired_test([1, 0, 1, 0] * 10, [1, 0, 1, 0] * 10)
    assert same["diff"] == 0 and same["p"] == 1.0
    better = paired_test([1] * 30, [0] * 30)
    assert better["diff"] == 1 and better["p"] < 0.001
    noise = paired_test([1, 0] * 15, [0, 1] * 15)  # as many wins as losses
    assert noise["p"] > 0.5
    with pytest.raises(ValueError, match="same questions"):
        paired_test([1, 0], [1])
