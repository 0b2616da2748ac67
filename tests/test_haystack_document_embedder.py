"""LaSERDocumentEmbedder, and full Haystack indexing and query pipelines over embedded Qdrant."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import ComponentDevice

from haystack_integrations.components.retrievers.laser_edge import QdrantEdgeEmbeddingRetriever
from laser_integrations.haystack import LaSERDocumentEmbedder, LaSERTextEmbedder
from laser_integrations.qdrant import open_document_store

TEXTS = [
    "the prime numbers are divisible only by one and themselves",
    "a prefix code satisfies the kraft inequality",
    "entropy measures the average information of a random variable",
    "the derivative of a product follows the product rule",
    "special relativity dilates time for a moving clock",
    "bayes theorem updates a prior with a likelihood",
]


def make(model, **kwargs) -> LaSERDocumentEmbedder:
    return LaSERDocumentEmbedder(model=str(model), device=ComponentDevice.from_str("cpu"), progress_bar=False, **kwargs)


def test_init_is_lazy():
    assert LaSERDocumentEmbedder(model="no/such-model").encoder is None


def test_run_embeds_documents_with_meta_fields_and_returns_copies(encoder, encoder_dir):
    docs = [
        Document(content="for a prefix code the lengths obey kraft", meta={"title": "Kraft", "year": 1949}),
        Document(content="entropy of a fair coin is one bit", meta={"title": None}),
    ]
    embedder = make(encoder_dir, meta_fields_to_embed=["title", "year"], embedding_separator=" | ", prefix="D: ", batch_size=1)
    out = embedder.run(docs)["documents"]
    expected = encoder.encode_documents(
        ["D: Kraft | 1949 | for a prefix code the lengths obey kraft", "D: entropy of a fair coin is one bit"]
    )
    np.testing.assert_allclose([d.embedding for d in out], expected, atol=1e-5)
    assert [d.id for d in out] == [d.id for d in docs]
    assert all(d.embedding is None for d in docs)  # the inputs are left alone


def test_content_none_is_embedded_as_empty_text_with_meta(encoder, encoder_dir):
    out = make(encoder_dir, meta_fields_to_embed=["title"]).run([Document(content=None, meta={"title": "Kraft"})])
    np.testing.assert_allclose(out["documents"][0].embedding, encoder.encode_documents(["Kraft\n"])[0], atol=1e-5)


def test_empty_list_gives_empty_list_without_loading():
    embedder = LaSERDocumentEmbedder(model="no/such-model")
    assert embedder.run([]) == {"documents": []}
    assert embedder.encoder is None


@pytest.mark.parametrize("bad", ["a string", [Document(content="ok"), "not a document"], None])
def test_wrong_type_points_at_text_embedder(bad):
    with pytest.raises(TypeError, match="expects a list of Documents.*use LaSERTextEmbedder"):
        LaSERDocumentEmbedder(model="m").run(bad)


def test_to_dict_from_dict_round_trip():
    embedder = LaSERDocumentEmbedder(
        model="some/model", meta_fields_to_embed=["title"], embedding_separator=" - ", num_thinking_steps=4
    )
    data = embedder.to_dict()
    assert data["type"] == "haystack_integrations.components.embedders.laser.document_embedder.LaSERDocumentEmbedder"
    assert data["init_parameters"]["meta_fields_to_embed"] == ["title"]
    again = LaSERDocumentEmbedder.from_dict(data)
    assert again.to_dict() == data


async def test_run_async_many_concurrent_calls(encoder, encoder_dir):
    embedder = make(encoder_dir, batch_size=2)
    batches = [[Document(content=f"{text} {i}") for text in TEXTS[:3]] for i in range(8)]
    results = await asyncio.gather(*(embedder.run_async(batch) for batch in batches))
    for batch, result in zip(batches, results, strict=True):
        expected = encoder.encode_documents([d.content for d in batch])
        np.testing.assert_allclose([d.embedding for d in result["documents"]], expected, atol=1e-5)


def test_indexing_and_query_pipelines_find_each_document_by_its_text(symmetric_encoder_dir, tmp_path):
    store = open_document_store(path=tmp_path / "qdrant", collection="docs", embedding_dim=64)
    indexing = Pipeline()
    indexing.add_component("embedder", make(symmetric_encoder_dir))
    indexing.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    indexing.connect("embedder", "writer")
    documents = [Document(content=text) for text in TEXTS]
    assert indexing.run({"embedder": {"documents": documents}})["writer"]["documents_written"] == len(TEXTS)
    # Re-indexing the same documents overwrites them: still one point per document.
    indexing.run({"embedder": {"documents": documents}})
    assert store.count_documents() == len(TEXTS)

    query = Pipeline()
    query.add_component("embedder", LaSERTextEmbedder(model=str(symmetric_encoder_dir), progress_bar=False))
    query.add_component("retriever", QdrantEdgeEmbeddingRetriever(store, top_k=3))  # the Edge default's retriever
    query.connect("embedder.embedding", "retriever.query_embedding")
    for text in TEXTS:
        hits = query.run({"embedder": {"text": text}})["retriever"]["documents"]
        assert hits[0].content == text
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    # the query pipeline survives a YAML round trip and still answers
    reloaded = Pipeline.loads(query.dumps())
    assert isinstance(reloaded.get_component("embedder"), LaSERTextEmbedder)
    store.close()
