"""Hybrid search (LaSER dense + BM25 sparse, RRF in Qdrant): values against bm25s and an RRF computed here."""

from __future__ import annotations

import asyncio

import bm25s
import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import ComponentDevice
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from qdrant_client import models

from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder
from haystack_integrations.components.embedders.laser_sparse import BM25SparseDocumentEmbedder
from haystack_integrations.components.retrievers.laser import LaSERHybridRetriever
from laser_integrations import LaSEREncoder
from laser_integrations.hybrid import hybrid_query, rrf_scores
from laser_integrations.qdrant import CollectionLayoutError, open_client, open_document_store, open_vector_store
from laser_integrations.sparse import BM25SparseEncoder, sparse_vector_params, term_id

TEXTS = {
    "primes": "the prime numbers are divisible only by one and themselves",
    "kraft": "a prefix code satisfies the kraft inequality on codeword lengths of a prefix code",
    "entropy": "entropy measures the average information of a random variable",
    "product": "the derivative of a product follows the product rule",
    "bayes": "bayes theorem updates a prior with a likelihood of the data",
    "integral": "the integral of a derivative recovers the function up to a constant",
}
QUERIES = ["which code inequality bounds codeword lengths", "derivative of a product of functions", "prime numbers"]
RRF_K = 60


def bm25s_scores(query: str) -> dict[str, float]:
    """BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) of each document with a query term in common."""
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(bm25s.tokenize(list(TEXTS.values()), stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
    scores = retriever.get_scores(tokens)
    return {doc_id: float(s) for doc_id, s in zip(TEXTS, scores) if s > 0}


def expected_rrf(dense: dict[str, float], sparse: dict[str, float]) -> dict[str, float]:
    """RRF computed here: a document at 0-based position p of a ranking adds 1 / (p + k)."""
    fused: dict[str, float] = {}
    for scores in (dense, sparse):
        for position, doc_id in enumerate(sorted(scores, key=lambda d: -scores[d])):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (position + RRF_K)
    return fused


def dense_scores(encoder: LaSEREncoder, query: str) -> dict[str, float]:
    docs = encoder.encode_documents(list(TEXTS.values()))
    return dict(zip(TEXTS, (docs @ encoder.encode_queries([query])[0]).tolist()))


def assert_ranked_as(hits: list[tuple[str, float]], expected: dict[str, float]) -> None:
    assert {doc_id for doc_id, _ in hits} == set(expected)
    for doc_id, score in hits:
        assert score == pytest.approx(expected[doc_id], rel=1e-5), doc_id
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.fixture(scope="module")
def encoder(symmetric_encoder_dir) -> LaSEREncoder:
    return LaSEREncoder.from_pretrained(symmetric_encoder_dir, device="cpu")


def test_sparse_search_in_qdrant_scores_exactly_bm25s():
    # Qdrant's IDF modifier times our saturated term frequencies is BM25: the scores equal bm25s's.
    sparse = BM25SparseEncoder.fit(list(TEXTS.values()))
    client = open_client(location=":memory:")
    client.create_collection("s", vectors_config={}, sparse_vectors_config={"bm25": sparse_vector_params()})
    client.upsert("s", [
        models.PointStruct(id=i, vector={"bm25": v.to_qdrant()}, payload={"key": key})
        for i, (key, v) in enumerate(zip(TEXTS, sparse.encode_documents(list(TEXTS.values()))))
    ])  # fmt: skip
    for query in [*QUERIES, "prime prime code"]:  # a repeated query term counts again, as in bm25s
        points = client.query_points("s", query=sparse.encode_queries([query])[0].to_qdrant(), using="bm25", limit=10).points
        got = {p.payload["key"]: p.score for p in points}
        expected = bm25s_scores(query)
        assert got.keys() == expected.keys()
        for key in got:
            assert got[key] == pytest.approx(expected[key], rel=1e-5)


def test_term_ids_are_fixed_and_vectors_sorted():
    assert term_id("kraft") == term_id("kraft") == int.from_bytes(__import__("hashlib").blake2b(b"kraft", digest_size=4).digest(), "little")
    vector = BM25SparseEncoder().encode_documents(["The kraft kraft inequality"])[0]
    assert vector.indices == sorted({term_id("kraft"), term_id("inequality")})
    with pytest.raises(ValueError, match="avg_doc_length must be positive"):
        BM25SparseEncoder(avg_doc_length=0)
    with pytest.raises(TypeError, match="list of texts"):
        BM25SparseEncoder().encode_queries("one string")


def test_fit_streams_a_generator_to_the_mean_of_the_whole_corpus(monkeypatch):
    import laser_integrations.sparse as sparse

    tokens = bm25s.tokenize(list(TEXTS.values()), stopwords="en", return_ids=False, show_progress=False)
    lengths = [len(t) for t in tokens]
    monkeypatch.setattr(sparse, "_FIT_SLICE", 3)  # several slices, the last one short
    fitted = BM25SparseEncoder.fit(text for text in TEXTS.values())
    assert fitted.avg_doc_length == sum(lengths) / len(lengths)
    with pytest.raises(TypeError, match="got one string; wrap it in a list"):
        BM25SparseEncoder.fit("one text")


# Qdrant Edge (the default for a folder) and qdrant-client (in memory, standing in for a server): the same ranking.
@pytest.fixture(scope="module", params=["edge", "client"])
def hybrid_store(symmetric_encoder_dir, request, tmp_path_factory):
    if request.param == "edge":
        store = open_document_store(path=tmp_path_factory.mktemp("edge"), collection="hybrid", embedding_dim=64, hybrid=True)
    else:
        store = open_document_store(location=":memory:", collection="hybrid", embedding_dim=64, hybrid=True)
    indexing = Pipeline()
    indexing.add_component("dense", LaSERDocumentEmbedder(model=str(symmetric_encoder_dir), device=ComponentDevice.from_str("cpu"), progress_bar=False))
    avg = BM25SparseEncoder.fit(list(TEXTS.values())).avg_doc_length
    indexing.add_component("sparse", BM25SparseDocumentEmbedder(avg_doc_length=avg))
    indexing.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    indexing.connect("dense", "sparse")
    indexing.connect("sparse", "writer")
    topics = {k: "calculus" if k in ("product", "integral") else "other" for k in TEXTS}
    indexing.run({"dense": {"documents": [Document(id=k, content=t, meta={"topic": topics[k]}) for k, t in TEXTS.items()]}})
    yield store
    store.close()


def test_haystack_hybrid_retriever_equals_rrf_of_dense_and_bm25(hybrid_store, symmetric_encoder_dir, encoder):
    retriever = LaSERHybridRetriever(document_store=hybrid_store, model=str(symmetric_encoder_dir), device=ComponentDevice.from_str("cpu"), top_k=10)
    for query in QUERIES:
        hits = retriever.run(query=query)["documents"]
        assert_ranked_as([(d.id, d.score) for d in hits], expected_rrf(dense_scores(encoder, query), bm25s_scores(query)))
        assert hits[0].embedding is None and hits[0].sparse_embedding is None
    # filters apply to both searches: the fusion of the two filtered rankings
    calculus = {"field": "meta.topic", "operator": "==", "value": "calculus"}
    hits = retriever.run(query=QUERIES[1], filters=calculus)["documents"]
    keep = lambda scores: {k: v for k, v in scores.items() if k in ("product", "integral")}  # noqa: E731
    expected = expected_rrf(keep(dense_scores(encoder, QUERIES[1])), keep(bm25s_scores(QUERIES[1])))
    assert_ranked_as([(d.id, d.score) for d in hits], expected)
    async_hits = asyncio.run(retriever.run_async(query=QUERIES[0], top_k=2))["documents"]
    assert [d.id for d in async_hits] == [d.id for d in retriever.run(query=QUERIES[0])["documents"][:2]]


def test_hybrid_retriever_round_trips_and_loads_in_a_pipeline(hybrid_store, symmetric_encoder_dir):
    retriever = LaSERHybridRetriever(document_store=hybrid_store, model=str(symmetric_encoder_dir), top_k=3, rrf_k=10, prefetch_limit=20)
    data = retriever.to_dict()
    assert data["type"] == "haystack_integrations.components.retrievers.laser.hybrid_retriever.LaSERHybridRetriever"
    again = LaSERHybridRetriever.from_dict(data)
    assert again.to_dict() == data
    pipeline = Pipeline()
    pipeline.add_component("sparse", BM25SparseDocumentEmbedder(avg_doc_length=12.5, meta_fields_to_embed=["title"]))
    loaded = Pipeline.loads(pipeline.dumps())
    assert loaded.get_component("sparse").to_dict() == pipeline.get_component("sparse").to_dict()


@pytest.mark.parametrize("engine", ["auto", "client"])  # Qdrant Edge (the default) and qdrant-client's local mode
def test_hybrid_needs_a_sparse_collection(symmetric_encoder_dir, tmp_path, engine):
    dense_only = open_document_store(path=tmp_path / "q", collection="c", embedding_dim=64, engine=engine)
    with pytest.raises(ValueError, match=r"use_sparse_embeddings=False.*hybrid=True"):
        LaSERHybridRetriever(document_store=dense_only, model=str(symmetric_encoder_dir))
    dense_only.write_documents([Document(id="a", content="x", embedding=[0.1] * 64)])
    dense_only.close()
    with pytest.raises(CollectionLayoutError, match=r"'c' .* without sparse BM25 vectors.*--recreate"):
        open_document_store(path=tmp_path / "q", collection="c", embedding_dim=64, hybrid=True, engine=engine)
    hybrid = open_document_store(path=tmp_path / "q", collection="h", embedding_dim=64, hybrid=True, engine=engine)
    hybrid.write_documents([Document(id="a", content="x", embedding=[0.1] * 64)])
    hybrid.close()
    if engine == "auto":  # qdrant-haystack opens a hybrid collection densely; Edge refuses, naming the switch
        with pytest.raises(CollectionLayoutError, match=r"'h' .* created for hybrid search.*open it with .*hybrid=True"):
            open_document_store(path=tmp_path / "q", collection="h", embedding_dim=64)
    with pytest.raises(TypeError, match="use its parameter hybrid= instead"):
        open_document_store(location=":memory:", embedding_dim=64, use_sparse_embeddings=True)


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_llama_index_hybrid_mode_equals_rrf_sync_and_async(symmetric_encoder_dir, encoder, tmp_path, engine):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode

    from laser_integrations.edge import stored_config
    from laser_integrations.llama_index import LaSEREmbedding

    sparse = BM25SparseEncoder.fit(list(TEXTS.values()))
    where = {"path": tmp_path} if engine == "edge" else {"location": ":memory:"}
    store = open_vector_store(**where, collection="li-hybrid", embedding_dim=64, hybrid=True, sparse_encoder=sparse)
    ids = {f"00000000-0000-0000-0000-{i:012d}": key for i, key in enumerate(TEXTS)}
    nodes = [TextNode(text=TEXTS[key], id_=node_id) for node_id, key in ids.items()]
    embed = LaSEREmbedding(str(symmetric_encoder_dir), device="cpu")
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed)
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=6, sparse_top_k=6, hybrid_top_k=6)
    for query in QUERIES:
        expected = expected_rrf(dense_scores(encoder, query), bm25s_scores(query))
        assert_ranked_as([(ids[h.node.node_id], h.score) for h in retriever.retrieve(query)], expected)
        assert_ranked_as([(ids[h.node.node_id], h.score) for h in asyncio.run(retriever.aretrieve(query))], expected)
    # the collection has Qdrant's IDF modifier on its sparse vector (BM25's IDF is Qdrant's to compute), named as
    # QdrantVectorStore names it
    if engine == "edge":
        assert stored_config(tmp_path / "li-hybrid")["sparse_vectors"] == {"text-sparse-new": {"modifier": "idf"}}
        store.close()
    else:
        sparse_config = store.client.get_collection("li-hybrid").config.params.sparse_vectors
        assert {n: c.modifier for n, c in sparse_config.items()} == {"text-sparse-new": models.Modifier.IDF}


