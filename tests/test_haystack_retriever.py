"""LaSERRetriever: one component from a query string to Qdrant hits."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import ComponentDevice

from laser_integrations.haystack import LaSERDocumentEmbedder, LaSERRetriever
from laser_integrations.provenance import ProvenanceWarning, provenance_of
from laser_integrations.qdrant import open_document_store

TEXTS = {
    "primes": ("the prime numbers are divisible only by one and themselves", "math"),
    "kraft": ("a prefix code satisfies the kraft inequality", "coding"),
    "entropy": ("entropy measures the average information of a random variable", "coding"),
    "relativity": ("special relativity dilates time for a moving clock", "physics"),
}


@pytest.fixture(scope="module")
def store(symmetric_encoder_dir):
    docs = [Document(id=key, content=text, meta={"topic": topic}) for key, (text, topic) in TEXTS.items()]
    embedder = LaSERDocumentEmbedder(model=str(symmetric_encoder_dir), device=ComponentDevice.from_str("cpu"), progress_bar=False)
    store = open_document_store(location=":memory:", collection="retriever", embedding_dim=64,
                                provenance=provenance_of(embedder))  # the retriever checks it at warm-up
    store.write_documents(embedder.run(docs)["documents"], policy=DuplicatePolicy.OVERWRITE)
    return store


def make(store, model, **kwargs) -> LaSERRetriever:
    return LaSERRetriever(document_store=store, model=str(model), device=ComponentDevice.from_str("cpu"), **kwargs)


def test_init_is_lazy(store):
    assert make(store, "no/such-model").encoder is None


def test_finds_each_document_by_its_own_text(store, symmetric_encoder_dir):
    retriever = make(store, symmetric_encoder_dir, top_k=2)
    for key, (text, _) in TEXTS.items():
        hits = retriever.run(query=text)["documents"]
        assert [len(hits), hits[0].id] == [2, key]


def test_scores_equal_cosine_of_the_encoders_vectors(store, symmetric_encoder_dir):
    # K=2 queries against K=3 documents: allowed only explicitly, with a warning naming the difference.
    retriever = make(store, symmetric_encoder_dir, top_k=4, num_thinking_steps=2, allow_model_mismatch=True)
    with pytest.warns(ProvenanceWarning, match="num_thinking_steps: collection 3, this encoder 2"):
        hits = retriever.run(query="information of a coin")["documents"]
    encoder = retriever.encoder
    q = encoder.encode_queries(["information of a coin"], num_thinking_steps=2)[0]
    d = encoder.encode_documents([TEXTS[h.id][0] for h in hits])  # stored with the checkpoint's K
    np.testing.assert_allclose([h.score for h in hits], d @ q, atol=1e-4)


def test_filters_and_top_k_at_run_time(store, symmetric_encoder_dir):
    retriever = make(store, symmetric_encoder_dir, top_k=4)
    hits = retriever.run(
        query=TEXTS["kraft"][0], filters={"field": "meta.topic", "operator": "==", "value": "coding"}, top_k=5
    )["documents"]
    assert sorted(h.id for h in hits) == ["entropy", "kraft"]
    assert len(retriever.run(query="time", top_k=1)["documents"]) == 1


def test_store_dimension_must_match_the_model(symmetric_encoder_dir):
    wrong = open_document_store(location=":memory:", collection="small", embedding_dim=32)
    with pytest.raises(ValueError, match=r"embedding_dim=32, but .* embeds into 64 dimensions.*embedding_dim=64"):
        make(wrong, symmetric_encoder_dir).run(query="anything")


def test_bad_input():
    with pytest.raises(TypeError, match="must be a QdrantDocumentStore.*LaSERTextEmbedder"):
        LaSERRetriever(document_store=InMemoryDocumentStore())
    qdrant = open_document_store(location=":memory:", collection="x", embedding_dim=64)
    with pytest.raises(TypeError, match="expects the query as a string"):
        LaSERRetriever(document_store=qdrant, model="m").run(query=["a list"])


def test_to_dict_from_dict_and_pipeline_round_trip(store):
    retriever = LaSERRetriever(
        document_store=store, model="some/model", top_k=3, num_thinking_steps=4, instruction="Find",
        filters={"field": "meta.topic", "operator": "==", "value": "math"}, filter_policy="merge",
    )  # fmt: skip
    data = retriever.to_dict()
    assert data["type"] == "haystack_integrations.components.retrievers.laser.retriever.LaSERRetriever"
    params = data["init_parameters"]
    assert (params["top_k"], params["filter_policy"], params["num_thinking_steps"]) == (3, "merge", 4)
    assert params["document_store"]["init_parameters"]["index"] == "retriever"
    assert LaSERRetriever.from_dict(data).to_dict() == data

    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever)
    loaded = Pipeline.loads(pipeline.dumps()).get_component("retriever")
    assert isinstance(loaded, LaSERRetriever)
    assert loaded.to_dict() == data


async def test_run_async_many_concurrent_calls(store, symmetric_encoder_dir):
    retriever = make(store, symmetric_encoder_dir, top_k=1)
    keys = list(TEXTS) * 5
    results = await asyncio.gather(*(retriever.run_async(query=TEXTS[key][0]) for key in keys))
    assert [r["documents"][0].id for r in results] == keys
