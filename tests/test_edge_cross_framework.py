"""One Qdrant Edge folder, written by Haystack (`laser index`), searched from LlamaIndex: the same ids and scores."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import bm25s
import numpy as np
import pytest

pytest.importorskip("qdrant_edge")

from haystack.utils import ComponentDevice  # noqa: E402
from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters  # noqa: E402

from haystack_integrations.components.retrievers.laser import LaSERHybridRetriever, LaSERRetriever  # noqa: E402
from laser_integrations import LaSEREncoder  # noqa: E402
from laser_integrations.cli.main import main  # noqa: E402
from laser_integrations.edge_vector_store import QdrantEdgeVectorStore  # noqa: E402
from laser_integrations.llama_index import LaSEREmbedding  # noqa: E402
from laser_integrations.provenance import ProvenanceMismatchError  # noqa: E402
from laser_integrations.qdrant import CollectionDimensionError, open_document_store, open_vector_store  # noqa: E402

CORPUS = {
    "primes": ("Numbers", "the prime numbers are divisible only by one and themselves"),
    "kraft": ("Codes", "a prefix code satisfies the kraft inequality on codeword lengths of a prefix code"),
    "entropy": ("Codes", "entropy measures the average information of a random variable"),
    "product": ("Calculus", "the derivative of a product follows the product rule"),
    "bayes": ("Probability", "bayes theorem updates a prior with a likelihood of the data"),
    "integral": ("Calculus", "the integral of a derivative recovers the function up to a constant"),
    "huffman": ("Codes", "huffman coding builds an optimal prefix code from symbol frequencies"),
    "limits": ("Calculus", "a limit describes the value a function approaches"),
}
QUERIES = ["which code inequality bounds codeword lengths", "derivative of a product of functions", "prime numbers"]
N = len(CORPUS)
DIM = 64
RRF_K = 60  # LaSERHybridRetriever's and llama_index_rrf_fusion's default


@pytest.fixture(scope="module")
def folder(symmetric_encoder_dir, tmp_path_factory):
    """`laser index` (Haystack's layout) into two collections of one folder: "dense" and "hybrid" (--hybrid)."""
    root = tmp_path_factory.mktemp("cross")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in CORPUS.items()))
    for collection, extra in (("dense", []), ("hybrid", ["--hybrid"])):
        # --no-title: the embedded text is the text alone, so the numpy ranking below can embed it independently
        argv = ["index", str(corpus), "--model", str(symmetric_encoder_dir), "--path", str(root / "qdrant"),
                "--collection", collection, "--no-title", "--no-progress", *extra]  # fmt: skip
        assert main(argv) == 0
    return root / "qdrant"


@pytest.fixture(scope="module")
def symmetric(symmetric_encoder_dir) -> LaSEREncoder:
    return LaSEREncoder.from_pretrained(symmetric_encoder_dir, device="cpu")


def numpy_cosine(encoder: LaSEREncoder, query: str, keep=lambda key: True) -> list[tuple[str, float]]:
    """Exact cosine ranking computed here from the model (the stored vectors are not read)."""
    keys = [k for k in CORPUS if keep(k)]
    docs = encoder.encode_documents([CORPUS[k][1] for k in keys])
    q = encoder.encode_queries([query])[0]
    scores = docs @ q / np.linalg.norm(docs, axis=1) / np.linalg.norm(q)
    return sorted(zip(keys, scores.tolist()), key=lambda item: -item[1])


def haystack_hits(folder, model_dir, query: str, *, hybrid: bool = False, **run_kwargs) -> list[tuple[str, float]]:
    store = open_document_store(path=folder, collection="hybrid" if hybrid else "dense", embedding_dim=DIM,
                                hybrid=hybrid, read_only=True, progress_bar=False)  # fmt: skip
    kind = LaSERHybridRetriever if hybrid else LaSERRetriever
    retriever = kind(document_store=store, model=str(model_dir), device=ComponentDevice.from_str("cpu"), top_k=N)
    try:
        return [(d.id, d.score) for d in retriever.run(query=query, **run_kwargs)["documents"]]
    finally:
        store.close()


def llama_store(folder, model_dir, collection: str = "dense", **kwargs) -> tuple[QdrantEdgeVectorStore, LaSEREmbedding]:
    embed = LaSEREmbedding(str(model_dir), device="cpu")
    return open_vector_store(path=folder, collection=collection, embed_model=embed, **kwargs), embed