def test_hybrid_query_uses_prefetch_depth(encoder):
    # A document found by only one search at depth 1 is fused in only when the prefetch goes deeper.
    client = open_client(location=":memory:")
    client.create_collection(
        "h", vectors_config={"d": models.VectorParams(size=2, distance=models.Distance.DOT)},
        sparse_vectors_config={"s": sparse_vector_params()},
    )  # fmt: skip
    sparse = BM25SparseEncoder()
    points = [("kraft inequality", [1.0, 0.0]), ("kraft", [0.0, 1.0]), ("entropy", [0.9, 0.1])]
    client.upsert("h", [
        models.PointStruct(id=i, vector={"d": v, "s": sparse.encode_documents([t])[0].to_qdrant()}) for i, (t, v) in enumerate(points)
    ])  # fmt: skip
    query = sparse.encode_queries(["kraft"])[0]
    shallow = hybrid_query(client, "h", [1.0, 0.0], query, limit=3, prefetch_limit=1, dense_name="d", sparse_name="s")
    deep = hybrid_query(client, "h", [1.0, 0.0], query, limit=3, prefetch_limit=3, dense_name="d", sparse_name="s")
    assert len(shallow) == 2 and len(deep) == 3
    with pytest.raises(ValueError, match="rrf_k must be a positive integer"):
        hybrid_query(client, "h", [1.0, 0.0], query, limit=3, rrf_k=0)


