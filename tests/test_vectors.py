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


def _clustered(n: int, d: int = 32, centers: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_sharded_build_is_the_same_index_as_one_add():
    vectors = _clustered(3000)
    whole = VectorIndex.build(vectors, "IVF16,PQ8", nprobe=4)
    sharded = VectorIndex.build(vectors, "IVF16,PQ8", nprobe=4, shard_size=700)
    assert len(sharded) == 3000
    queries = vectors[:50]
    s1, i1 = whole.search(queries, 10)
    s2, i2 = sharded.search(queries, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)
    flat = VectorIndex.build(vectors, "Flat", shard_size=1000)  # flat indexes merge too
    assert np.array_equal(flat.search(queries, 5)[1], VectorIndex.build(vectors).search(queries, 5)[1])


def test_refine_rescores_compressed_candidates_exactly():
    vectors = _clustered(5000, d=64)
    queries = _clustered(40, d=64, seed=1)
    _, truth = VectorIndex.build(vectors).search(queries, 10)
    pq = VectorIndex.build(vectors, "IVF16,PQ4", nprobe=16)  # coarse codes: poor ranking on their own

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])

    plain = recall(pq.search(queries, 10)[1])
    scores, refined_ids = pq.search(queries, 10, exact=vectors, refine=200)
    assert recall(refined_ids) > plain + 0.2 and recall(refined_ids) > 0.9
    expected = np.sum(vectors[refined_ids[0]] * queries[0], axis=1)
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5)  # exact cosines, best first
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_device_choice():
    import faiss

    index = VectorIndex.build(_clustered(100))
    assert index.to_device("cpu") is index  # "cpu" always keeps the CPU index
    if faiss.get_num_gpus() == 0:  # without a GPU, "auto" stays on the CPU and "cuda" is a clear error
        assert index.to_device(None) is index and index.to_device(None)._flat is not None
        with pytest.raises(ConfigError, match="faiss GPU build"):
            VectorIndex.build(_clustered(100)).to_device("cuda")
    else:  # with one, "auto" moves the search to it and gives the CPU's results
        queries = _clustered(100)[:5]
        np.testing.assert_array_equal(index.search(queries, 3)[1], index.to_device(None).search(queries, 3)[1])


@pytest.mark.skipif("not __import__('faiss').get_num_gpus()", reason="needs the faiss GPU build and a GPU")
def test_gpu_search_matches_cpu():
    vectors = _clustered(20000, d=384)
    queries = vectors[:100]
    cpu = VectorIndex.build(vectors).search(queries, 10)
    gpu = VectorIndex.build(vectors).to_device("cuda").search(queries, 10)
    np.testing.assert_array_equal(cpu[1], gpu[1])
    np.testing.assert_allclose(cpu[0], gpu[0], rtol=1e-4, atol=1e-5)
