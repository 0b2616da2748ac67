"""``LaSERRetriever``: a query string in, the best-matching Documents of a ``QdrantDocumentStore`` out."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from qdrant_client.http import models

from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
from haystack_integrations.components.embedders.laser.backend import DEFAULT_MODEL, default_token
from haystack_integrations.components.retrievers.laser_edge import QdrantEdgeEmbeddingRetriever
from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
from laser_integrations.encoder import LaSEREncoder

# The text embedder's parameters that the retrievers (this one and LaSERHybridRetriever) expose: batch size and
# devices are moot for one query.
EMBEDDER_PARAMETERS = (
    "model", "device", "token", "prefix", "suffix", "progress_bar", "normalize_embeddings", "trust_remote_code",
    "local_files_only", "revision", "model_kwargs", "tokenizer_kwargs", "num_thinking_steps", "instruction",
    "truncate_dim", "config_kwargs", "precision", "encode_kwargs", "backend", "quantization_ranges",
)  # fmt: skip


def query_dimension(embedder: LaSERTextEmbedder) -> int:
    """Numbers per query embedding of a warmed-up embedder: after truncate_dim, and 8 bits per number if binary."""
    dimension = embedder.truncate_dim or embedder.encoder.dimension  # type: ignore[union-attr]
    if embedder.precision in ("binary", "ubinary"):
        dimension = -(-dimension // 8)  # 8 bits packed per number
    return dimension


def store_from_dict(data: dict[str, Any]) -> QdrantDocumentStore | QdrantEdgeDocumentStore:
    """The document store a LaSER retriever serialized: a ``QdrantEdgeDocumentStore`` or a ``QdrantDocumentStore``."""
    edge = data["type"].endswith(".QdrantEdgeDocumentStore")
    return (QdrantEdgeDocumentStore if edge else QdrantDocumentStore).from_dict(data)


class DocumentStoreTypeError(TypeError, ValueError):
    """The document store is not a ``QdrantDocumentStore``.

    A ``TypeError``, and also a ``ValueError`` because ``QdrantEmbeddingRetriever`` raises that for the same mistake,
    so code written against it catches this too.
    """


@component
class LaSERRetriever:
    """Embeds a query with LaSER and searches a ``QdrantDocumentStore``: one component instead of two.

    It is exactly ``LaSERTextEmbedder`` followed by ``QdrantEmbeddingRetriever`` (and is built from them), for
    users who want one box. The store's ``embedding_dim`` must equal the model's dimension; this is checked at
    warm-up, before any search.

    Usage example:

    ```python
    from haystack_integrations.components.retrievers.laser import LaSERRetriever
    from laser_integrations.qdrant import open_document_store

    store = open_document_store(path="laser_qdrant", collection="docs", embedding_dim=1024)
    retriever = LaSERRetriever(document_store=store, model="Alibaba-NLP/LaSER-Qwen3-0.6B", top_k=5)
    for doc in retriever.run(query="Which inequality bounds prefix codes?")["documents"]:
        print(f"{doc.score:.3f} {doc.content[:60]}")
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
        filters: dict[str, Any] | models.Filter | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        filter_policy: str | FilterPolicy = FilterPolicy.REPLACE,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
        allow_model_mismatch: bool = False,
    ) -> None:
        """Create the component; nothing loads until :meth:`warm_up` or the first :meth:`run`.

        :param document_store: The ``QdrantDocumentStore`` or ``QdrantEdgeDocumentStore`` to search (see ``laser_integrations.qdrant.open_document_store``).
        :param model: Hub id or local folder of a LaSER checkpoint; the one the documents were embedded with.
        :param device: Device to load the model on; default CUDA > MPS > CPU.
        :param token: Hugging Face token for private models, from an environment variable.
        :param prefix: Text put before the query, inside the query template.
        :param suffix: Text put after the query, inside the query template.
        :param progress_bar: Show a progress bar while embedding the query.
        :param normalize_embeddings: L2-normalise the query embedding.
        :param trust_remote_code: Run code shipped with the checkpoint (only for checkpoints you trust).
        :param local_files_only: Never reach the Hugging Face Hub.
        :param revision: Hub branch, tag or commit.
        :param model_kwargs: Extra arguments for ``AutoModelForCausalLM.from_pretrained``.
        :param tokenizer_kwargs: Extra arguments for ``AutoTokenizer.from_pretrained``.
        :param num_thinking_steps: K, the latent thinking steps; ``None`` uses the checkpoint's own K.
        :param instruction: The task instruction put in the query template; ``None`` uses the checkpoint's default.
        :param truncate_dim: Keep the first N dimensions of the query embedding (as ``LaSERTextEmbedder``); the
            store must hold documents embedded with the same ``truncate_dim``.
        :param config_kwargs: Attributes of the model's transformers config to override.
        :param precision: Query embedding precision (as ``LaSERTextEmbedder``); the documents must use the same.
        :param encode_kwargs: Extra keyword arguments for ``LaSEREncoder.encode`` (as ``LaSERTextEmbedder``).
        :param backend: Only ``"torch"``.
        :param quantization_ranges: Ranges for ``"int8"`` / ``"uint8"`` query embeddings.
        :param filters: Haystack filters (or a native Qdrant ``models.Filter``) applied to every search.
        :param top_k: Maximum number of Documents returned (of groups, with `group_by`).
        :param scale_score: Scale the cosine score to [0, 1].
        :param return_embedding: Return the Documents' embeddings too.
        :param filter_policy: How run-time filters combine with `filters` ("replace" or "merge").
        :param score_threshold: Drop Documents scoring below this.
        :param group_by: Payload field to group the hits by (e.g. ``"meta.source"``); at most `group_size` per group.
        :param group_size: Maximum number of Documents per group (Qdrant's default: 3).
        :param allow_model_mismatch: When the collection records another model, K or input format than this
            retriever's (see ``laser_integrations.provenance``), warn instead of raising at warm-up.
        :raises DocumentStoreTypeError: `document_store` is not a ``QdrantDocumentStore`` (a TypeError and a
            ValueError, the type ``QdrantEmbeddingRetriever`` raises).
        """
        if not isinstance(document_store, (QdrantDocumentStore, QdrantEdgeDocumentStore)):
            msg = (
                "document_store must be a QdrantDocumentStore or a QdrantEdgeDocumentStore, got "
                f"{type(document_store).__name__}. For another store, use LaSERTextEmbedder followed by that store's "
                "embedding retriever."
            )
            raise DocumentStoreTypeError(msg)
        arguments = locals()
        self._embedder = LaSERTextEmbedder(**{name: arguments[name] for name in EMBEDDER_PARAMETERS})
        edge = isinstance(document_store, QdrantEdgeDocumentStore)
        self._retriever = (QdrantEdgeEmbeddingRetriever if edge else QdrantEmbeddingRetriever)(
            document_store=document_store, filters=filters, top_k=top_k, scale_score=scale_score,
            return_embedding=return_embedding, filter_policy=filter_policy, score_threshold=score_threshold,
            group_by=group_by, group_size=group_size,
        )  # fmt: skip
        self.document_store = document_store
        self.allow_model_mismatch = allow_model_mismatch

    @property
    def encoder(self) -> LaSEREncoder | None:
        """The shared encoder once warmed up, else None."""
        return self._embedder.encoder

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"model": self._embedder.model, "document_store": type(self.document_store).__name__}

    def warm_up(self) -> None:
        """Load (or reuse) the encoder and check that the store's vector size matches the model's."""
        if self._embedder.encoder is not None:
            return
        self._embedder.warm_up()
        full = self._embedder.encoder.dimension  # type: ignore[union-attr]
        dimension = query_dimension(self._embedder)
        if self.document_store.embedding_dim != dimension:
            collection, store = self.document_store.index, type(self.document_store).__name__
            self._embedder.encoder = None
            msg = (
                f"{store} (collection {collection!r}) has embedding_dim={self.document_store.embedding_dim}, "
                f"but {self._embedder.model!r} embeds into {dimension} dimensions"
                f"{' (after truncate_dim / precision)' if dimension != full else ''}. Open the store with "
                f"embedding_dim={dimension} (laser_integrations.qdrant.open_document_store does this), and search a "
                "collection that was indexed with this model."
            )
            raise ValueError(msg)
        try:
            self._check_provenance()
        except BaseException:
            self._embedder.encoder = None  # not warmed up: the next call checks again
            raise

    def _check_provenance(self) -> None:
        """Refuse (or warn about) a collection that records another model, K or input format than this one."""
        from laser_integrations.provenance import check_haystack_store

        check_haystack_store(self.document_store, self._embedder, allow_mismatch=self.allow_model_mismatch)

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so loading does not block the event loop."""
        await asyncio.to_thread(self.warm_up)

    def to_dict(self) -> dict[str, Any]:
        """Serialize to ``{"type", "init_parameters"}`` (the document store included)."""
        embedder = self._embedder.to_dict()["init_parameters"]
        retriever = self._retriever.to_dict()["init_parameters"]
        params = {name: embedder[name] for name in EMBEDDER_PARAMETERS}
        params.update(retriever)  # document_store (as a dict), filters, top_k, filter_policy, group_by, ...
        params["allow_model_mismatch"] = self.allow_model_mismatch
        data = default_to_dict(self)
        data["init_parameters"] = params
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaSERRetriever:
        """Rebuild the component from :meth:`to_dict`'s output."""
        data = copy.deepcopy(data)
        params = data["init_parameters"]
        params["document_store"] = store_from_dict(params["document_store"])
        if params.get("model_kwargs") is not None:
            deserialize_hf_model_kwargs(params["model_kwargs"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        filters: dict[str, Any] | models.Filter | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
    ) -> dict[str, Any]:
        """Embed `query` as a query and return the best-matching Documents.

        Every parameter after `query` is ``QdrantEmbeddingRetriever.run``'s, with its meaning; ``None`` keeps the
        init value.

        :param query: The question or search text.
        :param filters: Filters for this search, combined with the init filters by `filter_policy`.
        :param top_k: Maximum number of Documents returned (of groups, with `group_by`).
        :param scale_score: Scale the cosine score to [0, 1].
        :param return_embedding: Return the Documents' embeddings too.
        :param score_threshold: Drop Documents scoring below this.
        :param group_by: Payload field to group the hits by.
        :param group_size: Maximum number of Documents per group.
        :returns: A dictionary with the key `documents`: the Documents, best first, with their `score`.
        :raises ValueError: `filter_policy` is "merge" and a filter is a native Qdrant filter (as
            ``QdrantEmbeddingRetriever``).
        """
        if not isinstance(query, str):
            msg = (
                f"LaSERRetriever expects the query as a string, got {type(query).__name__}. "
                "To embed and index Documents, use LaSERDocumentEmbedder and a DocumentWriter."
            )
            raise TypeError(msg)
        self.warm_up()
        embedding = self._embedder.run(query)["embedding"]
        return self._retriever.run(
            query_embedding=embedding, filters=filters, top_k=top_k, scale_score=scale_score,
            return_embedding=return_embedding, score_threshold=score_threshold, group_by=group_by,
            group_size=group_size,
        )  # fmt: skip

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        filters: dict[str, Any] | models.Filter | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
    ) -> dict[str, Any]:
        """Asynchronously embed `query` and search; same parameters and output as :meth:`run`."""
        # The search runs through the synchronous client in a worker thread: an embedded or in-memory Qdrant is
        # one per process and the store's separate async client would open a second, empty or locked, copy.
        return await asyncio.to_thread(
            self.run, query, filters, top_k, scale_score, return_embedding, score_threshold, group_by, group_size
        )

    def close(self) -> None:
        """Release the document store's connection."""
        self._retriever.close()

    async def close_async(self) -> None:
        """Release the document store's asynchronous connection."""
        await self._retriever.close_async()