@pytest.mark.parametrize("alpha", [0.5, 0.2, 1.0])
def test_llama_index_fusion_equals_qdrants_weighted_rrf(alpha):
    # LlamaIndex fuses in Python; with alpha as weights (2 alpha dense, 2 (1 - alpha) sparse) it must rank as
    # Qdrant's own RRF with those weights does on the same two rankings.
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQueryResult

    from laser_integrations.hybrid import llama_index_rrf_fusion

    client = open_client(location=":memory:")
    client.create_collection(
        "w", vectors_config={"d": models.VectorParams(size=2, distance=models.Distance.DOT)},
        sparse_vectors_config={"s": sparse_vector_params()},
    )  # fmt: skip
    sparse = BM25SparseEncoder.fit(list(TEXTS.values()))
    rng = np.random.default_rng(0)
    client.upsert("w", [
        models.PointStruct(id=i, vector={"d": rng.normal(size=2).tolist(), "s": v.to_qdrant()})
        for i, v in enumerate(sparse.encode_documents(list(TEXTS.values())))
    ])  # fmt: skip
    dense_q, sparse_q = [1.0, 0.3], sparse.encode_queries([QUERIES[0]])[0].to_qdrant()
    dense_hits = client.query_points("w", query=dense_q, using="d", limit=6).points
    sparse_hits = client.query_points("w", query=sparse_q, using="s", limit=6).points
    as_result = lambda hits: VectorStoreQueryResult(  # noqa: E731
        nodes=[TextNode(text="", id_=str(p.id)) for p in hits], similarities=[p.score for p in hits], ids=[str(p.id) for p in hits]
    )
    fused = llama_index_rrf_fusion(as_result(dense_hits), as_result(sparse_hits), alpha=alpha, top_k=6)
    qdrant = client.query_points("w", prefetch=[
        models.Prefetch(query=dense_q, using="d", limit=6), models.Prefetch(query=sparse_q, using="s", limit=6),
    ], query=models.RrfQuery(rrf=models.Rrf(k=60, weights=[2 * alpha, 2 * (1 - alpha)])), limit=6).points  # fmt: skip
    got = dict(zip(fused.ids, fused.similarities))
    expected = {str(p.id): p.score for p in qdrant}
    assert got.keys() == expected.keys() and all(got[i] == pytest.approx(expected[i]) for i in got)
    with pytest.raises(ValueError, match="alpha must be between 0"):
        llama_index_rrf_fusion(as_result(dense_hits), as_result(sparse_hits), alpha=1.5)


