"""Reading retrieved passages: which sentences answer the question, which passage comes first, and whether
the passages hold an answer at all. Learned from data, not hand-written.

Every sentence of the retrieved passages is a candidate. Its features are the evidence scorer's logit
(`rag.scorer`, a cross-encoder; where the question is in a language the scorer cannot read, a character-level
cross-encoder, `rag.charscorer`, gives that feature, and the ask model of `rag.asks` says whether the sentence
holds the kind of thing asked), lexical
overlap with the question (IDF-weighted words, character bigrams, what the sentence adds
beyond the question), whether it holds the kind of answer the question asks for (a number, a price, a time),
and where it sits (passage rank and retrieval score, first sentence, list item, length). A logistic model
per reading group ("read": the scorer reads the question; "unread": it does not, e.g. Chinese with MiniLM)
turns them into a probability. Passages are reranked by their best sentence. Whether to answer at all is a
second logistic model over question-level features (the best sentence's probability and logit, the
passages' relevance, question words and names the knowledge base never uses), compared with a threshold
chosen on held-out questions for a stated false-refusal rate. The weights live in a reader file fitted
for its scorer (`rag/weights/reader.json` for the bundled one, `reader-lexical.json` for reading without a
scorer; `rag calibrate --questions Q.jsonl` refits them on your own questions, see `rag.calibrate`).

What this module does not do: retrieve (`rag.retrieve`), run the cross-encoder (`rag.scorer`), or word the
answer (`rag.answer`).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .config import Config
from .errors import ConfigError
from .keywords import bigrams, in_vocabulary, is_function_word, known_in, to_simplified, tokenize, word_heads
from .readerdata import scorer_text
from .text import FIELD, ITEM, RULE, has_cjk, is_instruction_like, sentences_by_line, split_sentences
from .types import Hit

WEIGHTS = Path(__file__).resolve().parent / "weights"
BUNDLED_READERS = {True: WEIGHTS / "reader.json", False: WEIGHTS / "reader-lexical.json"}  # with a scorer or not

# words that frame a question ("how long", "how much") rather than name what it is about; a knowledge base
# that never uses them can still hold the answer (stemmed, as the keyword tokenizer leaves them)
QUESTION_FRAME = frozenset(
    "long much mani far often soon quick quickli big larg old kind type way thing get need want know tell pleas "
    "happen possibl mean exact usual typic 多久 多长 多少 多大 多远 怎么样 为什么 是否 可以 需要 知道 告诉".split()
)  # Chinese in Simplified characters: tokens are (rag.keywords.to_simplified)
# Chinese question words are made, not listed: 哪一年, 哪里, 哪位, 什么样, 第几, 几座, 何年 (tokens are Simplified)
_ZH_ASKING = re.compile(r"[哪啥]|[什甚]么|^第?[几何]")


_ZH_FRAME = tuple(t for t in QUESTION_FRAME if has_cjk(t))


def question_keywords(question: str) -> list[str]:
    """The question's tokens that say what it is about (not how it asks). The tokenizer also emits the parts
    of a Chinese word (多长时间: 时间, 长时间, 多长时间), so a Chinese token holding a framing word frames too,
    and so do the parts of a framing token.

    >>> question_keywords("How long is the warranty?"), question_keywords("宁巴的总部在哪里？")
    (['warranti'], ['宁巴', '总部'])
    >>> question_keywords("转网需要多长时间？")
    ['转网']
    """
    tokens = tokenize(question)
    framing = {
        t
        for t in tokens
        if t in QUESTION_FRAME or _ZH_ASKING.search(t) or (has_cjk(t) and any(f in t for f in _ZH_FRAME))
    }
    parts = {t for t in tokens if has_cjk(t) and any(t != f and t in f for f in framing if has_cjk(f))}
    return [t for t in tokens if t not in framing and t not in parts]


# the kind of answer a question asks for, and what an answer of that kind looks like: one feature among
# others, whose weight is learned (a sentence without a number can still answer "how long")
ANSWER_TYPES = [
    (
        "price",
        # "how much is/does/for ...?" asks a price, "how much power/data/RAM ...?" a quantity (number, below)
        re.compile(
            r"how much(?=\s+(?:is|are|was|were|does|do|did|will|would|should|can|could|for|to|extra)\b|\s*[?？]|$)"
            r"|price|cost|fee|多少钱|价格|费用|收费",
            re.I,
        ),
        re.compile(r"[€$¥£%]|\b(EUR|USD|euros?|dollars?|percent)\b|\d\s*元|free|免费", re.I),
    ),
    (  # before "time": 多长时间 asks how long, not when ("9:00 至 21:00" does not answer it, "1 个工作日" does)
        "span",
        re.compile(r"how long|多久|多长时间|多长|多少(?:天|小时|分钟|年|个月)|几(?:天|个小时|分钟|年|个月)", re.I),
        re.compile(
            r"\d\s*(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|working days?|business days?|km|"
            r"kilometres?|kilometers?|miles?|m|metres?|meters?|feet|ft|cm)\b|"
            r"[\d一二三四五六七八九十两百千万半]\s*(?:个)?(?:工作日|天|日|小时|分钟|秒|周|星期|月|年|公里|千米|米)",
            re.I,
        ),
    ),
    (
        "time",
        re.compile(r"\bwhen\b|what time|what year|hours|几点|时间|哪一年|何时", re.I),
        re.compile(
            r"\d{1,2}[:.]\d{2}|\d+\s*(am|pm|days?|hours?|minutes?|weeks?|months?|years?)|monday|tuesday|friday|"
            r"every day|\d{3,4}|century|点|周|年|月|\d+\s*(天|小时|分钟)",
            re.I,
        ),
    ),
    (
        "number",
        re.compile(
            r"how (?:many|much|far|quickly|big|large|old)|what (?:is the )?(?:maximum|minimum|largest|range)"
            r"|多少|几|多大|多远|最大",
            re.I,
        ),
        re.compile(
            r"(?<![A-Za-z\d-])\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|hundred|thousand|"
            r"million)\b|[一二三四五六七八九十两百千万亿]",
            re.I,
        ),
    ),
]

SENTENCE_FEATURES = (
    "ce",  # the cross-encoder's logit: the scorer's in the read group, the character scorer's in the unread one
    "ask",  # the ask model's score: does the sentence hold the kind of thing asked (rag.asks; 0 in the read group)
    "lex",  # IDF-weighted share of the question's keywords in the sentence with its heading path
    "lex_own",  # ... in the sentence alone
    "bigram",  # share of the question's character bigrams in the sentence (Chinese needs no segmentation)
    "lex_rest",  # ... of the question's keywords that its heading path lacks (what is asked, not about what)
    "bigram_rest",  # ... of its character bigrams that the heading path lacks
    "span",  # the longest run of characters the question and the sentence share, over the question's length
    "novel",  # share of the sentence's keywords that are not in the question: an answer adds something
    "type",  # +1 the kind of answer asked for is there, -1 it is asked for and missing, 0 none asked
    "rank",  # 1 / the passage's retrieval rank
    "retrieval",  # the passage's retrieval score (hybrid: 0..1)
    "first",  # first sentence of its passage
    "item",  # a list item or table row
    "length",  # log length in characters (scaled)
)
QUESTION_FEATURES = (
    "best",  # logit of the best sentence's probability
    "best_ce",  # the best cross-encoder logit (the character scorer's in the unread group)
    "dense",  # best passage cosine, weighted by how much of the question the embedder reads
    "lex",  # best keyword overlap of a passage
    "unknown",  # IDF-weighted share of the question's keywords that occur nowhere in the knowledge base
    # (a Chinese keyword the question spells with known words is known: keywords.known_in)
    "missing",  # IDF-weighted share of the question's names (capitalised words, Chinese names) the base never has
    "passage_lex",  # IDF-weighted share of the question's keywords in the best sentence's passage (with heading)
    "absent",  # IDF-weighted share of the question's names that the best sentence's passage lacks (the Paris hours in Antwerp's)
    "best_type",  # the best sentence's "type": is the kind of answer asked for (a price, a duration) there?
)


@dataclass
class Candidate:
    """One sentence of a retrieved passage, with its features and probability of answering."""

    passage: int  # 1-based number of the hit it belongs to
    index: int  # position among its passage's sentences
    text: str
    features: dict[str, float]
    probability: float = 0.0
    row: bool = False  # a table row: a record beside its sibling rows, not a step of a run of sentences
    members: tuple[int, ...] = ()  # a list's label: the positions of its items' sentences, quoted with it


@dataclass
class Reading:
    """What reading the retrieved passages found. Passage numbers are 1-based positions in the hits read."""

    candidates: list[Candidate]  # every candidate sentence, in passage order
    order: list[int]  # passage numbers, best first (by their best sentence, then retrieval rank)
    probability: float  # that the passages hold an answer
    threshold: float  # the reader's: below it, refuse
    group: str  # "read" (the scorer reads the question) or "unread"
    features: dict[str, float] = field(default_factory=dict)
    kept: list[int] = field(default_factory=list)  # after `keep`: the original numbers of the passages kept
    missing: list[str] = field(default_factory=list)  # the question's names the knowledge base never mentions

    def best(self) -> Candidate | None:
        return max(self.candidates, key=lambda c: c.probability, default=None)

    def run(self, best: Candidate, span: float = 0.5) -> list[Candidate]:
        """What an answer quotes from `best`'s passage, in the passage's order: `best` with the neighbouring
        sentences whose probability is at least `span` times its own (a procedure, a condition; three
        sentences at most, eight items of a list), and a list introduction's items, each with its further
        sentences ("2. Choose Return. You receive a label."). A table row stands alone: the rows beside it
        are other records ("Plan: Lite ..." does not continue "Plan: Plus ..."), and prose does not run into
        a table."""
        floor = span * best.probability
        if best.row:
            return [best]
        by_index = {c.index: c for c in self.candidates if c.passage == best.passage and not c.row}
        chosen = {best.index: best}
        most = 8 if ITEM.match(best.text) else 3  # a list's items (steps) run longer than prose
        for step in (-1, 1):  # grow a contiguous run around the best sentence
            i = best.index + step
            while i in by_index and len(chosen) < most and by_index[i].probability >= floor:
                chosen[i] = by_index[i]
                i += step
        if best.members:  # a list introduction: its items (with their further sentences) are the answer
            for i in best.members:
                if i in by_index and len(chosen) < 12:
                    chosen[i] = by_index[i]  # an item the run already took is quoted once
        return [chosen[i] for i in sorted(chosen)]

    def keep(self, k: int) -> Reading:
        """This reading for the best `k` passages only, renumbered 1..k in their new order (`kept` says which
        original passages they are); the probability of an answer stays the one over all passages read."""
        kept = self.order[:k]
        number = {old: new for new, old in enumerate(kept, start=1)}
        candidates = [replace(c, passage=number[c.passage]) for c in self.candidates if c.passage in number]
        candidates.sort(key=lambda c: (c.passage, c.index))
        return replace(self, candidates=candidates, order=list(range(1, len(kept) + 1)), kept=kept)

    def keep_hits(self, hits: Sequence[Hit], k: int) -> tuple[Reading, list[Hit]]:
        """`keep(k)`, with `hits` (numbered as this reading numbers them) in the kept reading's order."""
        kept = self.keep(k)
        return kept, [hits[n - 1] for n in kept.kept]

    def near_best(self, floor: float) -> int:
        """How many passages of `order` (best first), from the first on, have a best sentence at least `floor`
        times as probable as the best passage's (at least one): what a generator is shown, the distractors the
        reader rates far below the answer left out (`keep` that many)."""
        best = [max((c.probability for c in self.candidates if c.passage == n), default=0.0) for n in self.order]
        top = max(best, default=0.0)
        return max(1, len(list(itertools.takewhile(lambda p: p >= floor * top, best)))) if floor > 0 else len(best)

    def focus(self, hits: Sequence[Hit], sentences: int) -> list[Hit]:
        """`hits` (numbered as this reading numbers them) cut to each passage's `sentences` most probable
        candidate sentences, in their order, "…" where sentences were left out between them: what a small
        generator reads best. A list's label brings its items. A passage without candidates stays whole; 0
        keeps every passage whole."""
        if sentences <= 0:
            return list(hits)
        out = []
        for n, hit in enumerate(hits, start=1):
            own = sorted((c for c in self.candidates if c.passage == n), key=lambda c: -c.probability)[:sentences]
            if not own:
                out.append(hit)
                continue
            text = split_sentences(hit.chunk.text)
            shown = {c.index: c.text for c in own}
            for c in own:  # a list's label brings its items
                shown.update({j: text[j] for j in c.members if j not in shown and j < len(text)})
            if 0 not in shown and any(record_key(text, i) for i in shown):
                shown[0] = text[0]  # a record's field comes with the record's first field, what it is about
            parts, last = [], None
            for i in sorted(shown):
                if last is not None and i != last + 1:
                    parts.append("…")
                parts.append(shown[i])
                last = i
            out.append(replace(hit, chunk=replace(hit.chunk, text=" ".join(parts))))
        return out

    def describe(self) -> str:
        best = self.best()
        shown = f"best sentence {best.probability:.3f} in passage {best.passage}" if best else "no candidate sentence"
        never = f"; never mentioned: {', '.join(self.missing)}" if self.missing else ""
        return f"{self.group} reading; {shown}{never}"


