import json
import os
import time

import numpy as np
import pytest

from rag import documents, store
from rag.config import ChunkConfig, Config
from rag.embeddings import HashEmbedder
from rag.errors import ConfigError, IndexLockedError, NothingIndexedError
from rag.ingest import build_index


class CountingEmbedder(HashEmbedder):
    """A HashEmbedder that remembers how many texts it embedded."""

    def __init__(self):
        super().__init__(64)
        self.embedded = 0

    def embed_documents(self, texts, progress=False):
        self.embedded += len(texts)
        return super().embed_documents(texts, progress)


def test_build_writes_a_complete_manifest(in_tmp, kb):
    emb = CountingEmbedder()
    summary = build_index([kb], "idx", embedder=emb)
    assert len(summary.indexed) == 3 and summary.chunks == emb.embedded > 0
    m = store.read_manifest(in_tmp / "idx")
    assert m.format_version == store.FORMAT_VERSION
    assert m.embedder["id"] == "hash:64" and m.embedder["dim"] == 64
    assert m.chunker["size"] == 200 and m.chunker["overlap"] == 32
    assert set(m.files) == {"kb/router.md", "kb/shipping.txt", "kb/退货.md"}
    assert all(len(e["sha256"]) == 64 for e in m.files.values())
    gen = in_tmp / "idx" / m.generation
    chunks = store.read_chunks(gen / store.CHUNKS)
    assert len(chunks) == m.chunks == np.load(gen / store.VECTORS).shape[0]
    assert any(c.context == "Router > Reset" for c in chunks)