def test_hybrid_retriever_takes_laser_retrievers_embedding_parameters(hybrid_store, symmetric_encoder_dir, encoder):
    import inspect

    from haystack_integrations.components.retrievers.laser import LaSERRetriever
    from haystack_integrations.components.retrievers.laser.retriever import EMBEDDER_PARAMETERS

    ours, theirs = (inspect.signature(c.__init__).parameters for c in (LaSERHybridRetriever, LaSERRetriever))
    for name in EMBEDDER_PARAMETERS:
        assert ours[name].default == theirs[name].default and ours[name].annotation == theirs[name].annotation, name
    # The query's token budget reaches the dense search: RRF of the dense ranking with that budget, and BM25's.
    query = "which code inequality bounds codeword lengths of a prefix code"
    short = encoder.encode_queries([query], max_length=28)[0]
    retriever = LaSERHybridRetriever(
        document_store=hybrid_store, model=str(symmetric_encoder_dir), device=ComponentDevice.from_str("cpu"),
        tokenizer_kwargs={"model_max_length": 28}, config_kwargs={"use_cache": True}, encode_kwargs={},
        top_k=10,
    )  # fmt: skip
    docs = encoder.encode_documents(list(TEXTS.values()))
    dense = dict(zip(TEXTS, (docs @ short).tolist()))
    full = dense_scores(encoder, query)
    assert sorted(dense, key=dense.get) != sorted(full, key=full.get)  # the budget changes the dense ranking
    hits = retriever.run(query=query)["documents"]
    assert_ranked_as([(d.id, d.score) for d in hits], expected_rrf(dense, bm25s_scores(query)))
    data = retriever.to_dict()
    params = data["init_parameters"]
    assert params["tokenizer_kwargs"] == {"model_max_length": 28} and params["config_kwargs"] == {"use_cache": True}
    assert {"truncate_dim", "precision", "encode_kwargs", "backend", "quantization_ranges"} <= params.keys()
    assert LaSERHybridRetriever.from_dict(data).to_dict() == data


