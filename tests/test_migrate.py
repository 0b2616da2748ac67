"""``laser migrate``: an embedded folder's collection into a server (qdrant-client's local mode stands in for one:
the same client calls; no real Qdrant server runs here) or into a new Qdrant Edge folder."""

from __future__ import annotations

import hashlib
import uuid
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack.dataclasses import SparseEmbedding
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from qdrant_client import QdrantClient

from laser_integrations import edge, migrate as migration
from laser_integrations.cli.main import main
from laser_integrations.migrate import migrate
from laser_integrations.provenance import read_folder_provenance, read_provenance
from laser_integrations.qdrant import LocalModeFolderError, open_document_store

DIM = 8
RECORD = {"record_version": 1, "checkpoint": "tests/laser-a", "weights_sha256": "a" * 64, "num_thinking_steps": 3}
OTHER = {**RECORD, "checkpoint": "tests/laser-b", "weights_sha256": "b" * 64}


def _documents(n: int, seed: int = 0, sparse: bool = False) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [
        Document(
            id=f"doc-{i}", content=f"text {i} " * (1 + i % 3), embedding=rng.normal(size=DIM).tolist(),
            meta={"title": f"t{i}", "n": i, "tags": ["a", str(i % 5)], "nested": {"x": i / 7}},
            sparse_embedding=SparseEmbedding(indices=[i % 11, 20 + i % 3], values=[1.0 + i % 4, 0.5])
            if sparse else None,
        )
        for i in range(n)
    ]  # fmt: skip


def _edge_folder(root: Path, n: int = 300, collection: str = "docs", record: dict | None = RECORD) -> list[Document]:
    docs = _documents(n)
    store = open_document_store(path=root, collection=collection, embedding_dim=DIM, provenance=record)
    store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE)
    store.close()
    return docs


def _local_mode_folder(root: Path, n: int = 300, hybrid: bool = False) -> list[Document]:
    """A folder as earlier versions wrote it: qdrant-client's local mode (hybrid: with sparse BM25 vectors)."""
    docs = _documents(n, seed=1, sparse=hybrid)
    store = open_document_store(path=root, collection="docs", embedding_dim=DIM, engine="client", hybrid=hybrid,
                                provenance=RECORD, progress_bar=False)  # fmt: skip
    store.write_documents(docs, policy=DuplicatePolicy.OVERWRITE)
    store.close()
    return docs


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}  # fmt: skip


def _edge_points(folder: Path) -> dict[str, tuple[dict, dict]]:
    """Every point of an Edge shard, read with qdrant_edge directly: id -> (vectors, payload)."""
    qe = edge.require_edge()
    shard = qe.EdgeShard.load(str(folder))
    try:
        records, _ = shard.scroll(qe.ScrollRequest(limit=100_000, with_payload=True, with_vector=True))
    finally:
        shard.close()
    out = {}
    for r in records:
        vector = r.vector if isinstance(r.vector, dict) else {"": r.vector}
        out[str(r.id)] = ({n: (list(v.indices), list(v.values)) if isinstance(v, qe.SparseVector) else v
                           for n, v in vector.items()}, r.payload)  # fmt: skip
    return out


def _client_points(client: QdrantClient, collection: str) -> dict[str, tuple[dict, dict]]:
    records, _ = client.scroll(collection, limit=100_000, with_payload=True, with_vectors=True)
    out = {}
    for r in records:
        vector = r.vector if isinstance(r.vector, dict) else {"": r.vector}
        out[str(r.id)] = ({n: (list(v.indices), list(v.values)) if hasattr(v, "indices") else v
                           for n, v in vector.items()}, r.payload)  # fmt: skip
    return out


def _assert_same_points(a: dict, b: dict, cosine: bool = True) -> None:
    """Equal ids, payloads, sparse vectors and dense ones (to float tolerance; for cosine, their directions: local
    mode keeps a cosine vector as given, Edge normalises it)."""
    assert sorted(a) == sorted(b)
    for point_id, (vectors, payload) in a.items():
        other_vectors, other_payload = b[point_id]
        assert payload == other_payload, point_id
        assert sorted(vectors) == sorted(other_vectors)
        for name, v in vectors.items():
            if isinstance(v, tuple):
                assert v[0] == other_vectors[name][0]
                np.testing.assert_allclose(v[1], other_vectors[name][1], rtol=1e-6)
            else:
                v, w = np.asarray(v), np.asarray(other_vectors[name])
                if cosine:
                    v, w = v / np.linalg.norm(v), w / np.linalg.norm(w)
                np.testing.assert_allclose(v, w, rtol=1e-5, atol=1e-6)


