"""`laser index` and `laser search` end to end on a small JSONL corpus (a Qdrant Edge folder, the default),
including resumed runs: after an exception, after SIGKILL, and read by another process."""

from __future__ import annotations

import json
import re

import pytest

from haystack_integrations.components.embedders.laser.backend import LaSEREmbedderBase
from laser_integrations.cli.main import main
from laser_integrations.qdrant import open_document_store

CORPUS = [
    {"_id": "primes", "title": "Primes", "text": "the prime numbers are divisible only by one and themselves"},
    {"_id": "kraft", "title": "", "text": "a prefix code satisfies the kraft inequality"},
    {"_id": "entropy", "text": "entropy measures the average information of a random variable"},
    {"_id": "product", "text": "the derivative of a product follows the product rule"},
    {"_id": "bayes", "text": "bayes theorem updates a prior with a likelihood"},
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def common(symmetric_encoder_dir, tmp_path):
    return ["--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "qdrant"), "--collection", "docs"]


def stored_ids(tmp_path) -> list[str]:
    store = open_document_store(path=tmp_path / "qdrant", collection="docs", embedding_dim=64)
    try:
        return sorted(d.id for d in store.filter_documents())
    finally:
        store.close()


def test_index_then_search_prints_hits_with_scores(common, tmp_path, capsys):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    assert main(["index", str(corpus), *common, "--chunk-size", "2"]) == 0
    assert "Indexed 5 new documents (0 already present, 0 re-embedded" in capsys.readouterr().out
    assert main(["search", CORPUS[2]["text"], *common, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    rank, score, doc_id = lines[0].split()[:3]
    assert (rank, doc_id) == ("1.", "entropy")
    assert float(score) == pytest.approx(1.0, abs=1e-3)
    assert main(["search", "Primes\nthe prime numbers are divisible only by one and themselves", *common, "--json", "--top-k", "1"]) == 0
    hit = json.loads(capsys.readouterr().out)
    assert (hit["id"], hit["title"]) == ("primes", "Primes")  # the title was embedded with the text


def test_resumed_run_skips_what_is_already_indexed(common, tmp_path, capsys):
    write_jsonl(tmp_path / "part.jsonl", CORPUS[:3])
    assert main(["index", str(tmp_path / "part.jsonl"), *common]) == 0
    capsys.readouterr()
    beir = tmp_path / "beir"
    beir.mkdir()
    write_jsonl(beir / "corpus.jsonl", CORPUS)
    assert main(["index", str(beir), *common]) == 0
    assert "Indexed 2 new documents (3 already present, 0 re-embedded" in capsys.readouterr().out
    assert stored_ids(tmp_path) == sorted(r["_id"] for r in CORPUS)


def test_a_killed_run_keeps_its_chunks_and_the_next_run_finishes(common, tmp_path, monkeypatch, capsys):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    real_embed = LaSEREmbedderBase._embed
    calls = []

    def dies_on_second_chunk(self, texts, kind):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_embed(self, texts, kind)

    monkeypatch.setattr(LaSEREmbedderBase, "_embed", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        main(["index", str(corpus), *common, "--chunk-size", "2"])
    monkeypatch.setattr(LaSEREmbedderBase, "_embed", real_embed)
    assert stored_ids(tmp_path) == ["kraft", "primes"]  # the first chunk was written, and the folder released
    assert main(["index", str(corpus), *common, "--chunk-size", "2"]) == 0
    assert "Indexed 3 new documents (2 already present, 0 re-embedded" in capsys.readouterr().out
    assert len(stored_ids(tmp_path)) == 5


# Loaded into the `laser index` subprocess through PYTHONPATH: SIGKILL at the Edge store's second write (of 3).
KILL_AT_SECOND_WRITE = """
import os, signal
from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
real, calls = QdrantEdgeDocumentStore.write_documents, []
def write_documents(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args, **kwargs)
QdrantEdgeDocumentStore.write_documents = write_documents
"""

READ_IN_ANOTHER_PROCESS = """
import json, sys
from laser_integrations.qdrant import open_document_store
store = open_document_store(path=sys.argv[1], collection="docs", embedding_dim=64, read_only=True)
print(json.dumps(sorted(d.id for d in store.filter_documents())))
store.close()
"""


def test_sigkilled_index_into_edge_resumes_without_duplicates_and_another_process_reads_it(common, tmp_path, capsys):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_AT_SECOND_WRITE, encoding="utf-8")
    args = ["index", str(corpus), *common, "--chunk-size", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": f"{hooks}{os.pathsep}{repo}"}
    killed = subprocess.run([sys.executable, "-m", "laser_integrations.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert stored_ids(tmp_path) == ["kraft", "primes"]  # the first chunk survived the kill (Edge's WAL), the lock died
    assert main(args) == 0  # the same command again
    assert "Indexed 3 new documents (2 already present, 0 re-embedded" in capsys.readouterr().out
    reader = subprocess.run([sys.executable, "-c", READ_IN_ANOTHER_PROCESS, str(tmp_path / "qdrant")],
                            env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert reader.returncode == 0, reader.stderr[-2000:]
    assert json.loads(reader.stdout) == sorted(r["_id"] for r in CORPUS)  # each document once, none missing


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"_id": "a", "text": "ok"}', "not json"], r"corpus.jsonl:2: not valid JSON"),
        (['{"text": "no id"}'], r"corpus.jsonl:1 has no document id; give one of the keys \['_id'"),
        (['{"_id": "a", "text": "x"}', '{"_id": "a", "text": "y"}'], r"corpus.jsonl:2 repeats the document id 'a'"),
        (['{"_id": "a"}'], r"corpus.jsonl:1 \(id 'a'\) has no text"),
    ],
)
def test_bad_corpus_fails_before_anything_is_written(common, tmp_path, capsys, lines, match):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["index", str(corpus), *common]) == 2  # bad input
    assert not (tmp_path / "qdrant").exists()  # nothing was created
    assert re.search(match, capsys.readouterr().err)


def test_missing_corpus_and_empty_collection(common, tmp_path, capsys):
    assert main(["index", str(tmp_path / "nope.jsonl"), *common]) == 2
    assert "Corpus" in capsys.readouterr().err
    open_document_store(path=tmp_path / "qdrant", collection="docs", embedding_dim=64).close()
    assert main(["search", "anything", *common]) == 2
    assert "is empty; index a corpus first with `laser index CORPUS`" in capsys.readouterr().err


def test_locked_folder_is_reported(common, tmp_path, capsys):
    holder = open_document_store(path=tmp_path / "qdrant", collection="docs", embedding_dim=64)
    try:
        assert main(["search", "anything", *common]) == 1
    finally:
        holder.close()
    assert re.search(r"Qdrant Edge folder '.*qdrant/docs' is already opened by another process", capsys.readouterr().err)


@pytest.mark.parametrize("engine", ["auto", "client"])  # Qdrant Edge (the default) and qdrant-client's local mode
def test_hybrid_index_and_search_fuse_dense_and_bm25_by_rrf(common, tmp_path, capsys, engine):
    import bm25s

    common = [*common, "--engine", engine]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    assert main(["index", str(corpus), *common, "--hybrid", "--no-progress", "--chunk-size", "2"]) == 0
    out, err = capsys.readouterr()
    assert "Indexed 5 new documents" in out and "Indexing into" not in err  # --no-progress: no bar
    query = "which numbers are divisible by one and themselves"
    assert main(["search", query, *common, "--json", "--top-k", "5"]) == 0  # dense alone
    dense = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    texts = [f"{r['title']}\n{r['text']}" if r.get("title") else r["text"] for r in CORPUS]
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    scores = retriever.get_scores(bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0])
    sparse = [CORPUS[i]["_id"] for i in sorted(range(len(CORPUS)), key=lambda i: -scores[i]) if scores[i] > 0]
    expected = {}
    for ranking in (dense, sparse):  # RRF computed here: 1 / (0-based position + 60)
        for position, doc_id in enumerate(ranking):
            expected[doc_id] = expected.get(doc_id, 0.0) + 1 / (position + 60)
    assert main(["search", query, *common, "--json", "--top-k", "5", "--hybrid"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {h["id"]: pytest.approx(h["score"], rel=1e-5) for h in hits} == expected
    assert hits[0]["id"] == "primes"
    # Resumed: nothing re-embedded, and the reopened folder still holds each document's sparse vector.
    assert main(["index", str(corpus), *common, "--hybrid", "--no-progress"]) == 0
    assert "Indexed 0 new documents (5 already present, 0 re-embedded" in capsys.readouterr().out
    assert main(["search", query, *common, "--json", "--top-k", "5", "--hybrid"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == hits


@pytest.mark.parametrize("engine", ["auto", "client"])
def test_hybrid_search_of_a_dense_collection_says_how_to_fix_it(common, tmp_path, capsys, engine):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS[:2])
    common = [*common, "--engine", engine]
    assert main(["index", str(corpus), *common, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "primes", *common, "--hybrid"]) == 2  # bad usage for this collection
    assert "without sparse BM25 vectors, which hybrid search needs" in capsys.readouterr().err
    # Nor can --hybrid add sparse vectors to it: refused (exit 2) before anything is written, naming --recreate.
    more = write_jsonl(tmp_path / "more.jsonl", CORPUS)
    assert main(["index", str(more), *common, "--hybrid", "--no-progress"]) == 2
    assert "--recreate" in capsys.readouterr().err
    store = open_document_store(path=tmp_path / "qdrant", collection="docs", embedding_dim=64, engine=engine)
    try:
        assert sorted(d.id for d in store.filter_documents()) == sorted(r["_id"] for r in CORPUS[:2])
    finally:
        store.close()


def test_index_into_edge_builds_once_at_the_end_with_the_new_folder_defaults(common, tmp_path, monkeypatch, capsys):
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

    real_optimize, optimized, writes = QdrantEdgeDocumentStore.optimize, [], []
    real_write = QdrantEdgeDocumentStore.write_documents

    def optimize(self, progress_bar=False):
        optimized.append((len(writes), progress_bar))
        return real_optimize(self, progress_bar=progress_bar)

    def write_documents(self, *args, **kwargs):
        writes.append(self.optimize_after_write)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(QdrantEdgeDocumentStore, "optimize", optimize)
    monkeypatch.setattr(QdrantEdgeDocumentStore, "write_documents", write_documents)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    assert main(["index", str(corpus), *common, "--chunk-size", "2", "--no-progress"]) == 0
    assert writes == [False, False, False]  # three chunks, no optimizer run per chunk
    assert optimized == [(3, False)]  # one build, after the last chunk
    assert "HNSW index already built: 0 of 5 vectors in it" in capsys.readouterr().out  # 5 points: searched exactly
    config = json.loads((tmp_path / "qdrant" / "docs" / "edge_config.json").read_text())
    assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"]) == (32, 128)
    assert config["quantization_config"] == {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    assert config["vectors"][""]["on_disk"] is True
    # a rerun with nothing to write still ends with the build (a killed run may have stopped before it)
    assert main(["index", str(corpus), *common, "--hnsw-m", "8"]) == 0
    assert optimized[-1] == (3, True) and len(optimized) == 2
    config = json.loads((tmp_path / "qdrant" / "docs" / "edge_config.json").read_text())
    assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"]) == (8, 128)  # given: applied; others kept
    capsys.readouterr()
    assert main(["search", CORPUS[4]["text"], *common, "--top-k", "1", "--exact"]) == 0
    assert capsys.readouterr().out.split()[2] == "bayes"
    assert main(["search", CORPUS[4]["text"], *common, "--top-k", "1", "--hnsw-ef", "16", "--oversampling", "3"]) == 0
    assert capsys.readouterr().out.split()[2] == "bayes"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["search", "q", "--engine", "client", "--hnsw-ef", "64"], r"--hnsw-ef apply to Qdrant Edge folders only"),
        (["search", "q", "--exact", "--hnsw-ef", "64"], r"--exact compares every vector"),
        (["search", "q", "--oversampling", "0.5"], r"--oversampling >= 1.0, got 256 and 0.5"),
        (["index", "corpus.jsonl", "--hnsw-ef-construct", "2"], r"--hnsw-ef-construct must be at least 4, got 2"),
    ],
)
def test_bad_hnsw_flags_are_refused_before_the_model_loads(common, tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    assert main([*argv, *common]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "qdrant").exists()  # nothing created


def test_quantization_none_cannot_silently_keep_a_stored_quantization(common, tmp_path, capsys):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", CORPUS[:2])
    assert main(["index", str(corpus), *common, "--no-progress"]) == 0  # a new folder: int8 by default
    assert main(["index", str(corpus), *common, "--quantization", "none"]) == 2
    assert "cannot remove the quantization of an existing collection; add --recreate" in capsys.readouterr().err
    assert main(["index", str(corpus), *common, "--quantization", "none", "--recreate", "--no-progress"]) == 0
    config = json.loads((tmp_path / "qdrant" / "docs" / "edge_config.json").read_text())
    assert config.get("quantization_config") is None
