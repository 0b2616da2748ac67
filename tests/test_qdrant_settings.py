"""The Qdrant openers' settings: async clients for LlamaIndex, server-only settings refused in embedded mode,
similarity and API keys."""

from __future__ import annotations

import asyncio
import json

import pytest
from haystack.utils import Secret
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import TextNode
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import AsyncQdrantClient, models

from laser_integrations import qdrant
from laser_integrations.qdrant import LocalAsyncClient, open_client, open_document_store, open_vector_store

NODES = [TextNode(text=f"note {i}", id_=f"00000000-0000-0000-0000-{i:012d}") for i in range(4)]


@pytest.mark.parametrize("mode", ["memory", "path", "client"])
def test_llama_index_async_paths_work_in_embedded_modes(mode, tmp_path):
    # LlamaIndex's async paths need an aclient; a second local client would be another store (or a locked folder).
    embed = MockEmbedding(embed_dim=4)
    if mode == "client":
        client = open_client(location=":memory:")
        store = open_vector_store(client=client, collection="c", embedding_dim=4)
    else:
        where = {"location": ":memory:"} if mode == "memory" else {"path": tmp_path / "q", "engine": "client"}
        store = open_vector_store(collection="c", embedding_dim=4, **where)
    assert isinstance(store._aclient, LocalAsyncClient)
    index = VectorStoreIndex(NODES, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed, use_async=True)
    retriever = index.as_retriever(similarity_top_k=3)
    sync_ids = [h.node.node_id for h in retriever.retrieve("note")]
    async_ids = [h.node.node_id for h in asyncio.run(retriever.aretrieve("note"))]
    assert len(sync_ids) == 3 and async_ids == sync_ids
    # written through the async path (use_async=True), read through the sync client: one store
    assert store.client.count("c").count == 4
    store.client.close()


def test_llama_index_async_paths_work_on_the_edge_default(tmp_path):
    store = open_vector_store(path=tmp_path / "q", collection="c", embedding_dim=4)
    index = VectorStoreIndex(NODES, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=MockEmbedding(embed_dim=4), use_async=True)  # fmt: skip
    retriever = index.as_retriever(similarity_top_k=3)
    sync_ids = [h.node.node_id for h in retriever.retrieve("note")]
    assert len(sync_ids) == 3 and [h.node.node_id for h in asyncio.run(retriever.aretrieve("note"))] == sync_ids
    assert len(store.get_nodes()) == 4  # written through the async path
    store.close()


def test_server_mode_gets_a_real_async_client(monkeypatch):
    # No server here: skip the collection checks and look at the clients the store was given.
    monkeypatch.setattr(qdrant, "check_vector_size", lambda *a, **k: None)
    monkeypatch.setattr(QdrantVectorStore, "_collection_exists", lambda self, name: False)
    monkeypatch.setenv("QDRANT_API_KEY", "k")
    store = open_vector_store(url="http://qdrant.example:6333", api_key=Secret.from_env_var("QDRANT_API_KEY"), embedding_dim=4)
    assert isinstance(store._aclient, AsyncQdrantClient)
    assert store._aclient._client.rest_uri == "http://qdrant.example:6333"


@pytest.mark.parametrize(
    "setting",
    [
        {"hnsw_config": {"m": 32}},
        {"quantization_config": {"scalar": {"type": "int8"}}},
        {"on_disk": True},
        {"shard_number": 2},
    ],
)
def test_local_mode_refuses_settings_it_would_ignore(setting, tmp_path):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=rf"{name} cannot be honoured by embedded Qdrant folder .*brute force.*url="):
        open_document_store(path=tmp_path / "q", embedding_dim=4, engine="client", **setting)
    li_setting = setting if name != "hnsw_config" else {"dense_config": models.VectorParams(size=4, distance=models.Distance.COSINE, hnsw_config=models.HnswConfigDiff(m=32))}
    if name == "on_disk":
        li_setting = {"dense_config": models.VectorParams(size=4, distance=models.Distance.COSINE, on_disk=True)}
    if name == "quantization_config":
        li_setting = {"quantization_config": models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8))}
    with pytest.raises(ValueError, match="cannot be honoured by in-memory Qdrant"):
        open_vector_store(location=":memory:", embedding_dim=4, **li_setting)


def test_the_edge_default_applies_hnsw_quantization_and_on_disk_and_refuses_shards(tmp_path):
    store = open_document_store(path=tmp_path / "q", embedding_dim=4, hnsw_config={"m": 32},
                                quantization_config={"scalar": {"type": "int8"}}, on_disk=True)  # fmt: skip
    store.close()
    stored = json.loads((tmp_path / "q" / "laser" / "edge_config.json").read_text())
    assert stored["hnsw_config"]["m"] == 32 and "scalar" in json.dumps(stored["quantization_config"])
    assert stored["vectors"][""]["on_disk"] is True
    with pytest.raises(ValueError, match=r"Qdrant Edge folder .*cannot take shard_number.*url=\.\.\."):
        open_document_store(path=tmp_path / "q", embedding_dim=4, shard_number=2)


def test_on_disk_false_is_what_embedded_qdrant_does_anyway():
    assert open_document_store(location=":memory:", embedding_dim=4, on_disk=False).on_disk is False


def test_server_only_settings_pass_through_to_a_server(monkeypatch):
    monkeypatch.setattr(QdrantDocumentStore, "count_documents", lambda self: 0)  # no server here
    store = open_document_store(url="http://qdrant.example:6333", embedding_dim=4, hnsw_config={"m": 32}, quantization_config={"scalar": {"type": "int8"}})
    assert (store.hnsw_config, store.quantization_config) == ({"m": 32}, {"scalar": {"type": "int8"}})


def test_similarity_is_a_parameter_not_a_clash():
    store = open_document_store(location=":memory:", embedding_dim=4, similarity="dot_product")
    assert store.similarity == "dot_product"
    with pytest.raises(ValueError, match=r"Invalid similarity 'manhattan'. Valid similarities are: \['cosine', 'dot_product', 'l2'\]"):
        open_document_store(location=":memory:", embedding_dim=4, similarity="manhattan")


def test_api_keys(tmp_path):
    with pytest.raises(TypeError, match=r"not a plain string.*\$QDRANT_API_KEY.*Secret.from_env_var\('QDRANT_API_KEY'\)"):
        open_document_store(url="http://x", api_key="plain", embedding_dim=4)
    with pytest.raises(TypeError, match="not a plain string"):
        open_vector_store(url="http://x", api_key="plain", embedding_dim=4)
    with pytest.raises(ValueError, match="api_key is for a Qdrant server"):
        open_document_store(path=tmp_path / "q", api_key=Secret.from_env_var("QDRANT_API_KEY"), embedding_dim=4)