def test_hybrid_retriever_refuses_what_cannot_work(hybrid_store, symmetric_encoder_dir):
    model = str(symmetric_encoder_dir)
    with pytest.raises(ValueError, match=r"precision='binary'\) cannot work: .*packed bits.*LaSERRetriever"):
        LaSERHybridRetriever(document_store=hybrid_store, model=model, precision="binary")
    with pytest.raises(ValueError, match="backend='onnx' is not supported"):
        LaSERHybridRetriever(document_store=hybrid_store, model=model, backend="onnx")
    truncated = LaSERHybridRetriever(document_store=hybrid_store, model=model, truncate_dim=32,
                                     device=ComponentDevice.from_str("cpu"))  # fmt: skip
    with pytest.raises(ValueError, match=r"embedding_dim=64, but .* embeds into 32 dimensions \(after truncate_dim\)"):
        truncated.run(query="prime numbers")


# ---- Qdrant Edge: the fusion, the layout and the reopened folder, against rankings computed apart ----------------


def ranking(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: -scores[d])


def test_edge_hybrid_query_is_rrf_of_dense_and_bm25_and_survives_reopening(encoder, tmp_path):
    sparse = BM25SparseEncoder.fit(list(TEXTS.values()))
    store = open_document_store(path=tmp_path, collection="h", embedding_dim=64, hybrid=True, return_embedding=True)
    written = [
        Document(id=key, content=text, embedding=dense.tolist(), sparse_embedding=terms.to_haystack())
        for (key, text), dense, terms in zip(
            TEXTS.items(), encoder.encode_documents(list(TEXTS.values())), sparse.encode_documents(list(TEXTS.values()))
        )
    ]  # fmt: skip
    store.write_documents(written)

    def search(query: str, **kwargs) -> dict[str, float]:
        dense_q = encoder.encode_queries([query])[0].tolist()
        hits = store._query_hybrid(dense_q, sparse.encode_queries([query])[0].to_haystack(), top_k=6, **kwargs)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        return {h.id: h.score for h in hits}

    def assert_scores(got: dict[str, float], expected: dict[str, float]) -> None:
        assert got.keys() == expected.keys()
        assert all(got[d] == pytest.approx(expected[d], rel=1e-5) for d in got), (got, expected)

    before = {}
    for query in QUERIES:
        dense, bm25 = ranking(dense_scores(encoder, query)), ranking(bm25s_scores(query))
        # qdrant-haystack's order: [sparse, dense] prefetches, and rrf_weights in that order
        got = search(query, rrf_k=5, rrf_weights=[0.5, 1.5], prefetch_limit=6)
        assert_scores(got, rrf_scores([bm25, dense], k=5, weights=[0.5, 1.5]))
        before[query] = search(query)  # qdrant-haystack's defaults: Qdrant's k (2), prefetches 10 deep
        assert_scores(before[query], rrf_scores([bm25, dense], k=2))
        # a shallow prefetch fuses only what each search found that deep
        assert_scores(search(query, rrf_k=60, prefetch_limit=1), rrf_scores([bm25[:1], dense[:1]], k=60))
    with pytest.raises(ValueError, match=r"rrf_weights must be \[sparse_weight, dense_weight\]"):
        search(QUERIES[0], rrf_weights=[1.0])
    with pytest.raises(ValueError, match="group_by/group_size are not supported by Qdrant Edge"):
        search(QUERIES[0], group_by="meta.topic")
    store.close()

    # Reopened (another store object, as another process would): the sparse vectors and the ranking are kept.
    again = open_document_store(path=tmp_path, collection="h", embedding_dim=64, hybrid=True, return_embedding=True)
    assert again.to_dict()["init_parameters"]["use_sparse_embeddings"] is True
    assert type(again).from_dict(again.to_dict()).use_sparse_embeddings is True
    read = {d.id: d for d in again.filter_documents()}
    for document in written:
        assert read[document.id].sparse_embedding.indices == document.sparse_embedding.indices
        assert read[document.id].sparse_embedding.values == pytest.approx(document.sparse_embedding.values, rel=1e-6)
        assert read[document.id].embedding == pytest.approx(document.embedding, rel=1e-6)
    store = again
    for query in QUERIES:
        assert_scores(search(query), before[query])
    dense_store = open_document_store(path=tmp_path, collection="d", embedding_dim=64)
    with pytest.raises(ValueError, match=r"use_sparse_embeddings=False; open it with use_sparse_embeddings=True"):
        dense_store._query_hybrid([0.0] * 64, written[0].sparse_embedding)
    dense_store.close()
    again.close()


