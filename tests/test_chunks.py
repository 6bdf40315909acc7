import functools

import pytest

from rag.chunks import Chunker
from rag.config import ChunkConfig
from rag.embeddings import HashEmbedder
from rag.errors import ConfigError
from rag.retrieve import join_chunks
from rag.types import Document

TOK = HashEmbedder(16)


def chunker(size=40, overlap=8, max_tokens=50):
    return Chunker(ChunkConfig(size=size, overlap=overlap), TOK.count_tokens, max_tokens)


def test_no_chunk_exceeds_the_window_even_without_separators():
    text = "word " * 500 + "x" * 3000 + " 中" * 700  # no sentence ends at all
    chunks = chunker().split([Document(text=text, source="s", headings=("A very long heading", "Sub"))])
    assert len(chunks) > 10
    for c in chunks:
        assert TOK.count_tokens(c.indexed_text) <= 40


def test_chinese_sentences_split_at_chinese_punctuation():
    sentence = "请按住复位键十二秒直到指示灯闪烁"  # 16 CJK tokens
    text = "。".join([sentence] * 8) + "。"
    chunks = chunker(size=40, overlap=0).split([Document(text=text, source="zh")])
    assert len(chunks) >= 3
    for c in chunks:
        assert c.text.endswith("。"), c.text  # cut after a full stop, never inside a sentence


def test_numbers_are_not_sentence_boundaries():
    text = " ".join(["Express shipping costs 14.90 euros and the router lives at 192.168.77.1 always."] * 12)
    for c in chunker(size=30, overlap=0).split([Document(text=text, source="n")]):
        assert "14." not in c.text.replace("14.90", "")
        assert "192.168.77." not in c.text.replace("192.168.77.1", "")


def test_ids_ordinals_context_and_page():
    docs = [
        Document(text="alpha beta", source="f.pdf", page=1),
        Document(text="gamma", source="f.pdf", page=2, headings=("H1", "H2")),
    ]
    chunks = chunker().split(docs)
    assert [(c.id, c.ordinal, c.page, c.context) for c in chunks] == [
        ("f.pdf#0", 0, 1, ""),
        ("f.pdf#1", 1, 2, "H1 > H2"),
    ]
    assert chunks[1].indexed_text == "H1 > H2\ngamma"


def test_overlap_repeats_text_between_neighbours():
    text = " ".join(f"w{i}" for i in range(200))
    chunks = chunker(size=40, overlap=10).split([Document(text=text, source="o")])
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert set(first) & set(second)


def test_size_is_capped_by_the_embedder_window():
    c = Chunker(ChunkConfig(size=512, overlap=32), TOK.count_tokens, 100)
    assert c.size == 100


@pytest.mark.parametrize(
    "kwargs, field",
    [({"size": 100, "overlap": 100}, "overlap"), ({"size": 4}, "size"), ({"overlap": -1}, "overlap")],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ChunkConfig(**kwargs)


@pytest.mark.parametrize("overlap", [0, 8])
def test_a_table_cut_across_chunks_keeps_its_header_in_each(overlap):
    # a row read without its header says nothing ("| Station 31 | £31.50 | £62.10 |"); joining the chunks
    # again (a widened passage) gives the table once, with one header
    header = "| To | Single | Return |\n|---|---|---|"
    rows = [f"| Station {i} | £{i}.50 | £{2 * i}.10 |" for i in range(40)]
    text = "Fares from Ashworth.\n\n" + header + "\n" + "\n".join(rows) + "\n\nFares change in March."
    chunks = chunker(size=40, overlap=overlap).split([Document(text=text, source="fares.md", headings=("Fares",))])
    tabled = [c for c in chunks if "| Station" in c.text]
    assert len(tabled) > 3
    for c in tabled:
        assert c.text.startswith(header + "\n") or c is tabled[0], c.text
        assert TOK.count_tokens(c.indexed_text) <= 40
    joined = functools.reduce(join_chunks, [c.text for c in chunks])
    assert joined.count("| To |") == 1
    assert "\n".join(rows) in joined and joined.endswith("Fares change in March.")
