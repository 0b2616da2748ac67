"""``LaSERHybridRetriever``: LaSER (dense) and BM25 (sparse) search of one Qdrant collection, fused by RRF."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy
from haystack.document_stores.types.filter_policy import apply_filter_policy
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from haystack_integrations.document_stores.qdrant.converters import (
    DENSE_VECTORS_NAME,
    SPARSE_VECTORS_NAME,
    convert_qdrant_point_to_haystack_document,
)
from haystack_integrations.document_stores.qdrant.filters import convert_filters_to_qdrant

from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
from haystack_integrations.components.embedders.laser.backend import DEFAULT_MODEL, default_token
from haystack_integrations.components.retrievers.laser.retriever import (
    EMBEDDER_PARAMETERS,
    DocumentStoreTypeError,
    query_dimension,
    store_from_dict,
)
from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
from laser_integrations.encoder import LaSEREncoder
from laser_integrations.hybrid import DEFAULT_RRF_K, hybrid_request, validate_rrf
from laser_integrations.sparse import DEFAULT_B, DEFAULT_K1, BM25SparseEncoder


@component
class LaSERHybridRetriever:
    """Hybrid search: the query's LaSER embedding and its BM25 sparse vector, one Qdrant query, RRF fusion.

    The store (a ``QdrantDocumentStore`` or a ``QdrantEdgeDocumentStore``) must be opened with
    ``use_sparse_embeddings=True`` (``open_document_store(hybrid=True)`` also sets
    Qdrant's IDF modifier, which BM25 needs) and its Documents written with both ``LaSERDocumentEmbedder`` and
    ``BM25SparseDocumentEmbedder``. Each of the two searches goes ``prefetch_limit`` deep (default: ``top_k``, at
    least 10), so documents found by only one of them can still be fused in; scores are RRF scores
    (``laser_integrations.hybrid``), not cosine similarities. Unlike qdrant-haystack's ``QdrantHybridRetriever``,
    it embeds the query itself and its prefetches are as deep as asked (that one's stop at Qdrant's default of 10).

    Usage example:

    ```python
    from haystack_integrations.components.retrievers.laser import LaSERHybridRetriever
    from laser_integrations.qdrant import open_document_store

    store = open_document_store(path="laser_qdrant", collection="docs", embedding_dim=1024, hybrid=True)
    retriever = LaSERHybridRetriever(document_store=store, model="Alibaba-NLP/LaSER-Qwen3-0.6B", top_k=5)
    for doc in retriever.run(query="Which inequality bounds prefix codes?")["documents"]:
        print(f"{doc.score:.4f} {doc.content[:60]}")
    ```
    """

    def __init__(
        self,
        *,
        document_store: QdrantDocumentStore | QdrantEdgeDocumentStore,
        model: str = DEFAULT_MODEL,
        device: ComponentDevice | None = None,
        token: Secret | None = default_token(),  # noqa: B008 - an env-var reference, resolved at warm-up
        prefix: str = "",
        suffix: str = "",
        progress_bar: bool = False,
        normalize_embeddings: bool = True,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        revision: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        num_thinking_steps: int | None = None,
        instruction: str | None = None,
        truncate_dim: int | None = None,
        config_kwargs: dict[str, Any] | None = None,
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        encode_kwargs: dict[str, Any] | None = None,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        quantization_ranges: list[list[float]] | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        prefetch_limit: int | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        return_embedding: bool = False,
        filter_policy: str | FilterPolicy = FilterPolicy.REPLACE,
        score_threshold: float | None = None,
        allow_model_mismatch: bool = False,
    ) -> None:
        """Create the component; nothing loads until :meth:`warm_up` or the first :meth:`run`.

        The model parameters (``model`` to ``quantization_ranges``) are ``LaSERRetriever``'s, with its meaning: the
        model and settings the documents' dense vectors were embedded with. ``precision="binary"`` / ``"ubinary"``
        is refused: packed bits are not a vector RRF's dense search can rank by cosine.

        :param document_store: A ``QdrantDocumentStore`` or ``QdrantEdgeDocumentStore`` with sparse embeddings
            (``open_document_store(hybrid=True)``).
        :param filters: Haystack filters applied to both searches.
        :param top_k: Maximum number of Documents returned.
        :param prefetch_limit: Depth of each of the two searches before fusion (default ``max(top_k, 10)``).
        :param rrf_k: RRF's constant (a point at position p of a ranking adds ``1 / (p + rrf_k)``).
        :param k1: BM25's k1 (only the document side uses it; kept for a symmetric configuration).
        :param b: BM25's b (likewise).
        :param return_embedding: Return the Documents' dense and sparse embeddings too.
        :param filter_policy: How run-time filters combine with `filters` ("replace" or "merge").
        :param score_threshold: Drop Documents whose fused RRF score is below this.
        :param allow_model_mismatch: When the collection records another model, K or input format than this
            retriever's (see ``laser_integrations.provenance``), warn instead of raising at warm-up.
        """
        if not isinstance(document_store, (QdrantDocumentStore, QdrantEdgeDocumentStore)):
            msg = (
                "document_store must be a QdrantDocumentStore or a QdrantEdgeDocumentStore, got "
                f"{type(document_store).__name__}."
            )
            raise DocumentStoreTypeError(msg)
        if not document_store.use_sparse_embeddings:
            msg = (
                f"LaSERHybridRetriever needs a {type(document_store).__name__} with sparse embeddings (collection "
                f"{document_store.index!r} was opened with use_sparse_embeddings=False): open it with "
                "laser_integrations.qdrant.open_document_store(..., hybrid=True), or use LaSERRetriever for dense search."
            )
            raise ValueError(msg)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            msg = f"top_k must be a positive integer, got {top_k!r}."
            raise ValueError(msg)
        validate_rrf(rrf_k, prefetch_limit)
        if precision in ("binary", "ubinary"):
            msg = (
                f"LaSERHybridRetriever(precision={precision!r}) cannot work: binary embeddings are 8 bits packed per "
                "number, and the hybrid search ranks the store's dense vectors by cosine, which means nothing on "
                "packed bits. Use precision='float32' (or 'int8' / 'uint8', as the documents were embedded); for "
                "binary search use LaSERRetriever on a collection indexed with that precision."
            )
            raise ValueError(msg)
        arguments = locals()
        self._embedder = LaSERTextEmbedder(**{name: arguments[name] for name in EMBEDDER_PARAMETERS})
        self._sparse = BM25SparseEncoder(k1=k1, b=b)
        self.document_store = document_store
        self.filters, self.top_k, self.prefetch_limit, self.rrf_k = filters, top_k, prefetch_limit, rrf_k
        self.k1, self.b = k1, b
        self.return_embedding, self.score_threshold = return_embedding, score_threshold
        self.allow_model_mismatch = allow_model_mismatch
        self.filter_policy = FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str) else filter_policy

    @property
    def encoder(self) -> LaSEREncoder | None:
        """The shared encoder once warmed up, else None."""
        return self._embedder.encoder

    def warm_up(self) -> None:
        """Load (or reuse) the encoder and check that the store's vector size matches the model's."""
        if self._embedder.encoder is not None:
            return
        self._embedder.warm_up()
        dimension = query_dimension(self._embedder)
        if self.document_store.embedding_dim != dimension:
            self._embedder.encoder = None
            msg = (
                f"{type(self.document_store).__name__} (collection {self.document_store.index!r}) has embedding_dim="
                f"{self.document_store.embedding_dim}, but {self._embedder.model!r} embeds into {dimension} "
                f"dimensions{' (after truncate_dim)' if self._embedder.truncate_dim else ''}. Search a collection that "
                "was indexed with this model (and truncate_dim)."
            )
            raise ValueError(msg)
        from laser_integrations.provenance import check_haystack_store

        try:  # another model, K or format than the collection's: refused (or warned about, when allowed)
            check_haystack_store(self.document_store, self._embedder, allow_mismatch=self.allow_model_mismatch)
        except BaseException:
            self._embedder.encoder = None  # not warmed up: the next call checks again
            raise

    def to_dict(self) -> dict[str, Any]:
        """Serialize to ``{"type", "init_parameters"}`` (the document store included)."""
        embedder = self._embedder.to_dict()["init_parameters"]
        return default_to_dict(
            self,
            **{name: embedder[name] for name in EMBEDDER_PARAMETERS},
            document_store=self.document_store.to_dict(), filters=self.filters, top_k=self.top_k,
            prefetch_limit=self.prefetch_limit, rrf_k=self.rrf_k, k1=self.k1, b=self.b,
            return_embedding=self.return_embedding, filter_policy=self.filter_policy.value,
            score_threshold=self.score_threshold, allow_model_mismatch=self.allow_model_mismatch,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaSERHybridRetriever:
        """Rebuild the component from :meth:`to_dict`'s output."""
        data = copy.deepcopy(data)
        params = data["init_parameters"]
        params["document_store"] = store_from_dict(params["document_store"])
        if params.get("model_kwargs") is not None:
            deserialize_hf_model_kwargs(params["model_kwargs"])
        if params.get("device") is not None:
            params["device"] = ComponentDevice.from_dict(params["device"])
        if params.get("token") is not None:
            params["token"] = Secret.from_dict(params["token"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, Any]:
        """Embed `query` densely (LaSER) and sparsely (BM25), search both, and return the RRF-fused Documents.

        :param query: The question or search text.
        :param filters: Haystack filters for this search, combined with the init filters by `filter_policy`.
        :param top_k: Maximum number of Documents returned (default: the init `top_k`).
        :returns: A dictionary with the key `documents`: the Documents, best first, `score` the fused RRF score.
        """
        if not isinstance(query, str):
            msg = (
                f"LaSERHybridRetriever expects the query as a string, got {type(query).__name__}. To index "
                "Documents, use LaSERDocumentEmbedder, BM25SparseDocumentEmbedder and a DocumentWriter."
            )
            raise TypeError(msg)
        top_k = self.top_k if top_k is None else top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            msg = f"top_k must be a positive integer, got {top_k!r}."
            raise ValueError(msg)
        self.warm_up()
        dense = self._embedder.run(query)["embedding"]
        sparse = self._sparse.encode_queries([query])[0]
        store, depth = self.document_store, self.prefetch_limit or max(top_k, 10)
        merged = apply_filter_policy(self.filter_policy, self.filters, filters)
        if isinstance(store, QdrantEdgeDocumentStore):  # the same query (two prefetches, RRF) in Edge's API
            documents = store._query_hybrid(  # noqa: SLF001 - qdrant-haystack's hybrid entry point, ours on Edge
                dense, sparse, filters=merged, top_k=top_k, return_embedding=self.return_embedding,
                score_threshold=self.score_threshold, rrf_k=self.rrf_k, prefetch_limit=depth,
            )  # fmt: skip
        else:
            request = hybrid_request(
                dense, sparse, limit=top_k, prefetch_limit=depth, rrf_k=self.rrf_k,
                dense_name=DENSE_VECTORS_NAME, sparse_name=SPARSE_VECTORS_NAME,
                query_filter=convert_filters_to_qdrant(merged),
                with_vectors=self.return_embedding, score_threshold=self.score_threshold,
            )  # fmt: skip
            store._initialize_client()  # qdrant-haystack connects lazily; its client is private but stable (13.x)
            points = store._client.query_batch_points(store.index, [request])[0].points  # type: ignore[union-attr]
            documents = [convert_qdrant_point_to_haystack_document(p, use_sparse_embeddings=True) for p in points]
        if not self.return_embedding:
            documents = [replace(doc, embedding=None, sparse_embedding=None) for doc in documents]
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        """Asynchronously embed `query` and search; same parameters and output as :meth:`run`."""
        # Through the sync client in a worker thread, as LaSERRetriever does: an embedded Qdrant is one per process.
        return await asyncio.to_thread(self.run, query, filters, top_k)

    def close(self) -> None:
        """Release the document store's connection."""
        self.document_store.close()
