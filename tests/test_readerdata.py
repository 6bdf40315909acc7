"""Training pairs for the evidence scorer: the answer sentence against its neighbours, and SQuAD 2.0-style
unanswerable look-alikes made by changing what a question asks."""

from __future__ import annotations

import random

from rag.readerdata import adversarial_pairs, perturb, scorer_pairs

PARAGRAPH = (
    "The Super Nintendo was released in 1990 in Japan. It reached North America in 1991. "
    "Europe received the console in 1992. The first game bundled with it was Super Mario World. "
    "Nintendo sold the console until 2003."
)
DOCUMENTS = [
    {"id": "snes-0", "title": "Super Nintendo", "text": PARAGRAPH},
    {
        "id": "snes-1",
        "title": "Super Nintendo",
        "text": "The console has a 16-bit processor. Its sound chip came from Sony.",
    },
]
QUESTIONS = [
    {"question": "When was the Super Nintendo released in Japan?", "answers": ["1990"], "sources": ["snes-0"]},
    {"question": "When did Europe receive the console?", "answers": ["1992"], "sources": ["snes-0"]},
    {"question": "What was the first game bundled with it?", "answers": ["Super Mario World"], "sources": ["snes-0"]},
    {"question": "Who made the sound chip?", "answers": ["Sony"], "sources": ["snes-1"]},
]


def test_answer_sentences_are_positives_and_their_neighbours_negatives():
    pairs = scorer_pairs(DOCUMENTS, QUESTIONS[:1])
    positives = [p["text"] for p in pairs if p["label"] == 1.0]
    negatives = [p["text"] for p in pairs if p["label"] == 0.0]
    assert positives == ["Super Nintendo\nThe Super Nintendo was released in 1990 in Japan."]
    assert negatives and all("1990" not in text for text in negatives)
    assert all(text.startswith("Super Nintendo\n") for text in negatives)  # the heading path, as answers show it


def test_a_swapped_name_or_number_makes_the_answer_sentence_a_negative():
    sentence = "The Super Nintendo was released in 1990 in Japan."
    for seed in range(20):
        changed = perturb(QUESTIONS[0]["question"], sentence, PARAGRAPH, random.Random(seed), set())
        assert changed is not None and changed != QUESTIONS[0]["question"]
        swapped_in = set(changed.rstrip("?").split()) - set(QUESTIONS[0]["question"].rstrip("?").split())
        assert swapped_in and not any(word in sentence for word in swapped_in)
        assert any(word in PARAGRAPH for word in swapped_in)  # from the same paragraph, as SQuAD 2.0 writes them


def test_a_comparison_word_is_reversed():
    question, sentence = QUESTIONS[2]["question"], "The first game bundled with it was Super Mario World."
    changes = {perturb(question, sentence, PARAGRAPH, random.Random(seed), set()) for seed in range(30)}
    assert "What was the last game bundled with it?" in changes


def test_nothing_shared_with_the_sentence_means_no_change():
    assert perturb("Who made it?", "Sony made the sound chip.", PARAGRAPH, random.Random(0), set()) is None


def test_adversarial_pairs_hold_each_question_next_to_its_changed_copy():
    pairs = adversarial_pairs(DOCUMENTS, QUESTIONS, share=1.0)
    positives = [p for p in pairs if p["label"] == 1.0]
    negatives = [p for p in pairs if p["label"] == 0.0]
    assert len(positives) == len(negatives) >= 3
    originals = {q["question"] for q in QUESTIONS}
    assert {p["question"] for p in positives} <= originals
    assert not {p["question"] for p in negatives} & originals
    assert {p["text"] for p in negatives} == {p["text"] for p in positives}  # same sentence, changed question
    unanswerable = [{**QUESTIONS[0], "answerable": False}]
    assert adversarial_pairs(DOCUMENTS, unanswerable, share=1.0) == []
