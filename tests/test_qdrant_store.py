"""The Qdrant openers: modes and engines, the vector-size check, overwrite-not-duplicate, the lock error, the size
warning, and the refusal of a local-mode folder by the Edge default."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from haystack import Document
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from llama_index.vector_stores.qdrant import QdrantVectorStore

from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
from laser_integrations import qdrant
from laser_integrations.edge_vector_store import QdrantEdgeVectorStore
from laser_integrations.qdrant import (
    CollectionDimensionError,
    LocalModeFolderError,
    StorageLockedError,
    open_client,
    open_document_store,
    open_vector_store,
)


def docs(n: int, dim: int = 4) -> list[Document]:
    return [Document(id=f"d{i}", content=f"text {i}", embedding=[1.0, float(i), 0.5, 0.0][:dim]) for i in range(n)]


def test_default_is_an_embedded_qdrant_edge_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_document_store(embedding_dim=4)
    assert isinstance(store, QdrantEdgeDocumentStore)
    assert (store.path, store.index, store.embedding_dim, store.similarity) == ("laser_qdrant", "laser", 4, "cosine")
    assert (tmp_path / "laser_qdrant" / "laser" / "edge_config.json").is_file()  # one Edge shard per collection
    store.close()


def test_auto_engine_is_edge_for_folders_and_qdrant_client_for_servers_and_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(QdrantDocumentStore, "count_documents", lambda self: 0)  # no server here
    assert isinstance(open_document_store(url="http://qdrant.example:6333", embedding_dim=4), QdrantDocumentStore)
    monkeypatch.undo()
    assert isinstance(open_document_store(location=":memory:", embedding_dim=4), QdrantDocumentStore)
    assert isinstance(open_vector_store(location=":memory:", embedding_dim=4), QdrantVectorStore)
    vectors = open_vector_store(path=tmp_path / "e", collection="notes", embedding_dim=4)
    assert isinstance(vectors, QdrantEdgeVectorStore) and (tmp_path / "e" / "notes" / "edge_config.json").is_file()
    vectors.close()
    with pytest.raises(FileExistsError, match=r"holds Qdrant Edge collections \(\['notes'\]\); qdrant-client's local mode"):
        open_document_store(path=tmp_path / "e", embedding_dim=4, engine="client")  # never meta.json beside shards
    assert not (tmp_path / "e" / "meta.json").exists()
    # engine="client" keeps qdrant-client's local mode for a folder, on purpose.
    local = open_document_store(path=tmp_path / "c", embedding_dim=4, engine="client")
    assert isinstance(local, QdrantDocumentStore) and (tmp_path / "c" / "meta.json").is_file()
    local.close()
    with pytest.raises(ValueError, match=r"engine must be one of \['auto', 'client', 'edge'\], got 'sqlite'"):
        open_document_store(path=tmp_path / "x", embedding_dim=4, engine="sqlite")


def test_reindexing_overwrites_and_persists(tmp_path):
    store = open_document_store(path=tmp_path / "q", collection="c", embedding_dim=4)
    store.write_documents(docs(3), policy=DuplicatePolicy.OVERWRITE)
    store.write_documents(docs(3), policy=DuplicatePolicy.OVERWRITE)
    assert store.count_documents() == 3
    store.close()
    reopened = open_document_store(path=tmp_path / "q", collection="c", embedding_dim=4)
    assert sorted(d.id for d in reopened.filter_documents()) == ["d0", "d1", "d2"]
    reopened.close()


def test_wrong_vector_size_names_both_sizes_and_the_fix(tmp_path):
    store = open_document_store(path=tmp_path / "q", collection="c", embedding_dim=4)
    store.write_documents(docs(2))
    store.close()
    with pytest.raises(CollectionDimensionError, match=r"'c' in embedded Qdrant folder .* size 4, but the encoder embeds into 8 dimensions.*recreate=True"):
        open_document_store(path=tmp_path / "q", collection="c", embedding_dim=8)
    # the failed open released the folder, and recreate=True rebuilds the collection at the new size
    rebuilt = open_document_store(path=tmp_path / "q", collection="c", embedding_dim=8, recreate=True)
    assert (rebuilt.count_documents(), rebuilt.embedding_dim) == (0, 8)
    rebuilt.close()


def test_a_collection_held_by_another_store_gets_a_clear_error(tmp_path):
    holder = open_document_store(path=tmp_path / "q", embedding_dim=4)
    try:
        with pytest.raises(StorageLockedError, match=r"Qdrant Edge folder .*q/laser' is already opened by another process.*url="):
            open_document_store(path=tmp_path / "q", embedding_dim=4)
    finally:
        holder.close()
    open_document_store(path=tmp_path / "q", embedding_dim=4).close()  # released by close()


def test_a_local_mode_folder_held_by_another_client_gets_a_clear_error(tmp_path):
    holder = open_client(path=tmp_path / "q")
    try:
        with pytest.raises(StorageLockedError, match=r"folder .*q' is already opened by another process.*url="):
            open_document_store(path=tmp_path / "q", embedding_dim=4, engine="client")
        with pytest.raises(StorageLockedError, match="already opened by another process"):
            open_vector_store(path=tmp_path / "q", embedding_dim=4, engine="client")
    finally:
        holder.close()


def test_local_mode_warns_past_its_limit_pointing_at_server_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(qdrant, "EMBEDDED_POINTS_LIMIT", 2)
    store = open_document_store(path=tmp_path / "q", embedding_dim=4, engine="client")
    store.write_documents(docs(3))
    store.close()
    with pytest.warns(UserWarning, match=r"holds 3 points in embedded Qdrant.*Qdrant server or cluster \(url="):
        open_document_store(path=tmp_path / "q", embedding_dim=4, engine="client").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_document_store(location=":memory:", embedding_dim=4)  # in memory: no warning
        edge = open_document_store(path=tmp_path / "e", embedding_dim=4)  # Qdrant Edge indexes with HNSW: none
        edge.write_documents(docs(3))
        edge.close()
        open_document_store(path=tmp_path / "e", embedding_dim=4).close()


def test_a_local_mode_folder_is_refused_by_the_edge_default_naming_laser_migrate(tmp_path, capsys):
    from laser_integrations.cli.main import main

    local = open_document_store(path=tmp_path / "old", collection="docs", embedding_dim=4, engine="client")
    local.write_documents(docs(2))
    local.close()
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "old").rglob("*"))
    migrate = f"laser migrate --from-path {tmp_path / 'old'} --to-path NEW_DIR"
    for opener in (lambda **kw: open_document_store(embedding_dim=4, **kw),
                   lambda **kw: open_vector_store(embedding_dim=4, **kw)):  # fmt: skip
        for kwargs in ({}, {"recreate": True}, {"read_only": True}, {"collection": "new"}):
            with pytest.raises(LocalModeFolderError) as caught:
                opener(path=tmp_path / "old", **{"collection": "docs", **kwargs})
            assert "written by qdrant-client's local mode" in str(caught.value)
            assert migrate in str(caught.value) and 'engine="client" (CLI: --engine client)' in str(caught.value)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "old").rglob("*")) == before  # untouched
    assert main(["search", "text", "--path", str(tmp_path / "old"), "--collection", "docs"]) == 2  # before any model load
    assert migrate in capsys.readouterr().err
    # engine="client" still reads it.
    reader = open_document_store(path=tmp_path / "old", collection="docs", embedding_dim=4, engine="client", read_only=True)
    assert sorted(d.id for d in reader.filter_documents()) == ["d0", "d1"]
    reader.close()


def test_server_mode_passes_cluster_settings_through(monkeypatch):
    # No Qdrant server runs here: stop at the connection and check what the store was given.
    monkeypatch.setattr(QdrantDocumentStore, "count_documents", lambda self: 0)
    monkeypatch.setenv("QDRANT_API_KEY", "secret-key")
    store = open_document_store(
        url="http://qdrant.example:6333", api_key=Secret.from_env_var("QDRANT_API_KEY"), embedding_dim=4,
        shard_number=6, replication_factor=2, write_consistency_factor=2,
    )  # fmt: skip
    assert (store.url, store.shard_number, store.replication_factor, store.write_consistency_factor) == (
        "http://qdrant.example:6333", 6, 2, 2,
    )  # fmt: skip
    assert "secret-key" not in str(store.to_dict())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"path": "a", "url": "http://x"}, ValueError, "Give one of path, location and url, not path and url"),
        ({"location": "somewhere"}, ValueError, "location must be ':memory:'"),
        ({"url": "http://x", "api_key": "plain"}, TypeError, "Secret from an environment variable"),
    ],
)
def test_bad_connection_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        open_client(**kwargs)
    with pytest.raises(error, match=match):
        open_document_store(embedding_dim=4, **kwargs)


def test_a_folder_held_by_another_process_gets_a_clear_error(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOLDER, str(tmp_path / "q")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StorageLockedError, match=r"'.*q/laser' is already opened by another process"):
            open_document_store(path=tmp_path / "q", embedding_dim=4)
    finally:
        holder.communicate("", timeout=60)  # closing its stdin lets it exit and release the folder
    store = open_document_store(path=tmp_path / "q", embedding_dim=4)
    assert [d.id for d in store.filter_documents()] == ["held"]  # what the other process wrote
    store.close()


HOLD_FOLDER = """
import sys
from haystack import Document
from laser_integrations.qdrant import open_document_store
store = open_document_store(path=sys.argv[1], embedding_dim=4)
store.write_documents([Document(id="held", content="x", embedding=[1.0, 0.0, 0.0, 0.0])])
print("holding", flush=True)
sys.stdin.read()
store.close()
"""
