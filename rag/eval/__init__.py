"""Evaluation: does retrieval, fine-tuning, or both help? Measured on labelled questions, without an LLM judge.

Modules, in the order a run (`rag eval SUITE`) uses them:

    datasets   the one reader of question-answering data: SQuAD 1.1/2.0, CMRC 2018, BEIR folders, corpus JSONL
    suite      suite files: a knowledge base, labelled questions, the systems and the training budget, checked
    systems    the systems compared (closed-book, rag, ft, ft+rag, raft+rag, extractive), in one table
    harness    runs a suite: indexes, trains or reuses adapters, answers and scores every test question
    metrics    the scores: retrieval (as trec_eval), answers (as SQuAD's script), bootstrap intervals, paired tests
    report     aggregates a run, writes the report folder atomically, checks CI thresholds
    markdown   report.md;  charts: its PNG charts
    retrieval  retrieval metrics alone on BEIR-shaped data (`rag eval retrieval`)

Nothing is imported here, so that `import rag.eval` (and `rag --help`) stays light.
"""
