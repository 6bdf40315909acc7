import pytest

from rag.config import EmbedConfig, RetrieveConfig
from rag.embeddings import HashEmbedder
from rag.errors import ConfigError, EmbedderMismatchError, IndexFormatError
from rag.ingest import build_index
from rag.retrieve import Retriever


@pytest.fixture
def index(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    return in_tmp / "idx"


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_right_document(index, mode):
    r = Retriever(index, embedder=HashEmbedder(64))
    hits = r.search("How long do I hold the RESET button?", k=2, mode=mode)
    assert hits[0].chunk.source == "kb/router.md"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert "dense" in hits[0].scores or mode == "bm25"


def test_chinese_query_finds_chinese_passage(index):
    r = Retriever(index, embedder=HashEmbedder(64))
    assert r.search("多少天内可以退货", k=1, mode="bm25")[0].chunk.source == "kb/退货.md"
    assert r.search("多少天内可以退货", k=1)[0].chunk.source == "kb/退货.md"


def test_hybrid_carries_cosine_for_every_hit(index):
    r = Retriever(index, embedder=HashEmbedder(64))
    for hit in r.search("express shipping price", k=3, mode="hybrid"):
        assert -1.0 <= hit.scores["dense"] <= 1.0


def test_k_defaults_and_validation(index):
    r = Retriever(index, RetrieveConfig(k=1), embedder=HashEmbedder(64))
    assert len(r.search("shipping")) == 1
    with pytest.raises(ConfigError, match="retrieval `k` must be a positive integer, got k=0"):
        r.search("shipping", k=0)
    with pytest.raises(ConfigError, match="empty"):
        r.search("   ")
    with pytest.raises(ConfigError, match="mode"):
        r.search("x", mode="magic")  # "retrieval `mode` must be one of dense, bm25, hybrid"
    with pytest.raises(ConfigError, match="not valid text: character 4 is '\\\\udcff'"):
        r.search("how \udcff long")  # undecodable bytes of a command line, or half an emoji from a client


def test_embedder_mismatch_names_both(index):
    with pytest.raises(EmbedderMismatchError, match="hash:64.*hash:32"):
        Retriever(index, embedder=HashEmbedder(32))
    with pytest.raises(EmbedderMismatchError, match="hash:64.*intfloat/e5-small"):
        Retriever(index, embed_config=EmbedConfig(model="intfloat/e5-small"))


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexFormatError, match="rag index"):
        Retriever(tmp_path / "nothing")


@pytest.mark.parametrize("name", ["chunks.jsonl", "vectors.npy", "dense.faiss", "bm25/vocab.index.json"])
def test_a_damaged_index_file_is_named_with_how_to_rebuild(index, name):
    from rag import store

    path = store.generation_path(index, store.require_manifest(index)) / name
    path.write_bytes(path.read_bytes()[:40])  # an interrupted copy, a disk error
    with pytest.raises(IndexFormatError, match=f"damaged: {name.split('/')[0]} cannot be read .*rag index --rebuild"):
        Retriever(index, embedder=HashEmbedder(64)).search("How long do I hold the RESET button?")


def test_retriever_uses_the_index_embedder_by_default(index):
    r = Retriever(index)  # manifest says hash:64; no model download involved
    assert r.embedder.id == "hash:64"
    assert r.search("reset", k=1)[0].chunk.source == "kb/router.md"


def test_hybrid_without_dense_weight_is_bm25_order(index):
    r = Retriever(index, RetrieveConfig(dense_weight=0.0), embedder=HashEmbedder(64))
    q = "express shipping euros"
    hybrid = [h.chunk.id for h in r.search(q, k=3, mode="hybrid")]
    bm25 = [h.chunk.id for h in r.search(q, k=3, mode="bm25")]
    assert hybrid[: len(bm25)] == bm25


def test_widen_reads_a_hit_with_its_section_around_it(in_tmp):
    from rag.config import Config

    steps = " ".join(f"Step {n}: press button number {n} on the panel and wait." for n in range(1, 13))
    (in_tmp / "kb").mkdir()
    (in_tmp / "kb" / "manual.md").write_text(
        f"# Manual\n\n## Reset\n\n{steps}\n\n## Warranty\n\nThe warranty lasts 24 months from delivery.\n",
        encoding="utf-8",
    )
    build_index(["kb"], "idx", Config.from_dict({"chunk": {"size": 40, "overlap": 12}}), embedder=HashEmbedder(64))
    r = Retriever("idx", embedder=HashEmbedder(64))
    reset = [c for c in r.chunks if c.context.endswith("Reset")]
    assert len(reset) >= 4
    middle = reset[len(reset) // 2]
    hits = [h for h in r.search("press button wait panel", k=len(r.chunks), mode="bm25") if h.chunk.id == middle.id]
    warranty = r.search("warranty months", k=1, mode="bm25")[0]
    assert warranty.chunk.context.endswith("Warranty")

    alone = r.widen(hits + [warranty], 0)
    assert [h.chunk.text for h in alone] == [middle.text, warranty.chunk.text]
    widened = r.widen(hits + [warranty], 1)
    text = widened[0].chunk.text
    before, after = reset[len(reset) // 2 - 1], reset[len(reset) // 2 + 1]
    # the neighbours in order, each sentence once (the chunker's overlap is not repeated)
    assert text.index(before.text[:30]) < text.index(middle.text[:30]) < text.index(after.text[-30:])
    numbers = [int(n) for n in __import__("re").findall(r"Step (\d+):", text)]
    assert numbers == sorted(set(numbers)) and numbers == list(range(numbers[0], numbers[-1] + 1))
    assert widened[0].chunk.id == middle.id and widened[0].score == hits[0].score
    # a section's edge is not crossed: the warranty is read alone, and nothing of it joins the steps
    assert widened[1].chunk.text == warranty.chunk.text and "warranty" not in text
    assert [h.rank for h in widened] == [1, 2]

    # two hits of one section whose spans touch become one passage, at the better hit's place
    pair = [h for h in r.search("press button", k=len(r.chunks), mode="bm25") if h.chunk.id in (before.id, after.id)]
    merged = r.widen(pair, 1)
    assert len(merged) == 1 and merged[0].chunk.id == pair[0].chunk.id
    assert middle.text[5:25] in merged[0].chunk.text


def test_join_chunks_drops_the_repeated_overlap_only():
    from rag.retrieve import join_chunks

    assert join_chunks("Open the app. Tap Reset.", "Tap Reset. Confirm.") == "Open the app. Tap Reset. Confirm."
    assert join_chunks("Price: 5", "5 days later") == "Price: 5\n5 days later"  # a one-character coincidence
    assert join_chunks("退货请在7天内，", "联系客服。") == "退货请在7天内，联系客服。"