def test_same_corpus_ranks_alike_through_haystack_and_llama_index_on_edge(symmetric_encoder_dir, tmp_path):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode

    from laser_integrations.llama_index import LaSEREmbedding

    sparse = BM25SparseEncoder.fit(list(TEXTS.values()))
    cpu = ComponentDevice.from_str("cpu")
    store = open_document_store(path=tmp_path, collection="haystack", embedding_dim=64, hybrid=True)
    documents = [Document(id=k, content=t) for k, t in TEXTS.items()]
    documents = LaSERDocumentEmbedder(model=str(symmetric_encoder_dir), device=cpu, progress_bar=False).run(documents)["documents"]
    store.write_documents(BM25SparseDocumentEmbedder(avg_doc_length=sparse.avg_doc_length).run(documents)["documents"])
    retriever = LaSERHybridRetriever(document_store=store, model=str(symmetric_encoder_dir), device=cpu, top_k=6)

    vector_store = open_vector_store(path=tmp_path, collection="llama", embedding_dim=64, hybrid=True, sparse_encoder=sparse)
    ids = {f"00000000-0000-0000-0000-{i:012d}": key for i, key in enumerate(TEXTS)}
    index = VectorStoreIndex(
        [TextNode(text=TEXTS[key], id_=node_id) for node_id, key in ids.items()],
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=LaSEREmbedding(str(symmetric_encoder_dir), device="cpu"),
    )  # fmt: skip
    # Haystack's prefetches go max(top_k, 10) deep: LlamaIndex's two searches as deep.
    hybrid = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=10, sparse_top_k=10, hybrid_top_k=6)
    for query in QUERIES:
        haystack_hits = {d.id: d.score for d in retriever.run(query=query)["documents"]}
        llama_hits = {ids[h.node.node_id]: h.score for h in hybrid.retrieve(query)}
        assert llama_hits.keys() == haystack_hits.keys()
        assert all(llama_hits[k] == pytest.approx(haystack_hits[k], rel=1e-5) for k in llama_hits)
        # the sparse mode alone is BM25 (Qdrant's IDF times our term weights), as bm25s scores it
        result = vector_store.query(VectorStoreQuery(query_str=query, mode=VectorStoreQueryMode.SPARSE, similarity_top_k=10))
        got = {ids[i]: s for i, s in zip(result.ids, result.similarities)}
        expected = bm25s_scores(query)
        assert got.keys() == expected.keys() and all(got[k] == pytest.approx(expected[k], rel=1e-5) for k in got)
    store.close()
    vector_store.close()


