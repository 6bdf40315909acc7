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


def test_embedder_mismatch_names_both(index):
    with pytest.raises(EmbedderMismatchError, match="hash:64.*hash:32"):
        Retriever(index, embedder=HashEmbedder(32))
    with pytest.raises(EmbedderMismatchError, match="hash:64.*intfloat/e5-small"):
        Retriever(index, embed_config=EmbedConfig(model="intfloat/e5-small"))


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexFormatError, match="rag index"):
        Retriever(tmp_path / "nothing")


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
