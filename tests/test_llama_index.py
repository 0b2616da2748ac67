"""LaSEREmbedding for LlamaIndex: query vs text paths, round trip, VectorStoreIndex on Qdrant."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from llama_index.core import Settings, StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from qdrant_client import models

from laser_integrations.haystack import LaSERTextEmbedder
from laser_integrations.llama_index import LaSEREmbedding
from laser_integrations.qdrant import CollectionDimensionError, open_client, open_vector_store

TEXTS = [
    "the prime numbers are divisible only by one and themselves",
    "a prefix code satisfies the kraft inequality",
    "entropy measures the average information of a random variable",
    "special relativity dilates time for a moving clock",
]


def test_query_path_uses_query_template_instruction_and_k(encoder, encoder_dir):
    model = LaSEREmbedding(str(encoder_dir), device="cpu", query_instruction="Find theorems", num_thinking_steps=2)
    got = model.get_query_embedding("prefix codes")
    np.testing.assert_allclose(got, encoder.encode_queries(["prefix codes"], instruction="Find theorems", num_thinking_steps=2)[0], atol=1e-5)


def test_text_path_uses_document_template_batched(encoder, encoder_dir):
    model = LaSEREmbedding(str(encoder_dir), device="cpu", embed_batch_size=3)
    got = model.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(got, encoder.encode_documents(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.get_text_embedding(TEXTS[0]), got[0], atol=1e-5)


def test_large_hand_over_is_split_into_forward_passes_of_encode_batch_size(encoder_dir, monkeypatch):
    model = LaSEREmbedding(str(encoder_dir), device="cpu")  # defaults: LlamaIndex hands over 256 texts, passes of 32
    assert (model.embed_batch_size, model.encode_batch_size) == (256, 32)
    model = LaSEREmbedding(str(encoder_dir), device="cpu", embed_batch_size=100, encode_batch_size=3)
    rows: list[int] = []
    embed_token_ids = type(model.encoder).embed_token_ids

    def spy(self, token_ids, *args, **kwargs):
        rows.append(len(token_ids))
        return embed_token_ids(self, token_ids, *args, **kwargs)

    monkeypatch.setattr(type(model.encoder), "embed_token_ids", spy)
    texts = [f"{text} number {i}" for i, text in enumerate(TEXTS * 2)]  # 8 texts: one hand-over, passes of 3, 3, 2
    got = model.get_text_embedding_batch(texts)
    assert sorted(rows) == [2, 3, 3]
    monkeypatch.undo()
    np.testing.assert_allclose(got, model.encoder.encode_documents(texts), atol=1e-5)


def test_bad_encode_batch_size(encoder_dir):
    with pytest.raises(ValueError, match="encode_batch_size"):
        LaSEREmbedding(str(encoder_dir), encode_batch_size=0)


async def test_async_paths(encoder, encoder_dir):
    model = LaSEREmbedding(str(encoder_dir), device="cpu")
    np.testing.assert_allclose(await model.aget_query_embedding("q"), encoder.encode_queries(["q"])[0], atol=1e-5)
    got = await model.aget_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(got, encoder.encode_documents(TEXTS), atol=1e-5)


def test_round_trip_keeps_every_setting(encoder_dir):
    model = LaSEREmbedding(
        str(encoder_dir), device="cpu", num_thinking_steps=4, query_instruction="Find", trust_remote_code=False,
        local_files_only=True, embed_batch_size=7, encode_batch_size=5, show_progress_bar=False,
    )  # fmt: skip
    data = model.to_dict()
    assert data["class_name"] == "LaSEREmbedding" == LaSEREmbedding.class_name()
    again = LaSEREmbedding.from_dict(data)
    assert again.to_dict() == data
    assert (again.device, again.num_thinking_steps, again.local_files_only) == ("cpu", 4, True)
    assert (again.embed_batch_size, again.encode_batch_size) == (7, 5)


def test_shares_the_encoder_with_haystack(encoder_dir):
    text = LaSERTextEmbedder(model=str(encoder_dir))  # device resolved to the same default device
    text.warm_up()
    assert LaSEREmbedding(str(encoder_dir)).encoder is text.encoder


def test_bad_num_thinking_steps(encoder_dir):
    with pytest.raises(ValueError, match="num_thinking_steps must be an integer >= 1"):
        LaSEREmbedding(str(encoder_dir), num_thinking_steps=0)


@pytest.fixture
def restore_settings():
    previous = Settings._embed_model
    yield
    Settings._embed_model = previous


def test_vector_store_index_on_qdrant_via_settings(symmetric_encoder_dir, tmp_path, restore_settings):
    Settings.embed_model = LaSEREmbedding(str(symmetric_encoder_dir), device="cpu")
    store = open_vector_store(path=tmp_path / "q", collection="notes", embedding_dim=Settings.embed_model.dimension)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"node-{i}")) for i in range(len(TEXTS))]  # Qdrant wants UUIDs
    nodes = [TextNode(text=text, id_=node_id) for text, node_id in zip(TEXTS, ids, strict=True)]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store))
    # inserting the same nodes again overwrites them (point ids come from node ids)
    index.insert_nodes([TextNode(text=TEXTS[0], id_=ids[0])])
    assert len(store.get_nodes()) == len(TEXTS)
    retriever = index.as_retriever(similarity_top_k=2)
    for i, text in enumerate(TEXTS):
        hits = retriever.retrieve(text)
        assert hits[0].node.node_id == ids[i]
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    store.close()


def test_vector_store_dimension_is_checked_before_writing(symmetric_encoder_dir):
    client = open_client(location=":memory:")
    client.create_collection("old", vectors_config={"text-dense": models.VectorParams(size=32, distance=models.Distance.COSINE)})
    with pytest.raises(CollectionDimensionError, match=r"'old' .* size 32, but the encoder embeds into 64 dimensions"):
        open_vector_store(client=client, collection="old", embedding_dim=64)
    assert open_vector_store(client=client, collection="old", embedding_dim=64, recreate=True) is not None