def test_edge_vector_store_layouts_are_checked(tmp_path):
    from llama_index.core.schema import TextNode

    from laser_integrations.edge_vector_store import QdrantEdgeVectorStore

    dense = open_vector_store(path=tmp_path, collection="dense", embedding_dim=2)
    dense.add([TextNode(text="prime numbers", embedding=[1.0, 0.0])])
    with pytest.raises(ValueError, match=r"answers the query modes \['default'\] \(hybrid and sparse need enable_hybrid"):
        dense.query(VectorStoreQuery(query_str="prime", query_embedding=[1.0, 0.0], mode=VectorStoreQueryMode.HYBRID))
    dense.close()
    with pytest.raises(CollectionLayoutError, match=r"'dense' .* without sparse BM25 vectors.*enable_hybrid=True / hybrid=True"):
        open_vector_store(path=tmp_path, collection="dense", embedding_dim=2, hybrid=True)
    hybrid = open_vector_store(path=tmp_path, collection="hybrid", embedding_dim=2, hybrid=True)
    hybrid.add([TextNode(text="prime numbers", embedding=[1.0, 0.0])])
    with pytest.raises(ValueError, match="needs query_str"):
        hybrid.query(VectorStoreQuery(query_embedding=[1.0, 0.0], mode=VectorStoreQueryMode.HYBRID))
    hybrid.close()
    with pytest.raises(CollectionLayoutError, match=r"'hybrid' .* created for hybrid search.*enable_hybrid=True"):
        open_vector_store(path=tmp_path, collection="hybrid", embedding_dim=2)
    # A Haystack hybrid shard (its sparse vector is "text-sparse") opens read only in Haystack's layout, and is
    # refused when LlamaIndex's layout is asked for: never mixed into.
    open_document_store(path=tmp_path, collection="haystack", embedding_dim=2, hybrid=True).close()
    haystack = open_vector_store(path=tmp_path, collection="haystack", embedding_dim=2, hybrid=True)
    assert haystack.layout == "haystack"
    with pytest.raises(ValueError, match=r"cannot add nodes: .* was written by Haystack"):
        haystack.add([TextNode(text="prime numbers", embedding=[1.0, 0.0])])
    haystack.close()
    with pytest.raises(ValueError, match=r"no sparse vector 'text-sparse-new'.*another layout"):
        open_vector_store(path=tmp_path, collection="haystack", embedding_dim=2, hybrid=True, payload_layout="llama_index")
    with pytest.raises(ValueError, match="serve hybrid search only; pass enable_hybrid=True"):
        QdrantEdgeVectorStore(path=tmp_path, collection_name="x", sparse_doc_fn=BM25SparseEncoder().llama_index_doc_fn)