def test_llama_index_reads_laser_index_folder_with_haystacks_ids_and_scores(folder, symmetric_encoder_dir, symmetric):
    # Haystack first: one process opens an Edge folder at a time (here: one store at a time).
    haystack_by_query = {query: haystack_hits(folder, symmetric_encoder_dir, query) for query in QUERIES}
    store, embed = llama_store(folder, symmetric_encoder_dir)
    assert store.layout == "haystack" and store.embedding_dim == DIM  # detected from the shard, not given
    retriever = VectorStoreIndex.from_vector_store(store, embed_model=embed).as_retriever(similarity_top_k=N)
    try:
        for query in QUERIES:
            hits = retriever.retrieve(query)
            got = [(h.node.node_id, h.score) for h in hits]
            expected = numpy_cosine(symmetric, query)
            assert [i for i, _ in got] == [i for i, _ in expected]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-4)
            haystack = haystack_by_query[query]
            assert [i for i, _ in got] == [i for i, _ in haystack]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in haystack], atol=1e-6)
            for hit in hits:  # the Haystack payload as a TextNode: id, content, meta
                title, text = CORPUS[hit.node.node_id]
                assert isinstance(hit.node, TextNode) and hit.node.text == text
                assert hit.node.metadata["title"] == title and "laser_sha256" in hit.node.metadata
        nodes = store.get_nodes(node_ids=["kraft", "bayes"])
        assert sorted(n.node_id for n in nodes) == ["bayes", "kraft"]
        stored = symmetric.encode_documents([CORPUS[n.node_id][1] for n in nodes])
        np.testing.assert_allclose([n.embedding for n in nodes], stored / np.linalg.norm(stored, axis=1)[:, None],
                                   atol=1e-3)  # fmt: skip  (int8-quantized shard: the float originals come back)
        assert len(store.get_nodes()) == N
    finally:
        store.close()


def test_metadata_filters_apply_to_haystack_meta(folder, symmetric_encoder_dir, symmetric):
    query = QUERIES[1]
    cases = [
        (MetadataFilter(key="title", value="Calculus"), {"field": "meta.title", "operator": "==", "value": "Calculus"},
         lambda k: CORPUS[k][0] == "Calculus"),
        (MetadataFilter(key="title", value=["Codes", "Numbers"], operator=FilterOperator.IN),
         {"field": "meta.title", "operator": "in", "value": ["Codes", "Numbers"]},
         lambda k: CORPUS[k][0] in ("Codes", "Numbers")),
    ]  # fmt: skip
    haystack_by_case = [haystack_hits(folder, symmetric_encoder_dir, query, filters=f) for _, f, _ in cases]
    store, embed = llama_store(folder, symmetric_encoder_dir)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    try:
        for (llama_filter, _, keep), haystack in zip(cases, haystack_by_case, strict=True):
            retriever = index.as_retriever(similarity_top_k=N, filters=MetadataFilters(filters=[llama_filter]))
            got = [(h.node.node_id, h.score) for h in retriever.retrieve(query)]
            expected = numpy_cosine(symmetric, query, keep)
            assert [i for i, _ in got] == [i for i, _ in expected]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-4)
            assert [i for i, _ in got] == [i for i, _ in haystack]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in haystack], atol=1e-6)
    finally:
        store.close()


def test_hybrid_mode_matches_haystacks_hybrid_retriever_and_bm25(folder, symmetric_encoder_dir, symmetric):
    haystack_by_query = {q: dict(haystack_hits(folder, symmetric_encoder_dir, q, hybrid=True)) for q in QUERIES}
    store, embed = llama_store(folder, symmetric_encoder_dir, collection="hybrid", hybrid=True)
    assert store.layout == "haystack"
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    hybrid = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=N, sparse_top_k=N, hybrid_top_k=N)
    sparse = index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=N, sparse_top_k=N)
    bm25 = bm25s.BM25(k1=1.5, b=0.75)
    corpus_tokens = bm25s.tokenize([t for _, t in CORPUS.values()], stopwords="en", show_progress=False)
    bm25.index(corpus_tokens, show_progress=False)
    try:
        for query in QUERIES:
            # sparse alone: "text-sparse" with the BM25 query vector laser search uses: bm25s's scores
            tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
            want = {k: float(s) for k, s in zip(CORPUS, bm25.get_scores(tokens)) if s > 0}
            got = {h.node.node_id: h.score for h in sparse.retrieve(query)}
            assert got == pytest.approx(want, rel=1e-5)
            # hybrid: RRF of the dense and the sparse ranking, as Haystack's LaSERHybridRetriever fuses them
            fused = {h.node.node_id: h.score for h in hybrid.retrieve(query)}
            expected: dict[str, float] = {}
            for ranking in ([k for k, _ in numpy_cosine(symmetric, query)], sorted(want, key=lambda k: -want[k])):
                for position, key in enumerate(ranking):
                    expected[key] = expected.get(key, 0.0) + 1.0 / (position + RRF_K)
            assert fused == pytest.approx(expected, rel=1e-6)
            assert fused == pytest.approx(haystack_by_query[query], rel=1e-6)
    finally:
        store.close()