def test_reindex_nothing_changed_embeds_nothing_and_writes_nothing(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    before = store.read_manifest(in_tmp / "idx").generation
    os.utime(kb / "router.md")  # touched, same content: hashed, not re-embedded
    emb = CountingEmbedder()
    summary = build_index([kb], "idx", embedder=emb)
    assert emb.embedded == 0 and summary.indexed == [] and len(summary.unchanged) == 3
    assert store.read_manifest(in_tmp / "idx").generation == before


def test_only_changed_and_new_files_are_embedded_and_vanished_ones_removed(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    (kb / "shipping.txt").write_text("Express shipping now costs 19.90 euros.\n", encoding="utf-8")
    (kb / "new.md").write_text("# New\n\nBrand new document.\n", encoding="utf-8")
    (kb / "router.md").unlink()
    emb = CountingEmbedder()
    summary = build_index([kb], "idx", embedder=emb)
    assert sorted(summary.indexed) == ["kb/new.md", "kb/shipping.txt"]
    assert summary.removed == ["kb/router.md"] and summary.unchanged == ["kb/退货.md"]
    assert emb.embedded == 2
    m = store.read_manifest(in_tmp / "idx")
    chunks = store.read_chunks(in_tmp / "idx" / m.generation / store.CHUNKS)
    assert {c.source for c in chunks} == {"kb/new.md", "kb/shipping.txt", "kb/退货.md"}
    assert any("19.90" in c.text for c in chunks)
    # kept vectors still belong to their chunks: a fresh full build gives the same matrix
    full = build_index([kb], "full", embedder=HashEmbedder(64), rebuild=True)
    assert full.chunks == m.chunks
    a = np.load(in_tmp / "idx" / m.generation / store.VECTORS)
    mf = store.read_manifest(in_tmp / "full")
    b = np.load(in_tmp / "full" / mf.generation / store.VECTORS)
    assert np.allclose(a, b)


def test_bad_files_are_skipped_with_reasons(in_tmp, kb):
    (kb / "empty.txt").write_bytes(b"")
    (kb / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (kb / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (kb / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<<")
    summary = build_index([kb], "idx", embedder=HashEmbedder(64))
    reasons = {s.source.split("/")[-1]: s.reason for s in summary.skipped}
    assert set(reasons) == {"empty.txt", "binary.txt", "photo.jpg", "broken.pdf"}
    assert "empty" in reasons["empty.txt"] and "binary" in reasons["binary.txt"]
    assert "unsupported" in reasons["photo.jpg"]
    assert len(summary.indexed) == 3


def test_nothing_indexable_fails_and_keeps_the_old_index(in_tmp, kb, tmp_path):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    before = (in_tmp / "idx" / store.MANIFEST).read_text()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "e.txt").write_bytes(b"")
    with pytest.raises(NothingIndexedError, match="e.txt: empty"):
        build_index([bad], "idx2", embedder=HashEmbedder(64))
    assert not (in_tmp / "idx2" / store.MANIFEST).exists()
    for f in kb.iterdir():
        f.unlink()
    with pytest.raises(NothingIndexedError):
        build_index([kb], "idx", embedder=HashEmbedder(64))
    assert (in_tmp / "idx" / store.MANIFEST).read_text() == before


def test_changing_chunk_settings_rechunks_everything(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    emb = CountingEmbedder()
    cfg = Config(chunk=ChunkConfig(size=20, overlap=4))
    summary = build_index([kb], "idx", cfg, embedder=emb, explicit={"chunk"})
    assert len(summary.indexed) == 3 and emb.embedded == summary.chunks
    assert store.read_manifest(in_tmp / "idx").chunker["requested"] == {
        "size": 20,
        "overlap": 4,
        "pipeline": documents.PIPELINE_VERSION,
    }
    # the index remembers them: a plain re-run keeps size 20 and embeds nothing
    emb2 = CountingEmbedder()
    build_index([kb], "idx", embedder=emb2)
    assert emb2.embedded == 0


def test_switching_embedder_needs_rebuild(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    with pytest.raises(ConfigError, match="hash:64.*hash:32|rebuild"):
        build_index([kb], "idx", embedder=HashEmbedder(32))
    summary = build_index([kb], "idx", embedder=HashEmbedder(32), rebuild=True)
    assert summary.chunks > 0 and store.read_manifest(in_tmp / "idx").embedder["dim"] == 32


def test_files_from_other_roots_are_kept(in_tmp, kb, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("other root document", encoding="utf-8")
    build_index([kb], "idx", embedder=HashEmbedder(64))
    summary = build_index([other], "idx", embedder=HashEmbedder(64))
    assert summary.removed == [] and summary.indexed == ["other/x.txt"]
    assert len(store.read_manifest(in_tmp / "idx").files) == 4


def test_second_writer_is_refused(in_tmp, kb):
    with store.write_lock(in_tmp / "idx"):
        with pytest.raises(IndexLockedError, match="another process"):
            build_index([kb], "idx", embedder=HashEmbedder(64))


def test_leftovers_of_a_crash_are_cleaned(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    (in_tmp / "idx" / ".gen-000009.tmp-1").mkdir()
    (in_tmp / "idx" / "gen-000042").mkdir()
    (kb / "shipping.txt").write_text("changed", encoding="utf-8")
    build_index([kb], "idx", embedder=HashEmbedder(64))
    names = sorted(p.name for p in (in_tmp / "idx").iterdir() if p.name != ".lock")
    m = store.read_manifest(in_tmp / "idx")
    assert names == sorted([m.generation, store.MANIFEST])


def test_manifest_of_another_format_version_is_refused(in_tmp, kb):
    build_index([kb], "idx", embedder=HashEmbedder(64))
    path = in_tmp / "idx" / store.MANIFEST
    data = json.loads(path.read_text())
    data["format_version"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(store.IndexFormatError, match="format version 999"):
        store.read_manifest(in_tmp / "idx")


def test_summary_json_contract(in_tmp, kb):
    d = build_index([kb], "idx", embedder=HashEmbedder(64)).to_dict()
    assert set(d) >= {"index", "files", "chunks", "seconds"}
    assert set(d["files"]) == {"indexed", "unchanged", "removed", "skipped"}
    assert isinstance(d["seconds"], float) and d["seconds"] < 60 and time.time() > 0


def test_a_newer_loading_pipeline_rechunks_unchanged_files(in_tmp, kb, monkeypatch):
    import rag.documents

    build_index([kb], "idx", embedder=HashEmbedder(64))
    monkeypatch.setattr(rag.documents, "PIPELINE_VERSION", rag.documents.PIPELINE_VERSION + 1)
    emb = CountingEmbedder()
    summary = build_index([kb], "idx", embedder=emb)
    assert len(summary.indexed) == 3 and emb.embedded == summary.chunks


def test_an_index_from_an_older_keyword_tokenizer_is_retokenised(in_tmp, kb, caplog):
    """An index whose BM25 vocabulary was built before Chinese was matched in Simplified characters still
    finds Traditional text: loading rebuilds its keyword index in memory, and `rag index` stores it again
    without embedding anything."""
    import bm25s

    from rag.keywords import TOKENIZER
    from rag.retrieve import Retriever

    (kb / "門市.md").write_text("# 門市\n\n門市營業時間為每日上午十點至晚上九點。\n", encoding="utf-8")
    build_index([kb], "idx", embedder=HashEmbedder(64))
    folder = in_tmp / "idx"
    manifest = store.read_manifest(folder)
    assert manifest.index["keywords"] == TOKENIZER
    # what tokenizer 1 stored: Traditional words as written, and no "keywords" entry in the manifest
    gen = folder / manifest.generation
    chunks = store.read_chunks(gen / store.CHUNKS)
    old = bm25s.BM25()
    old.index([list(c.indexed_text) for c in chunks], show_progress=False)  # any vocabulary but today's
    old.save(str(gen / store.KEYWORDS))
    data = json.loads((folder / store.MANIFEST).read_text(encoding="utf-8"))
    del data["index"]["keywords"]
    (folder / store.MANIFEST).write_text(json.dumps(data), encoding="utf-8")

    retriever = Retriever(folder, embedder=HashEmbedder(64))
    with caplog.at_level("WARNING", logger="rag.retrieve"):
        hits = retriever.search("門市營業時間", k=1, mode="bm25")
    assert "keyword tokenizer 1" in caplog.text
    assert hits and hits[0].chunk.source.endswith("門市.md")

    emb = CountingEmbedder()
    build_index([kb], "idx", embedder=emb)  # nothing changed but the tokenizer: stored again, nothing embedded
    assert emb.embedded == 0
    assert store.read_manifest(folder).index["keywords"] == TOKENIZER
    assert (
        Retriever(folder, embedder=HashEmbedder(64))
        .search("门市营业时间", k=1, mode="bm25")[0]
        .chunk.source.endswith("門市.md")
    )


def test_an_index_inside_the_knowledge_base_never_indexes_itself(in_tmp, kb):
    build_index([kb], kb / "idx", embedder=HashEmbedder(64))
    first = store.read_manifest(kb / "idx")
    summary = build_index([kb], kb / "idx", embedder=HashEmbedder(64))  # the index's files are not documents
    assert summary.indexed == [] and store.read_manifest(kb / "idx").chunks == first.chunks
    assert not any("idx" in s.source for s in summary.skipped)


def test_a_file_that_breaks_keeps_its_previously_indexed_version(in_tmp, kb):
    (kb / "faq.jsonl").write_text('{"question": "Do you ship to Norway?", "answer": "Yes, in 5 days."}\n', "utf-8")
    build_index([kb], "idx", embedder=HashEmbedder(64))
    (kb / "faq.jsonl").write_text('{"question": "Do you ship to Norway?"}\n', "utf-8")  # its answer lost
    summary = build_index([kb], "idx", embedder=HashEmbedder(64))
    reason = {s.source: s.reason for s in summary.skipped}["kb/faq.jsonl"]
    assert "no question/answer" in reason and "previously indexed version is kept" in reason
    assert summary.removed == []
    manifest = store.read_manifest(in_tmp / "idx")
    chunks = store.read_chunks(in_tmp / "idx" / manifest.generation / store.CHUNKS)
    assert any("5 days" in c.text for c in chunks if c.source == "kb/faq.jsonl")
    # mended, it is indexed again; deleted, it is removed
    (kb / "faq.jsonl").write_text('{"question": "Do you ship to Norway?", "answer": "Yes, in 3 days."}\n', "utf-8")
    assert build_index([kb], "idx", embedder=HashEmbedder(64)).indexed == ["kb/faq.jsonl"]
    (kb / "faq.jsonl").unlink()
    assert build_index([kb], "idx", embedder=HashEmbedder(64)).removed == ["kb/faq.jsonl"]


def test_one_path_given_as_a_string_is_one_path(in_tmp, kb):
    summary = build_index(str(kb), "idx", embedder=HashEmbedder(64))
    assert len(summary.indexed) == 3
    with pytest.raises(ConfigError, match="no paths"):
        build_index([], "idx", embedder=HashEmbedder(64))


def test_an_index_path_that_is_a_file_is_refused_and_the_file_left_alone(in_tmp, kb):
    (in_tmp / "notes.txt").write_text("keep me", "utf-8")
    with pytest.raises(ConfigError, match="is a file, not an index folder"):
        build_index([kb], "notes.txt", embedder=HashEmbedder(64))
    with pytest.raises(ConfigError, match="cannot create the index folder"):
        build_index([kb], "notes.txt/idx", embedder=HashEmbedder(64))
    assert (in_tmp / "notes.txt").read_text("utf-8") == "keep me"


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(in_tmp, kb):
    try:
        (kb / os.fsdecode(b"bad\xffname.md")).write_text("# Bad\n\nA file with a bad name.\n", "utf-8")
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    summary = build_index([kb], "idx", embedder=HashEmbedder(64))
    assert len(summary.indexed) == 3
    assert [s.reason for s in summary.skipped] == ["the file name is not valid UTF-8; rename the file"]
    assert json.dumps(summary.to_dict())  # printable


def test_a_link_to_nothing_is_reported_not_fatal(in_tmp, kb):
    (kb / "gone.md").symlink_to(kb / "missing.md")
    (kb / "loop.md").symlink_to(kb / "loop.md")
    (kb / "up").symlink_to(kb, target_is_directory=True)  # followed, it would walk forever
    summary = build_index([kb], "idx", embedder=HashEmbedder(64))
    assert len(summary.indexed) == 3
    assert {s.source for s in summary.skipped} == {"kb/gone.md", "kb/loop.md", "kb/up"}
    assert all("symbolic link" in s.reason for s in summary.skipped)


def test_a_file_indexed_from_another_directory_keeps_its_name_and_is_not_stored_twice(in_tmp, kb, monkeypatch):
    build_index(["kb"], in_tmp / "idx", embedder=HashEmbedder(64))
    monkeypatch.chdir("/")  # the same files, by their absolute path, from elsewhere
    summary = build_index([kb], in_tmp / "idx", embedder=HashEmbedder(64))
    assert summary.indexed == [] and len(summary.unchanged) == 3 and summary.removed == []
    manifest = store.read_manifest(in_tmp / "idx")
    assert set(manifest.files) == {"kb/router.md", "kb/shipping.txt", "kb/退货.md"}
    (kb / "shipping.txt").unlink()  # and a file deleted is removed, whatever directory rag runs in
    assert build_index([kb], in_tmp / "idx", embedder=HashEmbedder(64)).removed == ["kb/shipping.txt"]


def test_an_index_built_with_the_hash_alias_is_reindexed_with_it(in_tmp, kb):
    config = Config().override(embed={"model": "hash"})  # recorded as hash:256
    build_index([kb], "idx", config=config, explicit={"embed"})
    assert build_index([kb], "idx", config=config, explicit={"embed"}).indexed == []  # was "not 'hash'"


def test_a_broken_record_costs_its_file_only_itself(in_tmp, kb):
    records = [
        {"question": "Do you ship to Norway?", "answer": "Yes, in 5 days."},
        {"question": "Do you ship to Iceland?"},  # its answer missing
        {"question": "Do you ship to Malta?", "answer": "Yes, in 7 days."},
    ]
    (kb / "faq.json").write_text(json.dumps(records), "utf-8")
    summary = build_index([kb], "idx", embedder=HashEmbedder(64))
    assert "kb/faq.json" in summary.indexed
    reason = {s.source: s.reason for s in summary.skipped}["kb/faq.json"]
    assert reason.startswith("record 2 has no question/answer") and "the other 2 records are indexed" in reason
    chunks = store.read_chunks(in_tmp / "idx" / store.read_manifest(in_tmp / "idx").generation / store.CHUNKS)
    assert [c.text for c in chunks if c.source == "kb/faq.json"] == [
        "Q: Do you ship to Norway?\nA: Yes, in 5 days.",
        "Q: Do you ship to Malta?\nA: Yes, in 7 days.",
    ]
