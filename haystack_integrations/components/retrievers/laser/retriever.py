"""``LaSERRetriever``: a query string in, the best-matching Documents of a ``QdrantDocumentStore`` out."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from haystack_integrations.components.embedders.laser import LaSERTextEmbedder
from haystack_integrations.components.embedders.laser.backend import DEFAULT_MODEL, default_token
from laser_integrations.encoder import LaSEREncoder

# The text embedder's parameters that the retriever exposes (batch size is moot for one query).
_EMBEDDER_PARAMETERS = (
    "model", "device", "token", "prefix", "suffix", "progress_bar", "normalize_embeddings", "trust_remote_code",
    "local_files_only", "revision", "model_kwargs", "tokenizer_kwargs", "num_thinking_steps", "instruction",
)  # fmt: skip


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
        document_store: QdrantDocumentStore,
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
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        filter_policy: str | FilterPolicy = FilterPolicy.REPLACE,
        score_threshold: float | None = None,
        allow_model_mismatch: bool = False,
    ) -> None:
        """Create the component; nothing loads until :meth:`warm_up` or the first :meth:`run`.

        :param document_store: The ``QdrantDocumentStore`` to search (see ``laser_integrations.qdrant.open_document_store``).
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
        :param filters: Haystack filters applied to every search.
        :param top_k: Maximum number of Documents returned.
        :param scale_score: Scale the cosine score to [0, 1].
        :param return_embedding: Return the Documents' embeddings too.
        :param filter_policy: How run-time filters combine with `filters` ("replace" or "merge").
        :param score_threshold: Drop Documents scoring below this.
        :param allow_model_mismatch: When the collection records another model, K or input format than this
            retriever's (see ``laser_integrations.provenance``), warn instead of raising at warm-up.
        """
        if not isinstance(document_store, QdrantDocumentStore):
            msg = (
                f"document_store must be a QdrantDocumentStore, got {type(document_store).__name__}. For another "
                "store, use LaSERTextEmbedder followed by that store's embedding retriever."
            )
            raise TypeError(msg)
        self._embedder = LaSERTextEmbedder(
            model=model, device=device, token=token, prefix=prefix, suffix=suffix, progress_bar=progress_bar,
            normalize_embeddings=normalize_embeddings, trust_remote_code=trust_remote_code,
            local_files_only=local_files_only, revision=revision, model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs, num_thinking_steps=num_thinking_steps, instruction=instruction,
        )  # fmt: skip
        self._retriever = QdrantEmbeddingRetriever(
            document_store=document_store, filters=filters, top_k=top_k, scale_score=scale_score,
            return_embedding=return_embedding, filter_policy=filter_policy, score_threshold=score_threshold,
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
        dimension = self._embedder.encoder.dimension  # type: ignore[union-attr]
        if self.document_store.embedding_dim != dimension:
            collection = self.document_store.index
            self._embedder.encoder = None
            msg = (
                f"QdrantDocumentStore (collection {collection!r}) has embedding_dim={self.document_store.embedding_dim}, "
                f"but {self._embedder.model!r} embeds into {dimension} dimensions. Open the store with "
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

        check_haystack_store(self.document_store, self._embedder.encoder,  # type: ignore[arg-type]
                             num_thinking_steps=self._embedder.num_thinking_steps,
                             allow_mismatch=self.allow_model_mismatch)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Serialize to ``{"type", "init_parameters"}`` (the document store included)."""
        embedder = self._embedder.to_dict()["init_parameters"]
        retriever = self._retriever.to_dict()["init_parameters"]
        params = {name: embedder[name] for name in _EMBEDDER_PARAMETERS}
        params.update(retriever)  # document_store (as a dict), filters, top_k, filter_policy, ...
        params["allow_model_mismatch"] = self.allow_model_mismatch
        for name in ("group_by", "group_size"):
            params.pop(name, None)
        data = default_to_dict(self)
        data["init_parameters"] = params
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaSERRetriever:
        """Rebuild the component from :meth:`to_dict`'s output."""
        data = copy.deepcopy(data)
        params = data["init_parameters"]
        params["document_store"] = QdrantDocumentStore.from_dict(params["document_store"])
        if params.get("model_kwargs") is not None:
            deserialize_hf_model_kwargs(params["model_kwargs"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, Any]:
        """Embed `query` as a query and return the best-matching Documents.

        :param query: The question or search text.
        :param filters: Haystack filters for this search, combined with the init filters by `filter_policy`.
        :param top_k: Maximum number of Documents returned (default: the init `top_k`).
        :returns: A dictionary with the key `documents`: the Documents, best first, with their `score`.
        """
        if not isinstance(query, str):
            msg = (
                f"LaSERRetriever expects the query as a string, got {type(query).__name__}. "
                "To embed and index Documents, use LaSERDocumentEmbedder and a DocumentWriter."
            )
            raise TypeError(msg)
        self.warm_up()
        embedding = self._embedder.run(query)["embedding"]
        return self._retriever.run(query_embedding=embedding, filters=filters, top_k=top_k)

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        """Asynchronously embed `query` and search; same parameters and output as :meth:`run`."""
        # The search runs through the synchronous client in a worker thread: an embedded or in-memory Qdrant is
        # one per process and the store's separate async client would open a second, empty or locked, copy.
        return await asyncio.to_thread(self.run, query, filters, top_k)

    def close(self) -> None:
        """Release the document store's connection."""
        self._retriever.close()

    async def close_async(self) -> None:
        """Release the document store's asynchronous connection."""
        await self._retriever.close_async()
