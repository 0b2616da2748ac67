"""Hybrid search: dense LaSER vectors and sparse BM25 vectors of one Qdrant collection, fused by RRF.

One query through Qdrant's query API: two prefetches (the dense and the sparse vector, each ``prefetch_limit``
deep) fused with Reciprocal Rank Fusion as Qdrant computes it: a point at
0-based position ``p`` of a ranking contributes ``1 / ((p + 1) / w + k - 1)`` (``w = 1`` unweighted, so
``1 / (p + k)``). The same client call runs on embedded Qdrant (qdrant-client's local mode) and on a server.

LlamaIndex's ``QdrantVectorStore`` runs the two searches itself and hands both rankings to a fusion function:
:func:`llama_index_rrf_fusion` is that function, with Qdrant's formula, so the three integrations rank alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Reciprocal Rank Fusion's constant (Cormack et al., 2009), passed to Qdrant explicitly so every path uses it.
DEFAULT_RRF_K = 60
# Vector names in a hybrid collection: qdrant-haystack's (DENSE_VECTORS_NAME, SPARSE_VECTORS_NAME), which the CLI
# writes through; LlamaIndex names its own ("text-dense", "text-sparse-new").
DENSE_VECTOR_NAME = "text-dense"
SPARSE_VECTOR_NAME = "text-sparse"


def validate_rrf(rrf_k: int, prefetch_limit: int | None = None) -> None:
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 1:
        msg = f"rrf_k must be a positive integer (RRF's constant; {DEFAULT_RRF_K} is the usual value), got {rrf_k!r}."
        raise ValueError(msg)
    if prefetch_limit is not None and (
        isinstance(prefetch_limit, bool) or not isinstance(prefetch_limit, int) or prefetch_limit < 1
    ):
        msg = f"prefetch_limit must be a positive integer, got {prefetch_limit!r}."
        raise ValueError(msg)


def hybrid_request(
    dense: Sequence[float],
    sparse: Any,
    *,
    limit: int,
    prefetch_limit: int | None = None,
    rrf_k: int = DEFAULT_RRF_K,
    dense_name: str = DENSE_VECTOR_NAME,
    sparse_name: str = SPARSE_VECTOR_NAME,
    query_filter: Any = None,
    with_payload: bool = True,
    with_vectors: bool = False,
    score_threshold: float | None = None,
) -> Any:
    """A ``QueryRequest`` for one hybrid search (for ``query_batch_points``); see :func:`hybrid_query`."""
    from qdrant_client import models

    validate_rrf(rrf_k, prefetch_limit)
    depth = prefetch_limit or limit
    sparse_vector = sparse.to_qdrant() if hasattr(sparse, "to_qdrant") else sparse
    return models.QueryRequest(
        prefetch=[
            models.Prefetch(query=list(map(float, dense)), using=dense_name, limit=depth, filter=query_filter),
            models.Prefetch(query=sparse_vector, using=sparse_name, limit=depth, filter=query_filter),
        ],
        query=models.RrfQuery(rrf=models.Rrf(k=rrf_k)),
        limit=limit,
        with_payload=with_payload,
        with_vector=with_vectors,
        score_threshold=score_threshold,
    )


def hybrid_query(client: Any, collection: str, dense: Sequence[float], sparse: Any, **kwargs: Any) -> list[Any]:
    """The points of ``collection`` best by RRF over a dense and a sparse search, best first.

    Args:
        client: a ``QdrantClient`` (embedded or server).
        collection: a collection with a dense vector ``dense_name`` and a sparse vector ``sparse_name``.
        dense: the query's dense embedding.
        sparse: the query's sparse vector (:class:`~laser_integrations.sparse.SparseTerms` or Qdrant's).
        **kwargs: ``limit`` (required), ``prefetch_limit`` (each search's depth; default ``limit``), ``rrf_k``,
            ``dense_name``, ``sparse_name``, ``query_filter``, ``with_payload``, ``with_vectors``,
            ``score_threshold`` (on the fused RRF score).
    """
    request = hybrid_request(dense, sparse, **kwargs)
    return client.query_batch_points(collection, [request])[0].points


def rrf_scores(rankings: Sequence[Sequence[Any]], *, k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None) -> dict[Any, float]:
    """Qdrant's RRF score of every id in ``rankings`` (each a list of ids, best first)."""
    validate_rrf(k)
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        msg = f"{len(weights)} weights for {len(rankings)} rankings; give one weight per ranking."
        raise ValueError(msg)
    scores: dict[Any, float] = {}
    for ranking, weight in zip(rankings, weights):
        if weight <= 0:
            continue
        for position, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / ((position + 1.0) / weight + k - 1.0)
    return scores


def llama_index_rrf_fusion(
    dense_result: Any, sparse_result: Any, alpha: float = 0.5, top_k: int = 2, *, rrf_k: int = DEFAULT_RRF_K
) -> Any:
    """A ``hybrid_fusion_fn`` for LlamaIndex's ``QdrantVectorStore``: Qdrant's RRF of the two rankings.

    ``alpha`` keeps LlamaIndex's meaning (1 = dense only, 0 = sparse only) as RRF weights ``2 * alpha`` for the
    dense and ``2 * (1 - alpha)`` for the sparse ranking, so the default 0.5 is plain, unweighted RRF.
    """
    from llama_index.core.vector_stores.types import VectorStoreQueryResult

    if not 0 <= alpha <= 1:
        msg = f"alpha must be between 0 (sparse only) and 1 (dense only), got {alpha!r}."
        raise ValueError(msg)
    nodes = {}
    rankings = []
    for result in (dense_result, sparse_result):
        ids = list(result.ids or [n.node_id for n in result.nodes or []])
        nodes.update(zip(ids, result.nodes or []))
        rankings.append(ids)
    scores = rrf_scores(rankings, k=rrf_k, weights=[2 * alpha, 2 * (1 - alpha)])
    best = sorted(scores.items(), key=lambda item: -item[1])[:top_k]  # stable: ties keep dense-first order
    return VectorStoreQueryResult(
        nodes=[nodes[i] for i, _ in best], similarities=[s for _, s in best], ids=[i for i, _ in best]
    )
