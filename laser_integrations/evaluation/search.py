"""Exact top-k search over embeddings: in memory (numpy) or through the store layer's Qdrant, with the same results.

Both backends return, for each query, its top ``top_k`` documents by dot product (cosine for the normalised
embeddings every model here produces), best first, as ``{document id: score}`` in rank order.
"""

from __future__ import annotations

import tempfile
import uuid
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

SearchBackend = Literal["memory", "qdrant"]
SEARCH_BACKENDS: tuple[str, ...] = ("memory", "qdrant")


def _check_inputs(queries: np.ndarray, documents: np.ndarray, doc_ids: Sequence[str], top_k: int) -> None:
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        msg = (
            f"queries and documents must be 2-D with the same width, got shapes {queries.shape} and {documents.shape}."
        )
        raise ValueError(msg)
    if len(doc_ids) != len(documents):
        msg = f"{len(doc_ids)} document ids for {len(documents)} document embeddings; pass one id per row."
        raise ValueError(msg)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        msg = f"top_k must be a positive integer, got {top_k!r}."
        raise ValueError(msg)


def search_memory(
    queries: np.ndarray, documents: np.ndarray, doc_ids: Sequence[str], top_k: int, *, chunk_size: int = 256
) -> list[dict[str, float]]:
    """Exact search with numpy: a matrix product, chunked over queries to bound memory."""
    queries, documents = np.asarray(queries, dtype=np.float32), np.asarray(documents, dtype=np.float32)
    _check_inputs(queries, documents, doc_ids, top_k)
    k = min(top_k, len(doc_ids))
    results: list[dict[str, float]] = []
    for start in range(0, len(queries), chunk_size):
        scores = queries[start : start + chunk_size] @ documents.T
        for row in scores:
            # argpartition for the k best, then a stable sort so ties keep corpus order (deterministic runs).
            top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            top = top[np.lexsort((top, -row[top]))]
            results.append({doc_ids[i]: float(row[i]) for i in top})
    return results


def search_qdrant(
    queries: np.ndarray, documents: np.ndarray, doc_ids: Sequence[str], top_k: int, *, batch_size: int = 256
) -> list[dict[str, float]]:
    """Exact search through the project's store layer: a Qdrant Edge shard (the embedded default of
    :func:`~laser_integrations.qdrant.open_document_store`) in a temporary folder, searched with
    ``search_params={"exact": True}`` by Qdrant's own engine.

    The collection uses the dot product, so scores equal :func:`search_memory`'s on the same vectors.
    """
    from haystack import Document

    from ..qdrant import open_document_store

    queries, documents = np.asarray(queries, dtype=np.float32), np.asarray(documents, dtype=np.float32)
    _check_inputs(queries, documents, doc_ids, top_k)
    k = min(top_k, len(doc_ids))
    with tempfile.TemporaryDirectory(prefix="laser-eval-") as folder:
        store = open_document_store(path=folder, collection="eval", embedding_dim=documents.shape[1],
                                    similarity="dot_product", search_params={"exact": True},
                                    optimize_after_write=False, write_batch_size=batch_size)  # fmt: skip
        try:
            # Document ids are row numbers; the string ids stay here, so any id format works.
            for start in range(0, len(documents), batch_size):
                rows = documents[start : start + batch_size]
                store.write_documents([Document(id=str(start + i), embedding=vec.tolist()) for i, vec in enumerate(rows)])
            results: list[dict[str, float]] = []
            for query in queries:
                hits = store.query_by_embedding(query.tolist(), top_k=k)
                ranked = sorted(hits, key=lambda d: (-d.score, int(d.id)))  # the same tie order as search_memory
                results.append({doc_ids[int(d.id)]: float(d.score) for d in ranked})
            return results
        finally:
            store.close()


def exact_search(
    queries: np.ndarray,
    documents: np.ndarray,
    doc_ids: Sequence[str],
    top_k: int,
    *,
    backend: SearchBackend = "memory",
) -> list[dict[str, float]]:
    """Top ``top_k`` documents for each query, best first, by exact dot product.

    Args:
        queries: ``(n_queries, dim)`` embeddings.
        documents: ``(n_documents, dim)`` embeddings.
        doc_ids: one id per document row.
        top_k: documents to return per query (fewer when the corpus is smaller).
        backend: ``"memory"`` (numpy) or ``"qdrant"`` (an exact search by Qdrant Edge, :func:`search_qdrant`).
    """
    if backend == "memory":
        return search_memory(queries, documents, doc_ids, top_k)
    if backend == "qdrant":
        return search_qdrant(queries, documents, doc_ids, top_k)
    msg = f"Invalid search backend {backend!r}. Valid backends are: {list(SEARCH_BACKENDS)}."
    raise ValueError(msg)


def search_hybrid(
    queries: np.ndarray,
    documents: np.ndarray,
    query_texts: Sequence[str],
    doc_texts: Sequence[str],
    doc_ids: Sequence[str],
    top_k: int,
    *,
    batch_size: int = 256,
) -> list[dict[str, float]]:
    """Hybrid search through Qdrant, as ``laser search --hybrid`` does: each query's dense embedding and its BM25
    sparse vector (``laser_integrations.sparse``, ``avg_doc_length`` fitted on ``doc_texts``) in one in-memory
    collection, each search ``top_k`` deep, fused by RRF (``laser_integrations.hybrid``). Scores are RRF scores."""
    from haystack import Document

    from ..hybrid import hybrid_request
    from ..qdrant import open_document_store
    from ..sparse import BM25SparseEncoder

    queries, documents = np.asarray(queries, dtype=np.float32), np.asarray(documents, dtype=np.float32)
    _check_inputs(queries, documents, doc_ids, top_k)
    if len(query_texts) != len(queries) or len(doc_texts) != len(documents):
        msg = "search_hybrid needs one text per query and per document embedding."
        raise ValueError(msg)
    sparse = BM25SparseEncoder.fit(doc_texts)
    # The store layer's hybrid collection (dense + sparse BM25 with Qdrant's IDF), in memory: qdrant-client's local
    # mode, as `laser search --hybrid` searches it (hybrid search on Qdrant Edge is not available yet).
    store = open_document_store(location=":memory:", collection=f"laser-eval-hybrid-{uuid.uuid4().hex[:8]}",
                                embedding_dim=documents.shape[1], similarity="dot_product", hybrid=True,
                                progress_bar=False, write_batch_size=batch_size)  # fmt: skip
    try:
        store.write_documents([
            Document(id=str(i), embedding=vec.tolist(), sparse_embedding=terms.to_haystack(), meta={"row": i})
            for i, (vec, terms) in enumerate(zip(documents, sparse.encode_documents(doc_texts)))
        ])  # fmt: skip
        store._initialize_client()  # noqa: SLF001 - as LaSERHybridRetriever queries it: one fused request
        client, collection = store._client, store.index  # noqa: SLF001
        k = min(top_k, len(doc_ids))
        query_sparse = sparse.encode_queries(query_texts)
        results: list[dict[str, float]] = []
        for start in range(0, len(queries), batch_size):
            requests = [
                hybrid_request(q, s, limit=k, prefetch_limit=k, with_payload=["meta"])
                for q, s in zip(queries[start : start + batch_size], query_sparse[start : start + batch_size])
            ]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Local mode performs exact", category=UserWarning)
                responses = client.query_batch_points(collection, requests)
            for response in responses:
                # Point ids are uuid5 of Document.id (qdrant-haystack's); the row number is in the payload.
                results.append({doc_ids[p.payload["meta"]["row"]]: float(p.score) for p in response.points})
        return results
    finally:
        store.close()
