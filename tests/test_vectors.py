import numpy as np
import pytest

from rag.errors import ConfigError
from rag.vectors import VectorIndex


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_search_returns_self_first(tmp_path):
    vecs = unit(50, 16)
    index = VectorIndex.build(vecs)
    scores, ids = index.search(vecs[:3], 2)
    assert ids[:, 0].tolist() == [0, 1, 2]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", mmap=True)
    assert again.search(vecs[:1], 1)[1][0, 0] == 0


def test_boundary_errors_are_precise():
    index = VectorIndex.build(unit(5, 8))
    with pytest.raises(ValueError, match="dim 4 != index dim 8"):
        index.search(unit(1, 4), 1)
    with pytest.raises(ValueError, match="2-dimensional"):
        index.search(unit(1, 8)[0], 1)
    with pytest.raises(TypeError, match="float32"):
        index.search(np.ones((1, 8), dtype=np.int64), 1)
    with pytest.raises(TypeError, match="numpy"):
        index.search([[0.0] * 8], 1)


def test_trained_factory_and_too_few_training_vectors():
    vecs = unit(2000, 32)
    index = VectorIndex.build(vecs, "IVF16,Flat", nprobe=16)
    assert index.search(vecs[:5], 1)[1][:, 0].tolist() == [0, 1, 2, 3, 4]  # nprobe = nlist: exact
    with pytest.raises(ConfigError, match="cannot be trained"):
        VectorIndex.build(unit(10, 32), "IVF64,Flat")
    with pytest.raises(ConfigError, match="not a valid FAISS"):
        VectorIndex.build(vecs, "NotAnIndex42")


def test_empty_index_searches_to_nothing():
    index = VectorIndex.build(np.zeros((0, 8), np.float32), dim=8)
    scores, ids = index.search(unit(2, 8), 3)
    assert ids.shape == (2, 0)


def test_blas_path_matches_faiss_for_flat():
    import faiss

    vecs = unit(500, 32, seed=3)
    queries = unit(5, 32, seed=4)
    index = VectorIndex.build(vecs)
    scores, ids = index.search(queries, 10)  # few queries: BLAS path
    ref_scores, ref_ids = faiss.IndexFlatIP(32), None
    ref_scores.add(vecs)
    ref_s, ref_ids = ref_scores.search(queries, 10)
    assert (ids == ref_ids).all() and np.allclose(scores, ref_s, atol=1e-5)
    many = unit(40, 32, seed=5)  # many queries: FAISS's own path, same answer
    assert (index.search(many, 3)[1] == VectorIndex.build(vecs).index.search(many, 3)[1]).all()