def test_edge_folder_to_a_server_collection(tmp_path):
    source, server = tmp_path / "edge", tmp_path / "server"
    docs = _edge_folder(source)
    provenance_file = (source / "docs" / "laser_provenance.json").read_bytes()
    client = QdrantClient(path=str(server))  # stands in for QdrantClient(url=...): the same calls
    result = migrate(source, to_client=client, batch_size=64, progress=False)
    assert (result.points, result.resumed, result.collection) == (300, False, "docs")
    _assert_same_points(_edge_points(source / "docs"), _client_points(client, "docs"))
    assert read_provenance(client, "docs") == RECORD
    client.close()
    # The source was only read: its provenance file is byte for byte the same, its points are the documents
    # written (below). (Loading an Edge shard rewrites edge_config.json with its defaults filled in.)
    assert (source / "docs" / "laser_provenance.json").read_bytes() == provenance_file
    assert edge.stored_config(source / "docs")["vectors"] == {"": {"size": DIM, "distance": "Cosine"}}

    # qdrant-haystack's own store reads the migrated collection: the same documents and the same hits.
    target = QdrantDocumentStore(path=str(server), index="docs", embedding_dim=DIM, return_embedding=True,
                                 progress_bar=False)  # fmt: skip
    original = open_document_store(path=source, collection="docs", embedding_dim=DIM, return_embedding=True)
    try:
        moved = {d.id: d for d in target.filter_documents()}
        kept = {d.id: d for d in original.filter_documents()}
        assert sorted(moved) == sorted(kept) == sorted(d.id for d in docs)
        for doc in docs:
            assert (kept[doc.id].content, kept[doc.id].meta) == (doc.content, doc.meta)
        for doc_id, doc in kept.items():
            assert (moved[doc_id].content, moved[doc_id].meta) == (doc.content, doc.meta)
            np.testing.assert_allclose(moved[doc_id].embedding, doc.embedding, rtol=1e-5, atol=1e-6)
        for query in np.random.default_rng(7).normal(size=(5, DIM)).tolist():
            hits = target._query_by_embedding(query, top_k=10)  # noqa: SLF001 - the store's search, no retriever
            expected = original.query_by_embedding(query, top_k=10)
            assert [h.id for h in hits] == [h.id for h in expected]
            np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], rtol=1e-5)
    finally:
        target.close()
        original.close()


