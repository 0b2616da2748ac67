"""``QdrantEdgeEmbeddingRetriever``: qdrant-haystack's ``QdrantEmbeddingRetriever``, for a Qdrant Edge store."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy
from haystack.document_stores.types.filter_policy import apply_filter_policy

from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore


@component
class QdrantEdgeEmbeddingRetriever:
    """Retrieves Documents from a ``QdrantEdgeDocumentStore`` by a query embedding.

    The parameters are ``QdrantEmbeddingRetriever``'s; ``group_by``/``group_size`` are accepted so that the two
    retrievers are interchangeable, and refused when set: Qdrant Edge has no grouped search.

    Usage example:

    ```python
    from haystack_integrations.components.retrievers.laser_edge import QdrantEdgeEmbeddingRetriever
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

    store = QdrantEdgeDocumentStore(path="laser_edge", embedding_dim=768)
    retriever = QdrantEdgeEmbeddingRetriever(document_store=store, top_k=5)
    documents = retriever.run(query_embedding=[0.1] * 768)["documents"]
    ```
    """

    def __init__(
        self,
        document_store: QdrantEdgeDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        filter_policy: str | FilterPolicy = FilterPolicy.REPLACE,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
    ) -> None:
        """Create the retriever.

        :param document_store: The ``QdrantEdgeDocumentStore`` to search.
        :param filters: Haystack filters applied to every search.
        :param top_k: Maximum number of Documents returned.
        :param scale_score: Scale the scores to [0, 1].
        :param return_embedding: Return the Documents' embeddings too.
        :param filter_policy: How run-time filters combine with `filters` ("replace" or "merge").
        :param score_threshold: Drop Documents scoring below this.
        :param group_by: Not supported by Qdrant Edge: refused unless None.
        :param group_size: Not supported by Qdrant Edge: refused unless None.
        """
        if group_by is not None or group_size is not None:
            msg = (
                "group_by/group_size are not supported by Qdrant Edge (it has no grouped search); leave them unset, "
                "or use QdrantDocumentStore on a Qdrant server for grouped results."
            )
            raise ValueError(msg)
        if not isinstance(document_store, QdrantEdgeDocumentStore):
            msg = f"document_store must be a QdrantEdgeDocumentStore, got {type(document_store).__name__}."
            raise ValueError(msg)
        self._document_store = document_store
        self._filters = filters
        self._top_k = top_k
        self._scale_score = scale_score
        self._return_embedding = return_embedding
        self._filter_policy = FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str) else filter_policy
        self._score_threshold = score_threshold

    def to_dict(self) -> dict[str, Any]:
        """Serialize to ``{"type", "init_parameters"}`` (the document store included)."""
        return default_to_dict(
            self,
            document_store=self._document_store.to_dict(),
            filters=self._filters,
            top_k=self._top_k,
            scale_score=self._scale_score,
            return_embedding=self._return_embedding,
            filter_policy=self._filter_policy.value,
            score_threshold=self._score_threshold,
            group_by=None,
            group_size=None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QdrantEdgeEmbeddingRetriever:
        """Rebuild the retriever from :meth:`to_dict`'s output (which is left unchanged)."""
        data = copy.deepcopy(data)
        params = data["init_parameters"]
        params["document_store"] = QdrantEdgeDocumentStore.from_dict(params["document_store"])
        if isinstance(params.get("filter_policy"), str):
            params["filter_policy"] = FilterPolicy.from_str(params["filter_policy"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
    ) -> dict[str, list[Document]]:
        """The Documents nearest to `query_embedding`, best first.

        :param query_embedding: Embedding of the query.
        :param filters: Haystack filters for this search, combined with the init filters by `filter_policy`.
        :param top_k: Maximum number of Documents returned.
        :param scale_score: Scale the scores to [0, 1].
        :param return_embedding: Return the Documents' embeddings too.
        :param score_threshold: Drop Documents scoring below this.
        :param group_by: Not supported by Qdrant Edge: refused unless None.
        :param group_size: Not supported by Qdrant Edge: refused unless None.
        :returns: A dictionary with the key `documents`.
        """
        native = any(f is not None and not isinstance(f, dict) for f in (self._filters, filters))
        if self._filter_policy == FilterPolicy.MERGE and native:
            msg = (
                "Native qdrant_edge filters cannot be merged (filter_policy='merge'); use Haystack filters or "
                "'replace'."
            )
            raise ValueError(msg)
        filters = apply_filter_policy(self._filter_policy, self._filters, filters)
        documents = self._document_store.query_by_embedding(
            query_embedding=query_embedding,
            filters=filters,
            top_k=top_k or self._top_k,
            scale_score=self._scale_score if scale_score is None else scale_score,
            return_embedding=self._return_embedding if return_embedding is None else return_embedding,
            score_threshold=self._score_threshold if score_threshold is None else score_threshold,
            group_by=group_by,
            group_size=group_size,
        )
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
    ) -> dict[str, list[Document]]:
        """Asynchronously search; same parameters and output as :meth:`run` (the shard is searched in a thread)."""
        return await asyncio.to_thread(
            self.run, query_embedding, filters, top_k, scale_score, return_embedding, score_threshold, group_by,
            group_size,
        )

    def close(self) -> None:
        """Release the document store's shard (it reopens on next use)."""
        self._document_store.close()

    async def close_async(self) -> None:
        """Release the document store's shard."""
        self.close()
