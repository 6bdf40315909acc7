"""Evaluation suites: a knowledge base, labelled questions and the settings of a comparison, from one file.

A suite is a small YAML or JSON file; paths in it are relative to the file:

    name: sample
    corpus: ../../corpora              # a folder of files, or a corpus JSONL ({"id", "title", "text"} per line)
    questions: ../questions.jsonl      # {"id", "question", "answers", "sources", "answerable", "split"}
    systems: [closed-book, rag, ft, ft+rag, raft+rag]
    answer_mode: generative            # how RAG systems answer: generative | auto | extractive
    train: {steps: 60, minutes: 10}    # budget of each adapter the harness trains
    adapters: {ft: null, raft: null}  # or folders of adapters trained elsewhere (over HTTP: the server's names)
    config: {answer: {k: 3}}           # overrides of rag's Config, section by section
    generators: {rag: {backend: llamacpp, model: m.gguf}}   # per-system [generate] settings (backend, model,
                                       # base_url, adapter, ...), on top of `config`

Public QA data is named instead of `corpus` + `questions`: `squad: FILE` (SQuAD 1.1/2.0 JSON), `cmrc: FILE`
(CMRC 2018 JSON), `wikiqa: FILE` (a WikiQA TSV) or `beir: FOLDER`, with `select: {documents, questions, test_share, seed, withhold}`. Each
paragraph becomes a knowledge-base document and each question a suite question (its paragraph the gold
source); `rag.eval.datasets` reads them, and names the documents. This module only reads and checks (and
draws the seeded train/test split of public data); `rag.eval.harness` runs suites.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from difflib import get_close_matches
from pathlib import Path

from ..config import Config, build_section
from ..errors import ConfigError
from ..records import parse_jsonl_numbered
from ..text import language
from .datasets import KINDS, read_corpus_jsonl, read_public
from .systems import DEFAULT, parse_systems

ANSWER_MODES = ("generative", "auto", "extractive")
FT_DATA = ("both", "documents", "questions")
# the keys of a question record ({"id", "question", "answers", "sources", "answerable", "split"}, `lang` optional)
# and "meta": a team's own fields (a category, a ticket number), not checked
QUESTION_KEYS = ("id", "question", "answers", "sources", "answerable", "split", "lang", "meta")
_KEYS = {
    "name",
    "description",
    "corpus",
    "questions",
    "squad",
    "cmrc",
    "wikiqa",
    "beir",
    "select",
    "systems",
    "answer_mode",
    "train",
    "adapters",
    "config",
    "generators",
}


@dataclass(frozen=True)
class TrainBudget:
    """What the harness may spend on each adapter it trains (the first limit reached ends training)."""

    steps: int = 60
    minutes: float = 15.0
    method: str = "lora"
    lr: float | None = None
    batch_size: int = 4
    max_length: int = 768
    ft_data: str = "both"  # what the plain fine-tune learns from: documents, training questions, or both
    raft_no_gold: float = 0.2  # share of RAFT examples without their gold passage (taught to refuse)
    raft_from_documents: bool = True  # add cloze questions made from the documents' fact sentences to RAFT data
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.minutes <= 0:
            raise ConfigError(f"train `steps` and `minutes` must be positive, got {self.steps}, {self.minutes}")
        if self.ft_data not in FT_DATA:
            raise ConfigError(f"train `ft_data` must be one of {', '.join(FT_DATA)}, got {self.ft_data!r}")
        if not 0 <= self.raft_no_gold < 1:
            raise ConfigError(f"train `raft_no_gold` must be in [0, 1), got {self.raft_no_gold}")


@dataclass(frozen=True)
class Selection:
    """Which part of a public dataset a suite uses (deterministic for a given seed)."""

    documents: int | None = None  # first N articles (SQuAD), contexts (CMRC) or all documents (BEIR)
    questions: int | None = None  # at most N questions, sampled with `seed`
    test_share: float = 0.5  # the rest is the training split
    seed: int = 0
    # share of the documents (paragraphs) left out of the knowledge base, their questions kept as unanswerable
    # ones (an article's other paragraphs stay: related passages without the answer, as RAFT builds its
    # negatives); a refusal measure for data without unanswerable questions of its own (CMRC, XQuAD, DRCD)
    withhold: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.test_share <= 1:
            raise ConfigError(f"select `test_share` must be in (0, 1], got {self.test_share}")
        if not isinstance(self.withhold, (int, float)) or not 0 <= self.withhold < 1:
            raise ConfigError(f"select `withhold` must be a share in [0, 1), got {self.withhold!r}")
        for name in ("documents", "questions"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"select `{name}` must be a positive whole number, got {value!r}")


@dataclass
class Suite:
    name: str
    path: Path | None
    questions: list[dict]
    corpus: Path | None = None  # a folder of files (sources are paths relative to it)
    documents: list[dict] | None = None  # or documents {"id", "title", "text"} (sources are their ids)
    systems: list[str] = field(default_factory=lambda: list(DEFAULT))
    answer_mode: str = "generative"
    train: TrainBudget = field(default_factory=TrainBudget)
    adapters: dict[str, str | None] = field(default_factory=dict)
    config: Config = field(default_factory=Config)
    origin: dict = field(default_factory=dict)  # where the data came from, for the report
    generators: dict[str, dict] = field(default_factory=dict)  # system -> its own [generate] settings

    def generate_config(self, system: str, adapter: str | None = None):
        """The `GenerateConfig` a system answers with: the suite's, then the system's own settings; `adapter`
        (the one its kind was trained or given) unless the system names its own."""
        own = self.generators.get(system, {})
        generate = self.config.override(generate=own).generate
        if "adapter" not in own:  # a system without an adapter kind answers with none (not a default one)
            from dataclasses import replace

            generate = replace(generate, adapter=adapter or "none")
        return generate

    def split(self, name: str) -> list[dict]:
        """The questions of one split, "train" or "test", in file order."""
        return [q for q in self.questions if q["split"] == name]


# --------------------------------------------------------------------------------------------------- load


def load_suite(path: str | Path, data: str | Path | None = None) -> Suite:
    """Read and check a suite file. `data` replaces the path of its public dataset (squad/cmrc/wikiqa/beir).
    Every mistake is a `ConfigError` naming the file (and line or key)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist; a suite is a YAML or JSON file (see `rag eval --help`)")
    raw = _parse(path)
    where = str(path)
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known keys are {sorted(_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name or ""):
        raise ConfigError(f"{where}: `name` must be a short name of letters, digits, '.', '_' or '-', got {name!r}")
    public = [k for k in KINDS if k in raw]
    if len(public) > 1 or (public and ("corpus" in raw or "questions" in raw)):
        raise ConfigError(f"{where}: give either `corpus` and `questions`, or one of squad/cmrc/wikiqa/beir, not both")
    base = path.parent
    suite = Suite(name=name, path=path, questions=[])
    if public:
        kind = public[0]
        source = Path(data) if data is not None else base / str(raw[kind])
        select = build_section(Selection, _mapping(raw.get("select"), where, "select"), "select", where)
        docs, questions = load_public(kind, source, select)
        suite.documents, suite.questions = docs, questions
        suite.origin = {"format": kind, "path": str(source), "select": asdict(select)}
    else:
        if data is not None:
            raise ConfigError("--data replaces a suite's squad/cmrc/wikiqa/beir path; this suite names its own corpus")
        for key in ("corpus", "questions"):
            if not isinstance(raw.get(key), str):
                raise ConfigError(f"{where}: `{key}` is required: a path relative to the suite file")
        corpus = (base / raw["corpus"]).resolve()
        if corpus.is_dir():
            suite.corpus = corpus
        elif corpus.is_file():
            suite.documents = read_corpus_jsonl(corpus)
        else:
            raise ConfigError(f"{where}: corpus {corpus} does not exist (a folder of files or a corpus JSONL)")
        if not (base / raw["questions"]).is_file():
            raise ConfigError(
                f"{where}: questions file {(base / raw['questions']).resolve()} does not exist (`questions` is "
                "relative to the suite file)"
            )
        suite.questions = read_questions(base / raw["questions"])
        suite.origin = {"format": "suite", "corpus": str(corpus), "questions": str((base / raw["questions"]).resolve())}
    _apply_settings(suite, raw, base, where)
    check_sources(suite)
    return suite


def _parse(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    else:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a suite is a mapping of keys (name, corpus, questions, ...), got {type(raw).__name__}"
        )
    return raw


def _mapping(values, where: str, key: str) -> dict:
    """A typed section's values (absent: {}), which must be a mapping."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: `{key}` must be a mapping, got {values!r}")
    return values


def _apply_settings(suite: Suite, raw: dict, base: Path, where: str) -> None:
    if "systems" in raw:
        suite.systems = parse_systems(raw["systems"])
    mode = raw.get("answer_mode", suite.answer_mode)
    if mode not in ANSWER_MODES:
        raise ConfigError(f"{where}: `answer_mode` must be one of {', '.join(ANSWER_MODES)}, got {mode!r}")
    suite.answer_mode = mode
    suite.train = build_section(TrainBudget, _mapping(raw.get("train"), where, "train"), "train", where)
    adapters = raw.get("adapters") or {}
    if not isinstance(adapters, dict) or set(adapters) - {"ft", "raft", "reader"}:
        raise ConfigError(f"{where}: `adapters` maps ft, raft and/or reader to adapter folders, got {adapters!r}")
    suite.adapters = {k: str((base / v).resolve()) for k, v in adapters.items() if v}
    suite.config = Config.from_dict(raw.get("config") or {}, f"{where}: config")
    generators = _mapping(raw.get("generators"), where, "generators")
    for system, values in generators.items():
        parse_systems([system])
        values = _mapping(values, where, f"generators.{system}")
        try:
            suite.config.override(generate=values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: generators.{system}: {exc}") from None
        suite.generators[system] = dict(values)


# ----------------------------------------------------------------------------------------------- questions


def read_questions(path: str | Path) -> list[dict]:
    """Suite questions from JSONL, checked line by line; `lang` is filled in when missing."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"questions file {path} does not exist")
    questions, seen = [], set()
    for number, record in parse_jsonl_numbered(path.read_text(encoding="utf-8"), str(path)):
        where = f"{path} line {number}"
        q = check_question(record, where)
        if q["id"] in seen:
            raise ConfigError(f"{where}: duplicate id {q['id']!r}; question ids must be unique")
        seen.add(q["id"])
        questions.append(q)
    if not questions:
        raise ConfigError(f"{path} holds no questions")
    return questions


def check_question(record: dict, where: str) -> dict:
    """One question record, validated and normalised; a `ConfigError` naming `where` and the key otherwise.
    An answerable question needs gold answers: without them it would count in false refusals but not in
    accuracy, and a misspelt key ("answer") would pass unseen, so unknown keys are errors as in the suite."""
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected an object with id, question, answers, sources, answerable, split")
    unknown = sorted(set(record) - set(QUESTION_KEYS))
    if unknown:
        hints = [f"{c[0]!r} for {k!r}" for k in unknown if (c := get_close_matches(k, QUESTION_KEYS, 1, 0.7))]
        named = f" (question {str(record['id'])!r})" if "id" in record else ""
        raise ConfigError(
            f"{where}{named}: unknown key(s) {unknown}; "
            + (f"did you mean {', '.join(hints)}? " if hints else "")
            + f'a question record\'s keys are {list(QUESTION_KEYS)} (your own fields go under "meta")'
        )
    missing = [k for k in ("id", "question", "answerable", "split") if k not in record]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    if not isinstance(record["question"], str) or not record["question"].strip():
        raise ConfigError(f"{where}: `question` must be a non-empty string")
    if not isinstance(record["answerable"], bool):
        raise ConfigError(f"{where}: `answerable` must be true or false, got {record['answerable']!r}")
    if record["split"] not in ("train", "test"):
        raise ConfigError(f'{where}: `split` must be "train" or "test", got {record["split"]!r}')
    for key in ("answers", "sources"):
        value = record.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: `{key}` must be a list of strings, got {value!r}")
    answers = [a for a in record.get("answers", []) if a.strip()]
    if record["answerable"] and not answers:
        raise ConfigError(
            f"{where}: question {str(record['id'])!r} is answerable but has no gold answers; give them as "
            '"answers": ["..."] (text a correct answer contains), or mark it "answerable": false'
        )
    return {
        "id": str(record["id"]),
        "question": record["question"].strip(),
        "answers": answers,
        "sources": list(record.get("sources", [])),
        "answerable": record["answerable"],
        "split": record["split"],
        "lang": record.get("lang") or language(record["question"]),
    }


def check_sources(suite: Suite) -> None:
    """Every gold source must name a document of the knowledge base, and a test question must exist."""
    if suite.documents is not None:
        known = {d["id"] for d in suite.documents}
    else:
        known = {p.relative_to(suite.corpus).as_posix() for p in suite.corpus.rglob("*") if p.is_file()}
    for q in suite.questions:
        unknown = [s for s in q["sources"] if s not in known]
        if unknown:
            raise ConfigError(
                f"question {q['id']!r}: source(s) {unknown} are not in the knowledge base; sources are "
                + ("document ids" if suite.documents is not None else f"file paths relative to {suite.corpus}")
            )
    if not suite.split("test"):
        raise ConfigError(f"suite {suite.name!r} has no test questions (split: test)")


# ------------------------------------------------------------------------------------------ public data


def load_public(kind: str, source: Path, select: Selection) -> tuple[list[dict], list[dict]]:
    """Documents and questions from SQuAD, CMRC 2018 or BEIR data (read by `rag.eval.datasets`), the questions
    sampled and split into train and test as `select` says."""
    if not source.exists():
        raise ConfigError(
            f"{kind} data {source} does not exist; give its location with --data PATH "
            "(SQuAD/CMRC: the JSON file; BEIR: the dataset folder)"
        )
    docs, questions = read_public(kind, source, select.documents)
    if select.withhold:
        docs, questions = _withhold(docs, questions, select)
    questions = _sample(questions, select)
    if not questions:
        raise ConfigError(f"{source}: the selection holds no questions")
    return docs, questions


def _withhold(docs: list[dict], questions: list[dict], select: Selection) -> tuple[list[dict], list[dict]]:
    """`docs` without a seeded `select.withhold` share of them, and `questions` without those sources: a question
    all of whose sources are gone becomes unanswerable (no answers, no sources); one with a source left stays."""
    rng = random.Random(f"withhold-{select.seed}")
    gone = {d["id"] for d in rng.sample(docs, round(len(docs) * select.withhold))}
    kept = [d for d in docs if d["id"] not in gone]
    changed = []
    for q in questions:
        sources = list(q.get("sources") or ())
        left = [s for s in sources if s not in gone]
        if sources and not left:
            q = {**q, "answers": [], "answerable": False, "sources": []}
        elif len(left) < len(sources):
            q = {**q, "sources": left}
        changed.append(q)
    return kept, changed


def _sample(questions: list[dict], select: Selection) -> list[dict]:
    rng = random.Random(select.seed)
    picked = list(questions)
    if select.questions is not None and len(picked) > select.questions:
        picked = sorted(rng.sample(range(len(picked)), select.questions))
        picked = [questions[i] for i in picked]
    order = list(range(len(picked)))
    rng.shuffle(order)
    n_test = max(1, round(len(picked) * select.test_share))
    test = set(order[:n_test])
    return [
        {**q, "split": "test" if i in test else "train", "lang": language(q["question"])} for i, q in enumerate(picked)
    ]
