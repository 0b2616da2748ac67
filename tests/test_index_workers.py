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

    docs = [Document(id=str(i), content="x" * 3000, embedding=[0.1] * 1024) for i in range(40)]
    batches = request_batches(docs, limit_bytes=100_000)
    assert [d.id for b in batches for d in b] == [d.id for d in docs]
    assert all(len(b) * (12 * 1024 + 3000 + 2 + 200) <= 100_000 for b in batches)
    assert len(batches) > 1


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
