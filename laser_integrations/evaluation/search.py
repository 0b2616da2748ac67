"""Exact top-k search over embeddings: in memory (numpy) or through Qdrant, with the same results.

Both backends return, for each query, its top ``top_k`` documents by dot product (cosine for the normalised
embeddings every model here produces), best first, as ``{document id: score}`` in rank order.
"""

from __future__ import annotations

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
    """Exact search through the project's Qdrant opener (an in-memory collection, ``SearchParams(exact=True)``).

    The collection uses the dot product, so scores equal :func:`search_memory`'s on the same vectors.
    """
    from qdrant_client import models

    from ..qdrant import open_client

    queries, documents = np.asarray(queries, dtype=np.float32), np.asarray(documents, dtype=np.float32)
    _check_inputs(queries, documents, doc_ids, top_k)
    client = open_client(location=":memory:")
    collection = f"laser-eval-{uuid.uuid4().hex[:8]}"
    try:
        client.create_collection(
            collection, vectors_config=models.VectorParams(size=documents.shape[1], distance=models.Distance.DOT)
        )
        # Point ids are row numbers; the string ids stay here, so any id format works.
        client.upload_points(
            collection,
            (models.PointStruct(id=i, vector=vec.tolist()) for i, vec in enumerate(documents)),
            batch_size=batch_size,
        )
        params = models.SearchParams(exact=True)
        k = min(top_k, len(doc_ids))
        results: list[dict[str, float]] = []
        for start in range(0, len(queries), batch_size):
            requests = [
                models.QueryRequest(query=q.tolist(), limit=k, params=params)
                for q in queries[start : start + batch_size]
            ]
            with warnings.catch_warnings():
                # Embedded Qdrant is always exact and says so on every call; exact=True matters for servers.
                warnings.filterwarnings("ignore", message="Local mode performs exact", category=UserWarning)
                responses = client.query_batch_points(collection, requests)
            for response in responses:
                ranked = sorted(response.points, key=lambda p: (-p.score, int(p.id)))  # same tie order as memory
                results.append({doc_ids[int(p.id)]: float(p.score) for p in ranked})
        return results
    finally:
        client.close()


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
        backend: ``"memory"`` (numpy) or ``"qdrant"`` (an exact search in an in-memory Qdrant collection).
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
    from qdrant_client import models

    from ..hybrid import DENSE_VECTOR_NAME, SPARSE_VECTOR_NAME, hybrid_request
    from ..qdrant import open_client
    from ..sparse import BM25SparseEncoder, sparse_vector_params

    queries, documents = np.asarray(queries, dtype=np.float32), np.asarray(documents, dtype=np.float32)
    _check_inputs(queries, documents, doc_ids, top_k)
    if len(query_texts) != len(queries) or len(doc_texts) != len(documents):
        msg = "search_hybrid needs one text per query and per document embedding."
        raise ValueError(msg)
    sparse = BM25SparseEncoder.fit(doc_texts)
    client = open_client(location=":memory:")
    collection = f"laser-eval-hybrid-{uuid.uuid4().hex[:8]}"
    try:
        client.create_collection(
            collection,
            vectors_config={DENSE_VECTOR_NAME: models.VectorParams(size=documents.shape[1], distance=models.Distance.DOT)},
            sparse_vectors_config={SPARSE_VECTOR_NAME: sparse_vector_params()},
        )
        client.upload_points(
            collection,
            (
                models.PointStruct(id=i, vector={DENSE_VECTOR_NAME: vec.tolist(), SPARSE_VECTOR_NAME: terms.to_qdrant()})
                for i, (vec, terms) in enumerate(zip(documents, sparse.encode_documents(doc_texts)))
            ),
            batch_size=batch_size,
        )
        k = min(top_k, len(doc_ids))
        query_sparse = sparse.encode_queries(query_texts)
        results: list[dict[str, float]] = []
        for start in range(0, len(queries), batch_size):
            requests = [
                hybrid_request(q, s, limit=k, prefetch_limit=k, with_payload=False)
                for q, s in zip(queries[start : start + batch_size], query_sparse[start : start + batch_size])
            ]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Local mode performs exact", category=UserWarning)
                responses = client.query_batch_points(collection, requests)
            for response in responses:
                results.append({doc_ids[int(p.id)]: float(p.score) for p in response.points})
        return results
    finally:
        client.close()
