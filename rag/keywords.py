"""Keyword search with BM25 (bm25s), for English and Chinese.

`tokenize` is pure and shared by indexing and querying: lower-cased words, codes kept whole and also split
("LX-300" gives "lx-300", "lx", "300"; "14.90" stays one token), English words stemmed (PyStemmer, when
installed), and runs of Chinese characters written in Simplified characters (`to_simplified`) and segmented
with jieba (search mode, so "路由器" also yields "路由"). Stop words of both languages are dropped. A question in
Traditional characters thus finds passages in Simplified ones and the other way round, and jieba, whose
dictionary is Simplified, segments Traditional text as well as Simplified.

`TOKENIZER` names this tokenisation; an index records it, and one built with another is re-tokenised.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .text import CJK_RUN

# the version of `tokenize` that an index's BM25 vocabulary was built with (1: before `to_simplified`)
TOKENIZER = 2

_WORD = re.compile(r"[^\W_]+(?:[-./:][^\W_]+)*", re.UNICODE)

EN_STOP = frozenset(
    "a an and are as at be but by can could do does did for from had has have how i if in into is it its "
    "me my no not of on or our so than that the their them then there these they this to was we were what "
    "when where which who why will with would you your".split()
)
ZH_STOP = frozenset(
    "的 了 是 在 我 有 和 就 不 都 一 一个 上 也 很 到 说 要 去 你 会 着 没有 看 好 这 那 吗 呢 吧 啊 么 什么 怎么 "
    "怎样 如何 哪 哪些 哪个 多少 几 请问 请 我们 你们 他们 它 其 与 及 或 等 被 把 让 给 对 为 为什么 可以 能 该 之 而 "
    "吗？ ， 。 ？ ！ ； ："
    " 甚么 著".split()  # Chinese is matched in Simplified characters (`to_simplified`): 甚麼 is 甚么, 著 stays
)


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer
    except ImportError:
        return None
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@lru_cache(maxsize=1)
def _t2s_table() -> dict[int, str]:
    """Traditional character -> Simplified character, from OpenCC's table (opencc-python-reimplemented ships it):
    4,113 characters, the first reading where OpenCC lists several (乾 -> 干). One character for one, so
    offsets into a converted text are offsets into the original."""
    from importlib.metadata import PackageNotFoundError, files

    try:
        path = next(f for f in files("opencc-python-reimplemented") or [] if f.name == "TSCharacters.txt")
    except (PackageNotFoundError, StopIteration):
        raise ImportError(
            "Chinese matching needs OpenCC's character table: pip install opencc-python-reimplemented"
        ) from None
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        first = values.split(" ")[0] if values else ""
        if len(key) == 1 and len(first) == 1 and first != key:
            table[ord(key)] = first
    return table


def to_simplified(text: str) -> str:
    """`text` with Traditional Chinese characters written in Simplified ones, character for character (same
    length); everything else as it was. Words whose Simplified form depends on context keep the usual one.

    >>> to_simplified("請問退貨政策是什麼？ Reset the router")
    '请问退货政策是什么？ Reset the router'
    """
    return text.translate(_t2s_table()) if CJK_RUN.search(text) else text


def squeeze(text: str) -> str:
    """`text` as characters are compared: Simplified, lower case, without spaces or punctuation.

    >>> squeeze("請問，退貨 Policy？")
    '请问退货policy'
    """
    return re.sub(r"[\W_]+", "", to_simplified(text).lower())


def bigrams(text: str) -> set[str]:
    """Character bigrams of `text` as `squeeze` leaves it.

    >>> sorted(bigrams("退貨政策")), sorted(bigrams("No-go"))
    (['政策', '货政', '退货'], ['go', 'no', 'og'])
    """
    chars = squeeze(text)
    return {chars[i : i + 2] for i in range(len(chars) - 1)}


def tokenize(text: str) -> list[str]:
    """BM25 tokens of `text` (English and Chinese mixed freely).

    >>> tokenize("Reset the LX-300 router")
    ['reset', 'lx-300', 'lx', '300', 'router']
    >>> tokenize("price 14.90")
    ['price', '14.90']
    >>> tokenize("退貨政策") == tokenize("退货政策")
    True
    """
    tokens: list[str] = []
    pos = 0
    text = to_simplified(text)
    for match in CJK_RUN.finditer(text):
        tokens.extend(_latin_tokens(text[pos : match.start()]))
        tokens.extend(t for t in _jieba().lcut_for_search(match.group()) if t not in ZH_STOP)
        pos = match.end()
    tokens.extend(_latin_tokens(text[pos:]))
    return tokens


@lru_cache(maxsize=1)
def _function_tokens() -> frozenset[str]:
    """The stop words bm25s ships (NLTK's English list with its contractions' parts, a common Chinese list) as
    `tokenize` emits them: English stemmed, Chinese whole and in Simplified characters."""
    from bm25s.stopwords import STOPWORDS_CHINESE, STOPWORDS_EN_PLUS

    english = {t for word in STOPWORDS_EN_PLUS for t in tokenize(word)}
    return frozenset(english | {to_simplified(word) for word in STOPWORDS_CHINESE})


def is_function_word(token: str) -> bool:
    """Whether a token is a function word ("now", "won" of "won't", 已经, 一般): a knowledge base that lacks
    one says nothing about what it covers.

    >>> [t for t in tokenize("Why won't the locker open now?") if is_function_word(t)], is_function_word("已经")
    (['won', 't', 'now'], True)
    """
    return token in _function_tokens()


def in_vocabulary(token: str, vocabulary) -> bool:
    """Whether a knowledge base whose tokens are `vocabulary` has `token`. A Chinese token also counts when
    it is made of known tokens: jieba's HMM makes words up from runs of characters its dictionary lacks
    ("祖甜點" out of "馬祖甜點"), so the same text can segment one way in a question and another in a passage
    (most of all in Traditional Chinese, which the dictionary barely covers). Dictionary words stay whole.

    >>> in_vocabulary("祖甜點", {"祖", "甜點"}), in_vocabulary("北京", {"北", "京"}), in_vocabulary("cat", {"ca"})
    (True, False, False)
    """
    if token in vocabulary:
        return True
    if not CJK_RUN.search(token):
        return False
    run = ""  # characters the dictionary does not join into words: any split into known tokens will do
    for piece in [*_jieba().lcut(token, HMM=False), ""]:
        if len(piece) == 1 and piece.strip():
            run += piece
            continue
        if run and not _splits(run, vocabulary):
            return False
        run = ""
        if piece.strip() and piece not in ZH_STOP and piece not in vocabulary:
            return False
    return True


def known_in(token: str, text: str, vocabulary, longest: int = 6, heads: tuple | None = None) -> bool:
    """Whether a Chinese `token` of `text` (a question) is spelled, character by character, with known words
    of two or more characters that `text` holds where the token sits: jieba segments "退货运费" as 退/货运费
    in a question while the knowledge base has 退货 and 运费; the words are known, the split is not.
    `in_vocabulary` first; a lone known character (北 of 北京) does not count. With `heads` (`word_heads` of
    the vocabulary), a short token is also known as the spoken form of the base's words (`_spoken`: 能放 for
    放入, 柜里 for 柜).

    >>> known_in("货运费", "退货运费谁承担", {"退货", "运费"}), known_in("下班", "客服几点下班", {"客服", "下", "班"})
    (True, False)
    >>> vocabulary = {"放入", "快递柜", "柜中", "北方"}
    >>> [known_in(t, "快递柜里的包裹能放几天", vocabulary, heads=word_heads(vocabulary)) for t in ("柜里", "能放", "北")]
    [True, True, False]
    """
    if in_vocabulary(token, vocabulary):
        return True
    text, token = to_simplified(text), to_simplified(token)
    if not CJK_RUN.search(token) or token not in text:
        return False
    spans = [
        (i, j)
        for i in range(len(text))
        for j in range(i + 2, min(len(text), i + longest) + 1)
        if text[i:j] in vocabulary
    ]
    start = 0
    while (start := text.find(token, start)) >= 0:
        end = start + len(token)
        if all(any(i <= k < j for i, j in spans) for k in range(start, end)):
            return True
        start += 1
    return heads is not None and _spoken(token, heads)


# jieba's tags of grammatical characters: locatives (里, 上), prepositions (给), particles, conjunctions, pronouns
_GRAMMATICAL = frozenset("f p u c r y e o".split())


@lru_cache(maxsize=1)
def _character_tags() -> dict[str, str]:
    """jieba's dictionary part of speech of each character it lists as a word alone (放: v, 里: f, 北: ns)."""
    import jieba.posseg as pseg

    return {word: tag for word, tag in pseg.dt.word_tag_tab.items() if len(word) == 1}