def test_local_mode_folder_converts_to_edge_and_opens(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    docs = _local_mode_folder(old)
    before = _checksums(old)
    with pytest.raises(LocalModeFolderError) as refused:
        open_document_store(path=old, collection="docs", embedding_dim=DIM)
    assert f"laser migrate --from-path {old} --to-path NEW_DIR" in str(refused.value)
    # The command that message names, as the user would type it.
    assert main(["migrate", "--from-path", str(old), "--to-path", str(new), "--batch-size", "70", "--no-progress"]) == 0
    assert "copied 300 points of 'docs'" in capsys.readouterr().out
    assert _checksums(old) == before
    assert read_folder_provenance(new / "docs") == RECORD
    with closing(QdrantClient(path=str(old))) as client:
        _assert_same_points(_client_points(client, "docs"), _edge_points(new / "docs"))
    store = open_document_store(path=new, collection="docs", embedding_dim=DIM, provenance=RECORD, read_only=True)
    try:  # the reader's provenance check passed; the documents are all there
        assert store.count_documents() == 300
        found = store.filter_documents({"field": "meta.n", "operator": "==", "value": 42})
        assert [(d.id, d.content) for d in found] == [(docs[42].id, docs[42].content)]
    finally:
        store.close()
    with pytest.raises(Exception, match="indexed by 'tests/laser-a'"):
        open_document_store(path=new, collection="docs", embedding_dim=DIM, provenance=OTHER, read_only=True)


def test_sparse_vectors_and_their_idf_modifier_travel(tmp_path):
    """A hybrid local-mode collection (named dense + sparse BM25 vectors with Qdrant's IDF) into Qdrant Edge."""
    old, new = tmp_path / "old", tmp_path / "new"
    _local_mode_folder(old, n=120, hybrid=True)
    migrate(old, to_path=new, batch_size=50, progress=False)
    config = edge.stored_config(new / "docs")
    assert config["vectors"] == {"text-dense": {"size": DIM, "distance": "Cosine"}}
    assert config["sparse_vectors"] == {"text-sparse": {"modifier": "idf"}}
    with closing(QdrantClient(path=str(old))) as client:
        _assert_same_points(_client_points(client, "docs"), _edge_points(new / "docs"))


@pytest.mark.parametrize("target_kind", ["server", "edge"])
def test_a_crashed_migration_resumes_with_no_point_missing_or_doubled(tmp_path, monkeypatch, target_kind):
    source = tmp_path / "edge"
    _edge_folder(source, n=500)
    target_class = migration.ClientTarget if target_kind == "server" else migration.EdgeTarget
    upsert = target_class.upsert
    calls = {"n": 0}

    def crash_on_third(self, points):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed midway: the third batch is never written
        upsert(self, points)

    monkeypatch.setattr(target_class, "upsert", crash_on_third)
    client = QdrantClient(path=str(tmp_path / "server")) if target_kind == "server" else None
    kwargs = {"to_client": client} if client else {"to_path": tmp_path / "new"}
    with pytest.raises(KeyboardInterrupt):
        migrate(source, batch_size=100, progress=False, **kwargs)
    if client:
        assert client.count("docs", exact=True).count == 200
        assert read_provenance(client, "docs") is None  # half-copied: records no model yet
    else:
        assert read_folder_provenance(tmp_path / "new" / "docs") is None
        assert migration.EdgeTarget(tmp_path / "new", "docs").count() == 200
    monkeypatch.setattr(target_class, "upsert", upsert)
    result = migrate(source, batch_size=100, progress=False, **kwargs)
    assert (result.resumed, result.points) == (True, 500)
    moved = _client_points(client, "docs") if client else _edge_points(tmp_path / "new" / "docs")
    _assert_same_points(_edge_points(source / "docs"), moved)
    if client:
        assert read_provenance(client, "docs") == RECORD
        client.close()
    else:
        assert read_folder_provenance(tmp_path / "new" / "docs") == RECORD


def test_cli_errors(tmp_path, capsys):
    source = tmp_path / "edge"
    _edge_folder(source, n=20)

    def run(*args: str) -> tuple[int, str]:
        code = main(["migrate", "--no-progress", *args])
        return code, capsys.readouterr().err

    missing = tmp_path / "missing"
    code, err = run("--from-path", str(missing), "--to-path", str(tmp_path / "new"))
    assert code == 2 and "does not exist" in err
    assert not missing.exists() and not (tmp_path / "new").exists()  # nothing created

    code, err = run("--from-path", str(source), "--collection", "nope", "--to-path", str(tmp_path / "new"))
    assert code == 2 and "Collection 'nope' does not exist" in err and "['docs']" in err

    _edge_folder(source, n=5, collection="more")
    code, err = run("--from-path", str(source), "--to-path", str(tmp_path / "new"))
    assert code == 2 and "holds 2 collections ['docs', 'more']; choose one with --collection" in err

    code, err = run("--from-path", str(source), "--collection", "docs", "--to-path", str(source))
    assert code == 2 and "into itself" in err
    code, err = run("--from-path", str(source), "--collection", "docs", "--to-path", str(source / "sub"))
    assert code == 2 and "into itself" in err

    other = tmp_path / "other"
    _edge_folder(other, n=7, record=OTHER)
    code, err = run("--from-path", str(source), "--collection", "docs", "--to-path", str(other))
    assert code == 2 and "indexed by 'tests/laser-b'" in err and "--recreate" in err
    assert edge.stored_config(other / "docs") is not None and read_folder_provenance(other / "docs") == OTHER

    unrecorded = tmp_path / "unrecorded"
    _edge_folder(unrecorded, n=7, record=None)
    code, err = run("--from-path", str(source), "--collection", "docs", "--to-path", str(unrecorded))
    assert code == 2 and "already holds 7 points" in err
    code, err = run("--from-path", str(source), "--collection", "docs", "--to-path", str(unrecorded), "--recreate")
    assert code == 0 and migration.EdgeTarget(unrecorded, "docs").count() == 20

    code, err = run("--from-path", str(source), "--collection", "docs", "--to-url", "http://127.0.0.1:9")
    assert code == 1 and "Cannot reach the Qdrant server at http://127.0.0.1:9" in err

    with pytest.raises(SystemExit) as usage:  # argparse's own usage error
        main(["migrate", "--from-path", str(source), "--collection", "docs"])
    assert usage.value.code == 2
    assert "one of the arguments --to-url --to-path is required" in capsys.readouterr().err


def test_point_ids_survive_as_they_are(tmp_path):
    """Integer and UUID ids, the unnamed vector: copied unchanged both ways."""
    qe = edge.require_edge()
    folder = tmp_path / "edge"
    shard = edge.open_shard(folder / "raw", vectors={"": (3, "dot_product")})
    ids = [7, 2**40, str(uuid.uuid4())]
    shard.update(qe.UpdateOperation.upsert_points(
        [qe.Point(id=uuid.UUID(i) if isinstance(i, str) else i, vector=[1.0, 2.0, float(k)], payload={"k": k})
         for k, i in enumerate(ids)]))  # fmt: skip
    shard.close()
    with closing(QdrantClient(location=":memory:")) as client:
        migrate(folder, to_client=client, batch_size=1, progress=False)
        assert sorted(map(str, ids)) == sorted(_client_points(client, "raw"))
        assert client.get_collection("raw").config.params.vectors.distance == "Dot"
        _assert_same_points(_edge_points(folder / "raw"), _client_points(client, "raw"), cosine=False)