def test_writes_to_a_haystack_folder_are_refused(folder, symmetric_encoder_dir):
    store, _ = llama_store(folder, symmetric_encoder_dir)
    refusal = r"was written by Haystack \(QdrantEdgeDocumentStore / `laser index`\).*`laser index CORPUS"
    try:
        with pytest.raises(ValueError, match="cannot add nodes: .*" + refusal):
            store.add([TextNode(id_="new", text="x", embedding=[0.1] * DIM)])
        with pytest.raises(ValueError, match="cannot delete a document's nodes: .*" + refusal):
            store.delete("kraft")
        with pytest.raises(ValueError, match="cannot delete nodes: .*" + refusal):
            store.delete_nodes(node_ids=["kraft"])
        with pytest.raises(ValueError, match="cannot clear the collection: .*" + refusal):
            store.clear()
        assert sorted(n.node_id for n in store.get_nodes()) == sorted(CORPUS)  # nothing was written or deleted
    finally:
        store.close()
    with pytest.raises(CollectionDimensionError, match="written with another layout"):
        QdrantEdgeVectorStore(path=folder, collection_name="dense", payload_layout="llama_index").open()
    with pytest.raises(ValueError, match="only reads it and cannot take hnsw_config"):
        QdrantEdgeVectorStore(path=folder, collection_name="dense", hnsw_config={"m": 8}).open()
    llama = QdrantEdgeVectorStore(path=folder.parent / "li", collection_name="nodes")
    llama.add([TextNode(id_="n", text="x", embedding=[0.1] * DIM)])
    llama.close()
    with pytest.raises(ValueError, match=r"payload_layout='haystack' .* holds another layout"):
        QdrantEdgeVectorStore(path=folder.parent / "li", collection_name="nodes", payload_layout="haystack").open()
    assert QdrantEdgeVectorStore(path=folder.parent / "li", collection_name="nodes").get_nodes()[0].node_id == "n"


def test_another_model_is_refused(folder, encoder_dir):
    # The reader's check still applies: the tiny model of another seed has the same dimension, other weights.
    with pytest.raises(ProvenanceMismatchError, match="weights fingerprint"):
        llama_store(folder, encoder_dir)


_CHILD = textwrap.dedent("""
    import json, sys
    from llama_index.core import VectorStoreIndex
    from laser_integrations.llama_index import LaSEREmbedding
    from laser_integrations.qdrant import open_vector_store
    embed = LaSEREmbedding(sys.argv[2], device="cpu")
    store = open_vector_store(path=sys.argv[1], collection="dense", embed_model=embed)
    retriever = VectorStoreIndex.from_vector_store(store, embed_model=embed).as_retriever(similarity_top_k=3)
    hits = retriever.retrieve(sys.argv[3])
    store.close()
    print(json.dumps([[h.node.node_id, h.score] for h in hits]))
""")


def test_reopened_in_a_second_process_after_the_first_closed(folder, symmetric_encoder_dir):
    store, embed = llama_store(folder, symmetric_encoder_dir)
    retriever = VectorStoreIndex.from_vector_store(store, embed_model=embed).as_retriever(similarity_top_k=3)
    hits = retriever.retrieve(QUERIES[0])
    store.close()
    child = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(symmetric_encoder_dir), QUERIES[0]],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    again = json.loads(child.stdout.strip().splitlines()[-1])
    assert [i for i, _ in again] == [h.node.node_id for h in hits]
    np.testing.assert_allclose([s for _, s in again], [h.score for h in hits], atol=1e-6)
