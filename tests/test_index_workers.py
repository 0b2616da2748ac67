"""`laser index --processes 2`: sharded workers feeding one embedded writer (a Qdrant Edge folder, the default),
killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from laser_integrations import LaSEREncoder
from laser_integrations.cli.main import main
from laser_integrations.indexing import request_batches, shard_of
from laser_integrations.qdrant import open_document_store

REPO = Path(__file__).resolve().parents[1]
WORDS = "the prime numbers are divisible only by one and themselves entropy measures a random variable".split()

# Loaded into every process of a run through PYTHONPATH (spawned workers too): kills a worker or the parent
# with SIGKILL in the middle of the run, at a chunk chosen by the test.
HOOK = textwrap.dedent(
    """
    import os, signal
    if os.environ.get("KILL_HOOK_PIDS"):
        open(os.path.join(os.environ["KILL_HOOK_PIDS"], str(os.getpid())), "w").close()
    parent_after = os.environ.pop("KILL_HOOK_PARENT", "")  # popped: the workers it spawns do not inherit it
    worker_after = os.environ.get("KILL_HOOK_WORKER1", "")
    if parent_after or worker_after:
        import laser_integrations.indexing as indexing
        calls = []
    if parent_after:  # the parent dies at its write number parent_after + 1
        real_write = indexing.write_documents
        def write_documents(*args, **kwargs):
            calls.append(1)
            if len(calls) > int(parent_after):
                os.kill(os.getpid(), signal.SIGKILL)
            return real_write(*args, **kwargs)
        indexing.write_documents = write_documents
    if worker_after:  # worker 1 dies at its chunk number worker_after + 1
        real_documents, real_shard = indexing.documents_of, indexing.shard_records
        def shard_records(corpus, rank, world):
            if rank == 1:
                def documents(records):
                    calls.append(1)
                    if len(calls) > int(worker_after):
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real_documents(records)
                indexing.documents_of = documents
            return real_shard(corpus, rank, world)
        indexing.shard_records = shard_records
    """
)


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, list[dict]]:
    records = [
        {"_id": f"doc-{i}", "title": f"T{i}" if i % 3 == 0 else "", "text": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 7))}
        for i in range(48)
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path, records


def stored(tmp_path) -> dict[str, list[float]]:
    store = open_document_store(path=tmp_path / "qdrant", collection="docs", embedding_dim=64, return_embedding=True)
    try:
        return {d.id: d.embedding for d in store.filter_documents()}
    finally:
        store.close()


def test_shards_are_stable_and_cover_every_id():
    ids = [f"doc-{i}" for i in range(200)]
    shards = [shard_of(i, 2) for i in ids]
    assert shards == [shard_of(i, 2) for i in ids]  # same answer on every call (no per-process hash seed)
    assert set(shards) == {0, 1}
    assert shard_of("doc-1", 2) == int.from_bytes(__import__("hashlib").blake2b(b"doc-1", digest_size=8).digest(), "big") % 2


def test_killed_multi_process_runs_resume_to_exactly_the_corpus(symmetric_encoder_dir, corpus, tmp_path, monkeypatch, capsys):
    path, records = corpus
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    pids = tmp_path / "pids"
    pids.mkdir()
    args = ["index", str(path), "--model", str(symmetric_encoder_dir), "--path", str(tmp_path / "qdrant"),
            "--collection", "docs", "--processes", "2", "--threads-per-process", "1", "--chunk-size", "4"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{hooks}{os.pathsep}{REPO}", "KILL_HOOK_PIDS": str(pids)}

    # 1. The parent (the only writer) is SIGKILLed after its second write; its workers must stop too.
    run = subprocess.Popen([sys.executable, "-m", "laser_integrations.cli.main", *args],
                           env={**env, "KILL_HOOK_PARENT": "2"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == -9, stderr[-2000:]
    after_parent_kill = stored(tmp_path)  # the folder's lock died with the parent
    assert 0 < len(after_parent_kill) < len(records)
    children = [int(p.name) for p in pids.iterdir() if int(p.name) != run.pid]
    assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children), "orphaned workers kept running after the parent was killed"

    # 2. Rerun in this process; worker 1 SIGKILLs itself at its third chunk: a clear error, its chunks kept.
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    monkeypatch.setenv("KILL_HOOK_WORKER1", "2")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "worker 1 (cpu:1, shard 2/2) died (signal SIGKILL)" in err
    assert "run the same command again to resume" in err
    after_worker_kill = stored(tmp_path)
    assert set(after_parent_kill) < set(after_worker_kill) < {r["_id"] for r in records}

    # 3. A clean rerun finishes: exactly the corpus's ids, nothing twice, nothing re-embedded.
    monkeypatch.delenv("KILL_HOOK_WORKER1")
    assert main(args) == 0
    out = capsys.readouterr().out
    left = len(records) - len(after_worker_kill)
    assert f"Indexed {left} new documents ({len(after_worker_kill)} already present, 0 re-embedded" in out
    assert f"it holds {len(records)} documents" in out
    final = stored(tmp_path)
    assert sorted(final) == sorted(r["_id"] for r in records)

    # The vectors are the one-process encoder's (title and text joined as the Haystack embedder does).
    encoder = LaSEREncoder.from_pretrained(symmetric_encoder_dir, device="cpu")
    sample = records[:6]
    texts = ["\n".join([r["title"], r["text"]]) if r["title"] else r["text"] for r in sample]
    expected = encoder.encode_documents(texts)
    np.testing.assert_allclose(np.array([final[r["_id"]] for r in sample]), expected, atol=1e-5)

    # 4. A document whose text changed is embedded again by the workers (its content hash differs), the rest kept.
    changed = {**records[5], "text": "entropy of a random variable"}
    path.write_text("".join(json.dumps(changed if r is records[5] else r) + "\n" for r in records), encoding="utf-8")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"Indexed 0 new documents ({len(records) - 1} already present, 1 re-embedded because their text changed)" in out
    again = stored(tmp_path)
    np.testing.assert_allclose(again[changed["_id"]], encoder.encode_documents([changed["text"]])[0], atol=1e-5)
    assert again[records[0]["_id"]] == final[records[0]["_id"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_bad_worker_options_are_usage_errors(corpus, tmp_path, capsys):
    path, _ = corpus
    base = ["index", str(path), "--path", str(tmp_path / "q")]
    assert main([*base, "--devices", "cpu:0", "--processes", "2"]) == 2
    assert "give --devices or --processes, not both" in capsys.readouterr().err
    assert main([*base, "--devices", "tpu:0"]) == 2
    assert "Invalid device 'tpu:0'" in capsys.readouterr().err
    assert main([*base, "--processes", "2", "--threads-per-process", "0"]) == 2
    assert "threads_per_process must be a positive integer" in capsys.readouterr().err


def test_torchrun_ranks_refuse_embedded_qdrant(corpus, tmp_path, monkeypatch, capsys):
    path, _ = corpus
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["index", str(path), "--path", str(tmp_path / "q")]) == 2
    assert re.search(r"Embedded Qdrant allows one writer.*--url.*--devices cuda:0,cuda:1", capsys.readouterr().err)
    assert main(["index", str(path), "--url", "http://localhost:6333", "--processes", "2"]) == 2
    assert "under torchrun/accelerate each rank is one worker" in capsys.readouterr().err


def test_upsert_requests_stay_under_the_size_limit():
    from haystack import Document
    from haystack.dataclasses import SparseEmbedding

    docs = [Document(id=str(i), content="x" * 3000, embedding=[0.1] * 1024) for i in range(40)]
    batches = request_batches(docs, limit_bytes=100_000)
    assert [d.id for b in batches for d in b] == [d.id for d in docs]
    assert all(len(b) * (12 * 1024 + 3000 + 2 + 200) <= 100_000 for b in batches)
    assert len(batches) > 1
    # A hybrid document's sparse vector counts too (its 2000 terms: 2000 ids and 2000 values in the JSON).
    sparse = SparseEmbedding(indices=list(range(2000)), values=[0.5] * 2000)
    hybrid = [Document(id=str(i), content="x" * 3000, embedding=[0.1] * 1024, sparse_embedding=sparse)
              for i in range(40)]
    assert [len(b) for b in request_batches(hybrid, limit_bytes=100_000)] == [1] * 40


class RecordingClient:
    """Stands in for a Qdrant server's client (embedded Qdrant ignores HNSW settings): keeps the collection's m."""

    def __init__(self, m: int):
        self.m, self.updates = m, []

    def get_collection(self, name):
        from types import SimpleNamespace

        return SimpleNamespace(config=SimpleNamespace(hnsw_config=SimpleNamespace(m=self.m)))

    def update_collection(self, name, hnsw_config):
        self.updates.append(hnsw_config.m)
        self.m = hnsw_config.m


@pytest.mark.parametrize(("m", "restored"), [(32, 32), (0, 16)])
def test_bulk_load_defers_hnsw_and_restores_it(m, restored, caplog):
    from laser_integrations.indexing import begin_bulk_load, end_bulk_load

    client = RecordingClient(m)
    back = begin_bulk_load(client, "docs")
    assert client.m == 0
    end_bulk_load(client, "docs", back)
    assert (client.updates, client.m) == ([0, restored], restored)
    # A collection left at m=0 by a killed bulk load gets Qdrant's default back, and the log says why.
    assert ("a bulk load was interrupted" in caplog.text) == (m == 0)


# -- --hybrid with several workers: the one-process index, point for point ---------------------------------------
HYBRID = ["--hybrid", "--no-progress", "--chunk-size", "4"]
VOCABULARY = ("prime divisor entropy channel code prefix kraft bayes prior likelihood matrix rank kernel graph "
              "vertex edge integral derivative limit series").split()  # fmt: skip
QUERY = "prime divisor of a kraft code"


@pytest.fixture
def hybrid_corpus(tmp_path) -> tuple[Path, list[dict]]:
    """40 documents of distinct lengths: BM25 ranks them without ties (checked here), so two collections holding
    the same points rank them alike (Qdrant breaks a tie by its own point order, which the order of writing sets)."""
    import random

    import bm25s

    rng = random.Random(7)
    records = [{"_id": f"doc-{i}", "title": rng.choice(VOCABULARY).title() if i % 3 == 0 else "",
                "text": " ".join(rng.choice(VOCABULARY) for _ in range(2 + i))} for i in range(40)]  # fmt: skip
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize([f"{r['title']}\n{r['text']}" for r in records], stopwords="en", show_progress=False),
               show_progress=False)  # fmt: skip
    query = bm25s.tokenize([QUERY], stopwords="en", return_ids=False, show_progress=False)[0]
    scores = [s for s in bm25.get_scores(query) if s > 0]
    assert len(set(np.round(scores, 6))) == len(scores) > 20
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path, records


def points(folder: Path, engine: str) -> dict[str, tuple[dict, list[float], list[int], list[float]]]:
    """Every point of the hybrid collection ``docs``, read raw: id -> (payload, dense, sparse indices, values)."""
    store = open_document_store(path=folder, collection="docs", embedding_dim=64, hybrid=True, engine=engine)
    try:
        if engine == "client":
            records = store._client.scroll("docs", limit=1000, with_payload=True, with_vectors=True)[0]
        else:
            from laser_integrations import edge

            request = edge.require_edge().ScrollRequest(limit=1000, with_payload=True, with_vector=True)
            records = store.open().scroll(request)[0]
        out = {}
        for r in records:
            sparse = r.vector["text-sparse"]
            out[str(r.id)] = (r.payload, list(r.vector["text-dense"]), list(sparse.indices), list(sparse.values))
        return out
    finally:
        store.close()


def assert_same_points(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)  # the same point ids (uuid5 of the document ids): none missing, none twice
    for point_id, (payload, dense, indices, values) in want.items():
        assert got[point_id][0] == payload
        np.testing.assert_allclose(got[point_id][1], dense, atol=1e-5)  # other batches: float noise only
        assert (got[point_id][2], got[point_id][3]) == (indices, values)  # BM25: exactly the same terms and values


def hybrid_hits(args: list[str], capsys) -> list[tuple[str, float]]:
    """`laser search --hybrid` over the whole collection, best first, equal RRF scores by id: RRF ties by design (a
    point first in the dense ranking only and one first in the sparse only score alike), and Qdrant orders those by
    its own point order, which the order of writing sets."""
    capsys.readouterr()
    assert main(["search", QUERY, *args, "--hybrid", "--json", "--top-k", "40"]) == 0
    hits = [(h["id"], h["score"]) for h in map(json.loads, capsys.readouterr().out.splitlines())]
    assert len(hits) == 40
    return sorted(hits, key=lambda hit: (-round(hit[1], 6), hit[0]))


def bm25_document_vector(records: list[dict], doc_id: str) -> tuple[list[int], list[float]]:
    """BM25's saturated term frequencies computed here from bm25s's tokens, with the whole corpus's mean length."""
    import bm25s

    from laser_integrations.sparse import term_id

    texts = {r["_id"]: f"{r['title']}\n{r['text']}" if r["title"] else r["text"] for r in records}
    tokenized = bm25s.tokenize(list(texts.values()), stopwords="en", return_ids=False, show_progress=False)
    tokens = dict(zip(texts, tokenized))
    avg = sum(map(len, tokens.values())) / len(tokens)
    mine = tokens[doc_id]
    tf = {term_id(t): mine.count(t) for t in mine}
    norm = 1.5 * (1 - 0.75 + 0.75 * len(mine) / avg)
    return sorted(tf), [tf[i] / (tf[i] + norm) for i in sorted(tf)]