def word_heads(vocabulary) -> tuple[frozenset[str], frozenset[str]]:
    """What `known_in`'s `heads` needs of a knowledge base's words: the first characters of its Chinese words of
    two or more characters (放 of 放入), and the characters it has alone or with a grammatical one (柜 of 柜中)."""
    tags = _character_tags()
    words = [w for w in vocabulary if CJK_RUN.fullmatch(w)]
    bare = {w for w in words if len(w) == 1}
    for w in words:
        if len(w) == 2:
            bare.update(a for a, b in (w, w[::-1]) if tags.get(b, "")[:1] in _GRAMMATICAL)
    return frozenset(w[0] for w in words if len(w) >= 2), frozenset(bare)


def _spoken(token: str, heads: tuple[frozenset[str], frozenset[str]]) -> bool:
    """Whether a Chinese token of one or two characters is a customer's spoken form of words the knowledge base
    writes: one character known (alone, or with a grammatical character: 柜 of 柜中) or a verb that heads one of
    the base's words (放 of 放入, 付 of 付款; jieba's dictionary says which characters are verbs), and the other,
    if any, grammatical (里 of 柜里, 给 of 寄给, 能). Speech uses the verb alone where prose compounds it; a
    word of two content characters (招聘, 北京) is known only as itself."""
    token = to_simplified(token)
    if len(token) > 2 or not CJK_RUN.fullmatch(token):
        return False
    tags = _character_tags()
    first, bare = heads
    content = 0
    for char in token:
        if char in bare or (tags.get(char) == "v" and char in first):
            content += 1
        elif not (char in ZH_STOP or is_function_word(char) or tags.get(char, "")[:1] in _GRAMMATICAL):
            return False
    return content == 1  # two content characters are a word of their own (招聘, 行李), known or not