@dataclass
class ReaderModel:
    """The learned weights: a logistic model per reading group for sentences, one for refusal, and the
    refusal threshold. Loaded from and saved to `reader.json`."""

    sentence: dict[str, dict]  # group -> {"weights": {feature: w}, "bias": b}
    refusal: dict[str, dict]  # group -> {"weights": {feature: w}, "bias": b, "threshold": t}
    info: dict = field(default_factory=dict)  # what it was fitted on, and how it did there

    @classmethod
    def load(cls, path: str | Path) -> ReaderModel:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"reader file {path} does not exist; give a file `rag calibrate --out` wrote, or 'bundled'"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            model = cls(sentence=data["sentence"], refusal=data["refusal"], info=data.get("info", {}))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is not a reader model ({exc}); refit it with `rag calibrate --questions Q.jsonl`"
            ) from exc
        for group in ("read", "unread"):
            if group not in model.sentence or group not in model.refusal:
                raise ConfigError(
                    f"{path} lacks the {group!r} group; refit it with `rag calibrate --questions Q.jsonl`"
                )
        return model

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "refusal": self.refusal, "info": self.info}


def logistic(weights: dict, features: dict[str, float]) -> float:
    z = weights.get("bias", 0.0) + sum(w * features.get(name, 0.0) for name, w in weights["weights"].items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


# ------------------------------------------------------------------------------------------------- features


def expected_type(question: str) -> tuple[str, re.Pattern] | None:
    """The kind of answer `question` asks for, with the pattern an answer of that kind matches.

    >>> expected_type("How much does express shipping cost?")[0], expected_type("Who makes it?")
    ('price', None)
    >>> expected_type("How much is Care+?")[0], expected_type("How much power does the router use?")[0]
    ('price', 'number')
    >>> kind, pattern = expected_type("转网需要多长时间？")  # a span of time, which a time of day is not
    >>> kind, bool(pattern.search("1 个工作日内完成")), bool(pattern.search("每天 9:00 至 21:00"))
    ('span', True, False)
    """
    question = to_simplified(question)  # the Chinese patterns are written in Simplified characters
    for name, asks, pattern in ANSWER_TYPES:
        if asks.search(question):
            return name, pattern
    return None


def keyword_overlap(
    question_tokens: Sequence[str], text_tokens: set[str], weights: dict[str, float], text: str = ""
) -> float:
    """IDF-weighted share of the question's keywords that occur in the text (0..1). A Chinese keyword also
    counts when it is in `text` as written (in either script): jieba can segment the same words differently in a
    question and a passage, and Chinese needs no word boundaries to match.

    >>> keyword_overlap(["reset", "router"], {"reset", "button"}, {"reset": 3.0, "router": 1.0})
    0.75
    >>> keyword_overlap(["祖甜點"], {"馬祖", "甜點"}, {"祖甜點": 1.0}, text="馬祖甜點")
    1.0
    """
    total = sum(weights.values())
    if total == 0:
        return 0.0
    text = to_simplified(text)
    return sum(w for t, w in weights.items() if _occurs(t, text_tokens, text)) / total


def _occurs(token: str, text_tokens: set[str], simplified_text: str) -> bool:
    """Whether a question token is in a text: among its tokens or, for Chinese, as written (in Simplified
    characters: `simplified_text` is `to_simplified` of the text)."""
    return token in text_tokens or (has_cjk(token) and to_simplified(token) in simplified_text)


def _name_in(name: str, text_tokens: set[str], simplified_text: str) -> bool:
    """Whether a question's name is in a text: all its tokens, or as written; a Chinese name of three or more
    characters also when it is there without its first or last character (jieba's unknown-word model glues a
    particle to a transliterated name: 和威尔 for 威尔, 雨林中 for 雨林, 了旭烈 for 旭烈).

    >>> _name_in("和威尔", set(), "罗伯特·莱恩和本杰明·威尔合作"), _name_in("美国宇航局", set(), "NASA 的载人太空船中心")
    (True, False)
    >>> _name_in("北京大学", set(), "北京的大学很多"), _name_in("华为Mate60", set(), "The team ate 60 apples")
    (False, False)
    """
    if set(tokenize(name)) <= text_tokens or _occurs(name, text_tokens, simplified_text):
        return True
    chars = to_simplified(name)
    return (
        len(chars) >= 3
        and all(has_cjk(ch) for ch in chars)
        and (chars[1:] in simplified_text or chars[:-1] in simplified_text)
    )


def corpus_idf(keyword_index) -> dict[str, float]:
    """IDF of every token in a bm25s keyword index (rare words matter more in keyword overlap)."""
    retriever = getattr(keyword_index, "retriever", None)
    if retriever is None:
        return {}
    n_docs = max(1, len(keyword_index))
    indptr = np.asarray(retriever.scores["indptr"])
    df = np.diff(indptr)
    return {
        token: math.log(1 + (n_docs - df[i] + 0.5) / (df[i] + 0.5))
        for token, i in retriever.vocab_dict.items()
        if i < len(df)
    }


_PROPER = re.compile(
    r"\b(?=[A-Z0-9-]*[A-Z])(?=[A-Z0-9-]*[0-9])[A-Z0-9]+(?:-[A-Z0-9]+)*\b"  # codes: C3, R-40, NSA-2026-03
    r"|(?<![.?!:]\s)(?<!^)\b[A-Z][A-Za-z]+\b|\b[A-Z]{2,}\b"
)
_CALENDAR = re.compile(
    r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?|January|February|March|April|May|June|July|August|September"
    r"|October|November|December"
)
_ZH_ENTITY_TAGS = {"ns", "nr", "nt", "nrt", "nz"}  # jieba part-of-speech tags of places, people, organisations


def entities(question: str) -> list[str]:
    """Names in a question: capitalised words not at a sentence start, acronyms, codes of letters and digits,
    and Chinese place, person and organisation names (jieba's part-of-speech tags).

    >>> entities("What are the opening hours of the Paris service centre?")
    ['Paris']
    >>> entities("What does error NX-301 mean on the C3 in the 1990s?"), entities("Is the Berlin shop open on Sundays?")
    (['NX-301', 'C3'], ['Berlin'])
    """
    # English capitalises weekdays and months: "on Sundays" names no thing a knowledge base could lack
    found = [m.group() for m in _PROPER.finditer(question.strip()) if not _CALENDAR.fullmatch(m.group())]
    if has_cjk(question):
        import jieba.posseg as pseg

        # tagged in Simplified characters (jieba's dictionary), named as the question writes them
        at = 0
        for w in pseg.cut(to_simplified(question)):
            if w.flag in _ZH_ENTITY_TAGS and len(w.word) >= 2:
                found.append(question[at : at + len(w.word)])
            at += len(w.word)
    return list(dict.fromkeys(found))


def never_mentioned(name: str, vocabulary) -> bool:
    """Whether a knowledge base whose tokens are `vocabulary` has none of the tokens of `name`."""
    tokens = tokenize(name)
    return bool(tokens) and not any(in_vocabulary(t, vocabulary) for t in tokens)


def missing_entities(question: str, vocabulary) -> list[str]:
    """The question's names that the knowledge base never mentions."""
    return [name for name in entities(question) if never_mentioned(name, vocabulary)]


def _longest_common(a: str, b: str) -> int:
    """Length of the longest substring `a` and `b` share.

    >>> _longest_common("白尾雀鲷生活在水深多少的海域", "栖息在水深0.5至3公尺的海域")
    3
    """
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size


_LABEL = re.compile(r"^(Q|A|Question|Answer|问|答|問)[:：]\s*")
WHOLE_RECORD = 400  # characters: a longer record is read field by field only (a whole one would not be an answer)


def _sentences(hit: Hit) -> list[tuple[int, str, str, str, bool, tuple[int, ...]]]:
    """The candidate sentences of a passage as (index, sentence, what it is about, what is read of it, whether
    it is a table row, stated as its cells under their headers, the positions of a label's list). What
    it is about, else "": the question before it (an FAQ record's Q: line, a heading phrased as a question), or
    for a list item the label that introduces its list ("Recovery procedure:"), for a field of a record (a CSV
    row, a JSON record) the record's first field. A label with a list of two or more items is a candidate read
    as the whole list (a procedure answers "how do I"); the items, each with the further sentences of its
    line, are candidates too. A short record is likewise a candidate read whole, in place of its first field,
    and stated as a table row is ("city: Rotterdam; address: Westblaak 45"). Never a question, a heading, a
    title or a bare label without a list; none at all from a passage that addresses an assistant (prompt
    injection)."""
    by_line = sentences_by_line(hit.chunk.text)
    sentences = [s for line in by_line for s in line]
    if any(is_instruction_like(s) for s in sentences):
        return []
    titles = _titles(hit.chunk.text, document_start=hit.chunk.ordinal == 0)
    rows = _table_rows(hit.chunk.text)
    lines = {line[0].strip() for line in by_line if len(line) == 1}  # sentences that are a whole line
    line_of = [n for n, line in enumerate(by_line) for _ in line]  # sentence position -> its line
    starts = {i: n for i, n in enumerate(line_of) if i == 0 or line_of[i - 1] != n}  # a line's first sentence
    fields = [s.strip() for s in sentences if FIELD.match(s)] if _is_record(sentences) else []
    whole = "; ".join(fields) if 2 <= len(fields) and sum(map(len, fields)) <= WHOLE_RECORD else ""
    out = []
    asked = label = ""
    for i, sentence in enumerate(sentences):
        s = sentence.strip()
        if i in starts and not ITEM.match(s) and not re.fullmatch(r"[^:：]{1,40}[:：]", s):
            label = ""  # a list's label heads its items, with their further sentences, and nothing after
        if s.endswith(("?", "？")):
            if s in lines or _LABEL.match(s):  # a question on a line of its own heads what follows
                asked, label = _LABEL.sub("", s.lstrip("# ")), ""
            continue
        if re.fullmatch(r"[^:：]{1,40}[:：]", s):
            label = s.rstrip(":：").strip()
            ends_line = i + 1 == len(sentences) or line_of[i + 1] != line_of[i]
            block = _list_after(by_line, line_of[i]) if ends_line else []
            if len(block) >= 2:
                out.append((i, s, asked, " ".join([s, *(sentences[j].strip() for j in block)]), False, tuple(block)))
            continue
        if len(s) < 2 or s.startswith("#") or s in titles or rows.get(s) == "":
            continue
        if i == 0 and whole:
            # a short record is also read whole, as a table row is ("Where is your Rotterdam service point?"
            # is answered by the record, not by one field of it); its fields are candidates too
            out.append((i, whole, asked, whole, True, ()))
            continue
        text = rows.get(s) or s
        # a record's field is read with the record's first field ("hours: 9-18" of "channel: Phone")
        about = " > ".join(part for part in (asked, label, record_key(sentences, i)) if part)
        out.append((i, text, about, text, s in rows, ()))
    return out


def _is_record(sentences: list[str]) -> bool:
    """A passage of "field: value" lines (a table row, a JSON record) by its first three sentences; not an
    FAQ (its first line a question) or a list."""
    head = sentences[:3]
    first = head[0].rstrip() if head else ""
    if not FIELD.match(first) or ITEM.match(first) or first.endswith(("?", "？")):
        return False
    return len(head) >= 2 and sum(bool(FIELD.match(s)) for s in head) >= 2


def record_key(sentences: list[str], i: int) -> str:
    """The record's first field when sentence `i` of a record passage is one of its other fields (what that
    field is about: "channel: Phone" for "hours: Mon-Fri 08:00-20:00"), else "".

    >>> record_key(["channel: Phone", "hours: 9-18", "contact: +31 20"], 1), record_key(["Q: Why?", "A: So."], 1)
    ('channel: Phone', '')
    """
    if i <= 0 or i >= len(sentences) or not FIELD.match(sentences[i]) or not _is_record(sentences):
        return ""
    return sentences[0].strip()


def _is_item(sentence: str) -> bool:
    """A list item's first sentence ("1. Unplug it.", "- Wait."); a table row is not an item."""
    return bool(ITEM.match(sentence)) and not sentence.lstrip().startswith("|")


def _list_after(by_line: list[list[str]], line: int) -> list[int]:
    """Sentence positions of the list right after line `line` of `by_line` (`sentences_by_line`): its item
    lines, each with the sentences that follow its first on the same line, up to 8 items (table rows are not
    a list: they are read by row).

    >>> _list_after([["Steps:"], ["1. Unplug it.", "Wait."], ["- Dry it."], ["Done."], ["2. Plug it in."]], 0)
    [1, 2, 3]
    """
    out, position = [], sum(map(len, by_line[: line + 1]))
    for sentences in by_line[line + 1 : line + 9]:
        if not _is_item(sentences[0]):
            break
        out.extend(range(position, position + len(sentences)))
        position += len(sentences)
    return out


def _unit(score: float) -> float:
    """A hybrid retrieval score (0..1, the best hit 1.0 up to float rounding, which BLAS threading changes),
    clipped; 0 for scores of other ranges (dense cosine below 0, raw BM25 above 1).

    >>> _unit(1.0000001), _unit(0.4), _unit(7.5)
    (1.0, 0.4, 0.0)
    """
    score = float(score)
    return min(max(score, 0.0), 1.0) if -1e-4 <= score <= 1.0 + 1e-4 else 0.0


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _table_rows(text: str) -> dict[str, str]:
    r"""Table rows of `text` as the sentences they state, each cell under its column's header, so that a row
    reads (and is quoted) as "Option: Express; Delivery time: 1 business day; Price: €14.90"; a header row
    maps to "" (a heading, never an answer).

    >>> _table_rows("| Option | Price |\n|---|---|\n| Express | €14.90 |")
    {'| Option | Price |': '', '| Express | €14.90 |': 'Option: Express; Price: €14.90'}
    """
    out: dict[str, str] = {}
    header: list[str] | None = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line.startswith("|"):
            header = None
            continue
        if RULE.match(line):  # the rule under a Markdown header
            continue
        if header is None:
            header = _cells(line)
            out[line] = ""
            continue
        cells = _cells(line)
        if len(cells) == len(header) and all(header):
            out[line] = "; ".join(f"{h}: {c}" for h, c in zip(header, cells) if c)
    return out


def _titles(text: str, document_start: bool = False) -> set[str]:
    r"""Lines that stand alone as a paragraph, short and without a sentence's end or a label: the title or
    section heading of a plain-text document ("Smart Plug P1 user guide", "宁巴智能插座 P1 使用说明"). At the
    `document_start`, the first such line is its title even with a colon ("HomeHub R7: recovering from a
    failed firmware update").

    >>> sorted(_titles("Smart Plug P1 user guide\n\nMaximum load 10 A.\n\n| a | b |\n\nModel: NP-P1"))
    ['Smart Plug P1 user guide']
    >>> sorted(_titles("Router R7: recovery\n\nModel: NP-P1", document_start=True))
    ['Router R7: recovery']
    """
    out = set()
    for n, paragraph in enumerate(re.split(r"\n\s*\n", text)):
        line = paragraph.strip().lstrip("\ufeff")
        if (
            line
            and "\n" not in line
            and len(line) <= 80
            and not re.search(r"[.!?。！？；;:：,，]$", line)
            and not (re.search(r"[:：|]", line) and not (document_start and n == 0))
            and not ITEM.match(line)
        ):
            out.add(line)
    return out


class Reader:
    """Reads the retrieved hits for a question (see the module docstring). `scorer` may be None (no
    cross-encoder: every question is read with the "unread" group's lexical model); `coverage(question)` is
    the share of a question the scorer's vocabulary reads (the embedder's, which the scorer shares)."""

    def __init__(
        self,
        model: ReaderModel,
        scorer=None,
        coverage=None,
        idf: dict[str, float] | None = None,
        asks=None,
        chars=None,
    ):
        self.model = model
        self.scorer = scorer
        self.asks = asks  # rag.asks.AskModel for the unread group, or None
        self.chars = chars  # rag.charscorer.CharScorer for the unread group, or None
        self.coverage = coverage or (lambda text: 0.0 if has_cjk(text) else 1.0)
        self.idf = idf or {}
        # the knowledge base's commonest and rarest word's weights, derived once: every question weighs its
        # keywords against them (a function word the base lacks weighs the lowest, a word it never uses the top)
        self._lowest = min(self.idf.values(), default=None)
        self._top = max(self.idf.values(), default=1.0)
        self._heads: tuple | None = None  # `word_heads` of the base, derived for its first Chinese question
        # the last question's model scores, by (model, text): an answer reads the retrieved chunks, then the
        # same sentences again in context (`RAG.read_in_context`), and each is scored once
        self._recent: tuple[str, dict] = ("", {})

    def group(self, question: str) -> str:
        """ "read" when the question is mostly in a language the scorer's vocabulary reads (without a scorer:
        anything but Chinese), else "unread"."""
        return "read" if self.coverage(question) >= 0.5 else "unread"

    def read(self, question: str, hits: Sequence[Hit]) -> Reading:
        group = self.group(question)
        candidates = self.candidates(question, hits, group)
        for c in candidates:
            c.probability = logistic(self.model.sentence[group], c.features)
        best_of = {
            n: max((c.probability for c in candidates if c.passage == n), default=0.0) for n in range(1, len(hits) + 1)
        }
        order = sorted(best_of, key=lambda n: (-best_of[n], n))
        missing: list[str] = []
        features = self.question_features(question, hits, candidates, group, missing)
        refusal = self.model.refusal[group]
        probability = logistic(refusal, features)
        threshold = refusal.get("threshold", 0.5)
        return Reading(candidates, order, probability, threshold, group, features, order, missing)

    def candidates(self, question: str, hits: Sequence[Hit], group: str) -> list[Candidate]:
        q_tokens = question_keywords(question)
        weights = self._weights(q_tokens, 1.0)
        q_bigrams = bigrams(question)
        q_set = set(q_tokens)
        wanted = expected_type(question)
        # passage, index, sentence, scorer text, what is read, table row, a label's list
        rows: list[tuple[int, int, str, str, str, bool, tuple[int, ...]]] = []
        for n, hit in enumerate(hits, start=1):
            for i, sentence, about, reads, row, members in _sentences(hit):
                if members and wanted is not None:
                    # a question asking for a value (how long, how much, when) is answered by the item that
                    # holds it, not by a whole procedure: read whole, a list matches any question its steps
                    # share words with ("Recovery procedure:" for the SmartPlug's button)
                    continue
                context = " > ".join(part for part in (hit.chunk.context, about) if part)
                rows.append((n, i, sentence, scorer_text(context, _LABEL.sub("", reads)), reads, row, members))
        if not rows:
            return []
        ce = np.zeros(len(rows), dtype=np.float32)
        if group == "read" and self.scorer is not None:
            ce = self._scores("ce", self.scorer.logits, question, [r[3] for r in rows])
        elif group == "unread" and self.chars is not None:
            ce = self._scores("chars", self.chars.scores, question, [r[4] for r in rows])
        ask = np.zeros(len(rows), dtype=np.float32)
        if group == "unread" and self.asks is not None:
            ask = self._scores("ask", self.asks.scores, question, [r[4] for r in rows])
        out = []
        heading: dict[int, tuple[set, set]] = {}  # passage -> its heading path's tokens and bigrams
        squeezed = re.sub(r"\s+", "", to_simplified(question).lower())
        for (n, i, sentence, with_context, reads, row, members), logit_, ask_ in zip(rows, ce, ask):
            hit = hits[n - 1]
            own = set(tokenize(reads))
            if n not in heading:
                heading[n] = (set(tokenize(hit.chunk.context)), bigrams(hit.chunk.context))
            rest_weights = {t: w for t, w in weights.items() if t not in heading[n][0]}
            rest_bigrams = q_bigrams - heading[n][1]
            features = {
                "ce": float(logit_),
                "ask": float(ask_),
                "lex": keyword_overlap(q_tokens, set(tokenize(with_context)), weights, with_context),
                "lex_own": keyword_overlap(q_tokens, own, weights, reads),
                "bigram": len(q_bigrams & bigrams(reads)) / (len(q_bigrams) or 1),
                "lex_rest": keyword_overlap(q_tokens, own, rest_weights, reads),
                "bigram_rest": len(rest_bigrams & bigrams(reads)) / (len(rest_bigrams) or 1),
                "span": _longest_common(squeezed, re.sub(r"\s+", "", to_simplified(reads).lower()))
                / (len(squeezed) or 1),
                "novel": len(own - q_set) / (len(own) or 1),
                "type": 0.0 if wanted is None else (1.0 if wanted[1].search(to_simplified(reads)) else -1.0),
                "rank": 1.0 / n,
                "retrieval": _unit(hit.score),
                "first": 1.0 if i == 0 else 0.0,
                "item": 1.0 if ITEM.match(sentence) or FIELD.match(sentence) else 0.0,
                "length": math.log1p(len(reads)) / 5,
            }
            out.append(Candidate(n, i, sentence, features, row=row, members=members))
        return out

    def _word_heads(self) -> tuple:
        """`keywords.word_heads` of the knowledge base, derived on its first Chinese question (it reads jieba's
        part-of-speech tags, which an English question never needs)."""
        if self._heads is None:
            self._heads = word_heads(self.idf)
        return self._heads

    def _weights(self, tokens: list[str], unknown: float) -> dict[str, float]:
        """The question's keywords weighted by their rarity in the knowledge base (IDF), `unknown` for one it
        never uses, except a function word ("now", 已经): the reader was fitted on large bases, which have
        them all at their lowest weights, and a small one that lacks one should not weigh it as a rare word."""
        low = unknown if self._lowest is None else self._lowest
        return {t: self.idf.get(t, low if is_function_word(t) else unknown) for t in set(tokens)}

    def _scores(self, model: str, score, question: str, texts: list[str]) -> np.ndarray:
        """`score(question, texts)`, each distinct text scored once per question (see `_recent`)."""
        recent = self._recent
        if recent[0] != question:
            recent = self._recent = (question, {})  # a racing thread keeps its own question's map
        memo = recent[1]
        todo = list(dict.fromkeys(t for t in texts if (model, t) not in memo))
        if todo:
            memo.update({(model, t): float(v) for t, v in zip(todo, score(question, todo))})
        return np.array([memo[(model, t)] for t in texts], dtype=np.float32)

    def question_features(
        self, question: str, hits, candidates: list[Candidate], group: str, missing_out: list | None = None
    ) -> dict[str, float]:
        """The question-level features of the refusal model; `missing_out` receives the names never mentioned."""
        q_tokens = question_keywords(question)
        top_idf = self._top
        weights = self._weights(q_tokens, top_idf)
        total = sum(weights.values()) or 1.0
        names = entities(question)
        missing = missing_entities(question, self.idf) if names and self.idf else []
        if missing_out is not None:
            missing_out.extend(missing)
        reads = self.coverage(question)
        top = max(candidates, key=lambda c: c.probability, default=None)  # the sentence an answer would quote
        passage: set[str] = set()
        text = document = ""
        if top is not None:
            chunk = hits[top.passage - 1].chunk
            text = to_simplified(f"{chunk.context}\n{chunk.text}")
            passage = set(tokenize(text))
            # a name is looked for in the whole document as far as it was retrieved: a Wikipedia article or a
            # long page is chunked, and its subject is named in its first chunk only
            same = [h.chunk for h in hits if h.chunk.source == chunk.source]
            document = to_simplified("\n".join(f"{c.context}\n{c.text}" for c in same))
        document_tokens = set(tokenize(document)) if names else set()
        absent = [n for n in names if not _name_in(n, document_tokens, document)]

        def share(part: list[str]) -> float:
            """Of the names, weighted by rarity: a brand on every page counts little, also when it is the only
            name asked about ("Where is the Nimbus warehouse?" over a shipping page that never says Nimbus):
            the names weigh at least as much as one name the knowledge base has once."""

            def weight(name: str) -> float:
                tokens = tokenize(name)
                return sum(self.idf.get(t, top_idf) for t in tokens) / len(tokens) if tokens else top_idf

            return sum(map(weight, part)) / max(sum(map(weight, names)), top_idf) if names else 0.0

        # a function word a small knowledge base lacks ("now", 已经) says nothing about what it covers; a large
        # one (what the reader is fitted on) has them all
        heads = self._word_heads() if has_cjk(question) else None  # a verb said alone: known from the words it heads
        unknown = (
            sum(
                w
                for t, w in weights.items()
                if not known_in(t, question, self.idf, heads=heads) and not is_function_word(t)
            )
            if self.idf
            else 0.0
        )
        return {
            "best": logit(top.probability if top is not None else 0.0),
            "best_ce": max((c.features["ce"] for c in candidates), default=0.0),
            "dense": reads * max((max(0.0, h.scores.get("dense", 0.0)) for h in hits), default=0.0),
            "lex": max((c.features["lex"] for c in candidates), default=0.0),
            "unknown": unknown / total,
            "missing": share(missing),
            "passage_lex": keyword_overlap(q_tokens, passage, weights, text),
            "absent": share(absent),
            "best_type": top.features["type"] if top is not None else 0.0,
        }


def load_reader(config: Config, idf: dict[str, float], model=None):
    """The reader a config names: its scorer (`answer.scorer`; none: lexical reading only) on the embedder's
    backend, its ask model (`answer.asks`) and character scorer (`answer.char_scorer`), and its weights (`answer.reader`; `model` replaces them, e.g. while fitting new ones)."""
    from .asks import load_asks
    from .charscorer import load_char_scorer
    from .scorer import Scorer, scorer_folder

    answer = config.answer
    folder = scorer_folder(answer.scorer)
    scorer = Scorer(folder, backend=config.embed.backend, device=config.embed.device) if folder is not None else None
    if model is None:
        model = ReaderModel.load(BUNDLED_READERS[scorer is not None] if answer.reader == "bundled" else answer.reader)
    coverage = scorer.coverage if scorer else None
    return Reader(model, scorer, coverage, idf, load_asks(answer.asks), load_char_scorer(answer.char_scorer))