def test_killed_two_worker_hybrid_index_resumes_to_the_one_process_index(symmetric_encoder_dir, hybrid_corpus, tmp_path,
                                                                        capsys):  # fmt: skip
    path, records = hybrid_corpus
    model = ["--model", str(symmetric_encoder_dir), "--collection", "docs"]
    one = [*model, "--path", str(tmp_path / "one")]
    two = [*model, "--path", str(tmp_path / "two"), "--processes", "2", "--threads-per-process", "1"]
    assert main(["index", str(path), *one, *HYBRID]) == 0
    expected = points(tmp_path / "one", "auto")

    # The parent (the writer) is SIGKILLed after its second write: a part of the points, each whole.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{hooks}{os.pathsep}{REPO}", "KILL_HOOK_PARENT": "2"}
    run = subprocess.run([sys.executable, "-m", "laser_integrations.cli.main", "index", str(path), *two, *HYBRID],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == -9, run.stderr[-2000:]
    partial = points(tmp_path / "two", "auto")
    assert 0 < len(partial) < len(records)
    assert_same_points(partial, {k: v for k, v in expected.items() if k in partial})

    # The rerun writes the rest: the one-process collection, point for point, and the same hybrid ranking.
    assert main(["index", str(path), *two, *HYBRID]) == 0
    out = capsys.readouterr().out
    assert f"Indexed {len(records) - len(partial)} new documents ({len(partial)} already present" in out
    got = points(tmp_path / "two", "auto")
    assert_same_points(got, expected)
    doc = next(p for p in got.values() if p[0]["id"] == "doc-9")  # a titled document
    np.testing.assert_allclose(doc[3], bm25_document_vector(records, "doc-9")[1], rtol=1e-6)
    assert doc[2] == bm25_document_vector(records, "doc-9")[0] and records[9]["title"]
    one_hits, two_hits = hybrid_hits(one, capsys), hybrid_hits(two[:6], capsys)  # search: no worker flags
    assert [i for i, _ in two_hits] == [i for i, _ in one_hits]
    np.testing.assert_allclose([s for _, s in two_hits], [s for _, s in one_hits], rtol=1e-6)


def test_hybrid_workers_writing_to_a_server_each_upload_the_one_process_points(
    symmetric_encoder_dir, hybrid_corpus, tmp_path, monkeypatch, capsys
):
    """The server path (--url: every worker opens the collection and uploads its shard), on qdrant-client's local
    mode standing in for the server: one folder admits one client at a time, so the two workers run in turn."""
    import queue
    from dataclasses import replace

    import laser_integrations.indexing as indexing
    from laser_integrations.provenance import provenance_of

    path, records = hybrid_corpus
    model = ["--model", str(symmetric_encoder_dir), "--collection", "docs", "--engine", "client"]
    assert main(["index", str(path), *model, "--path", str(tmp_path / "one"), *HYBRID]) == 0
    # The job `laser index --processes 2` builds (its sparse settings measured on the whole corpus), made a server's.
    jobs = []
    monkeypatch.setattr(indexing, "index_with_workers",
                        lambda job, *a, **k: jobs.append(job) or indexing.IndexResult(0, 0, 0))  # fmt: skip
    assert main(["index", str(path), *model, "--path", str(tmp_path / "two"), "--processes", "2", *HYBRID]) == 0
    job = replace(jobs[0], server=True)
    assert job.sparse is not None and job.store_kwargs["hybrid"] is True
    embedder = indexing._load_embedder(job, "cpu")
    # What the parent (or torchrun's rank 0) does first: create the collection, recording the model.
    open_document_store(**job.store_kwargs, embedding_dim=64, provenance=provenance_of(embedder)).close()
    monkeypatch.setattr(indexing, "setup_worker", lambda *a: None)  # threads and log routing of a spawned process
    for rank in (0, 1):
        results, replies = queue.Queue(), queue.Queue()
        replies.put("go")
        indexing._index_worker(rank, 2, "cpu", 1, job, results, replies, os.getpid())
        messages = [results.get_nowait() for _ in range(results.qsize())]
        assert [m for m in messages if m[0] == "error"] == []
        assert messages[-1][0] == "done" and all(not m[2][3] for m in messages if m[0] == "wrote")  # uploaded itself
    assert_same_points(points(tmp_path / "two", "client"), points(tmp_path / "one", "client"))
    one_hits = hybrid_hits([*model, "--path", str(tmp_path / "one")], capsys)
    two_hits = hybrid_hits([*model, "--path", str(tmp_path / "two")], capsys)
    assert [i for i, _ in two_hits] == [i for i, _ in one_hits]
    np.testing.assert_allclose([s for _, s in two_hits], [s for _, s in one_hits], rtol=1e-6)