def _splits(run: str, vocabulary) -> bool:
    """Whether `run` is a sequence of tokens in `vocabulary` (stop words allowed)."""
    ok = [True] + [False] * len(run)
    for end in range(1, len(run) + 1):
        ok[end] = any(ok[start] and (run[start:end] in vocabulary or run[start:end] in ZH_STOP) for start in range(end))
    return ok[-1]


def _latin_tokens(text: str) -> list[str]:
    out: list[str] = []
    plain: list[int] = []  # positions of alphabetic words, stemmed together below (one C call)
    for word in _WORD.findall(text.lower()):
        if word in EN_STOP:
            continue
        parts = re.split(r"[-./:]", word)
        if len(parts) > 1:
            out.append(word)
            if not all(p.isdigit() for p in parts):  # keep numbers like 14.90 whole only
                out.extend(p for p in parts if p and p not in EN_STOP)
            continue
        if word.isalpha():
            plain.append(len(out))
        out.append(word)
    stem = _stemmer()
    if stem is not None and plain:
        for pos, stemmed in zip(plain, stem.stemWords([out[i] for i in plain])):
            out[pos] = stemmed
    return out


def joined_words(query: str, vocabulary) -> list[str]:
    """Tokens of two neighbouring words of `query` written as one ("set up" -> setup, "e-mail" -> email,
    "log in" -> login, "Home Hub" -> homehub) that `vocabulary` (a knowledge base's) holds: a question spells
    apart what the documents spell together, and BM25 matches whole tokens only. Stop words join too ("in"
    of "log in"); only tokens the knowledge base holds are added, so a chance join ("r7 router") adds nothing.

    >>> joined_words("How do I set up e-mail?", {"setup", "email", "set"})
    ['setup', 'email']
    """
    words = re.findall(r"[a-z0-9]+", to_simplified(query).lower())
    out: list[str] = []
    for a, b in zip(words, words[1:]):
        if a.isdigit() and b.isdigit():  # "1 2" is two numbers, "14.90" a price: never one token
            continue
        token = (_latin_tokens(a + b) or [""])[0]
        if token and token in vocabulary and token not in out:
            out.append(token)
    return out


class KeywordIndex:
    """BM25 over chunk texts; row i is the i-th text it was built from."""

    def __init__(self, retriever, size: int):
        self.retriever = retriever
        self.size = size

    def __len__(self) -> int:
        return self.size

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        import bm25s

        tokens = [tokenize(t) for t in texts]
        if not any(tokens):  # nothing to match (no texts, or only punctuation and stop words)
            return cls(None, len(texts))
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever, len(texts))

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` (scores, row ids) with a positive score, best first."""
        if self.retriever is None:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        vocab = self.retriever.vocab_dict
        tokens = [t for t in tokenize(query) if t in vocab]
        tokens += [t for t in joined_words(query, vocab) if t not in tokens]
        if not tokens:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores = self.retriever.get_scores(tokens)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return scores[top].astype(np.float32), top.astype(np.int64)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "size").write_text(str(self.size))
        if self.retriever is not None:
            self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> KeywordIndex:
        import bm25s

        size = int((folder / "size").read_text())
        if not (folder / "params.index.json").exists():
            return cls(None, size)
        return cls(bm25s.BM25.load(str(folder), mmap=mmap), size)
