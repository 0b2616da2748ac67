"""``QdrantEdgeVectorStore``: a LlamaIndex vector store on Qdrant Edge, Qdrant's engine in this process.

Points are laid out as llama-index-vector-stores-qdrant's ``QdrantVectorStore`` lays them out (one named dense
vector ``"text-dense"``, the payload of ``node_to_metadata_dict``: the node's metadata at the top level, the node
itself in ``_node_content``, its document in ``doc_id``/``ref_doc_id``/``document_id``), so the points can move to
a Qdrant server collection that ``QdrantVectorStore`` reads. With ``enable_hybrid=True``, also its sparse vector
``"text-sparse-new"`` (with Qdrant's IDF modifier), filled by ``sparse_doc_fn`` and searched with
``sparse_query_fn`` as ``QdrantVectorStore`` does: ``vector_store_query_mode="hybrid"`` runs a dense and a sparse
search and fuses them with ``hybrid_fusion_fn`` (default: Qdrant's RRF, ``laser_integrations.hybrid``), and
``"sparse"`` runs the sparse search alone.

It also reads a shard written by Haystack (``QdrantEdgeDocumentStore``, ``laser index``): qdrant-haystack's layout
(one unnamed dense vector, or ``"text-dense"`` beside the sparse ``"text-sparse"``; the payload
``Document.to_dict()``). ``payload_layout="auto"`` (the default) recognises it from the shard's stored vectors;
queries then return ``TextNode``s with the Haystack document's id, content and meta, filters apply to its meta, and
the hybrid and sparse modes search ``"text-sparse"`` with the BM25 query vectors Haystack's retrievers use. Such a
shard is read only: writing LlamaIndex's payload into it would mix two layouts in one collection.

Example:
    >>> from llama_index.core import StorageContext, VectorStoreIndex
    >>> from laser_integrations.edge_vector_store import QdrantEdgeVectorStore
    >>> store = QdrantEdgeVectorStore(path="laser_edge", collection_name="notes", embedding_dim=1024)  # doctest: +SKIP
    >>> context = StorageContext.from_defaults(vector_store=store)
    >>> index = VectorStoreIndex.from_documents(docs, storage_context=context)  # doctest: +SKIP
    >>> store.close()  # doctest: +SKIP  (releases the folder for another process)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from . import edge
from .hybrid import DENSE_VECTOR_NAME as HAYSTACK_DENSE_VECTOR_NAME
from .hybrid import SPARSE_VECTOR_NAME as HAYSTACK_SPARSE_VECTOR_NAME

DEFAULT_VECTOR_NAME = "text-dense"  # QdrantVectorStore's name for the dense vector
DEFAULT_SPARSE_VECTOR_NAME = "text-sparse-new"  # and for the sparse one
# QdrantVectorStore's sparse encoders: texts -> (indices of each text, values of each text).
SparseEncoderCallable = Callable[[list[str]], tuple[list[list[int]], list[list[float]]]]
DOC_ID_KEY = "doc_id"
# Node ids that are not UUIDs (Qdrant accepts only UUIDs and integers) become uuid5 in this namespace.
NODE_ID_NAMESPACE = uuid.UUID("0b8f5a8e-6a34-4d7e-9b3c-5b1f0c9f2d41")
# Whose payload a shard holds: LlamaIndex's QdrantVectorStore's, or qdrant-haystack's (QdrantEdgeDocumentStore's).
PayloadLayout = Literal["auto", "llama_index", "haystack"]
HAYSTACK_META_PREFIX = "meta."  # Haystack keeps a Document's meta under the payload key "meta"
# Settings of the shard itself, which the store that writes it owns; refused on a shard this store only reads.
_SHARD_SETTINGS = ("hnsw_config", "quantization_config", "optimizers_config", "on_disk", "payload_indexes",
                   "index_doc_id", "vector_name", "sparse_vector_name")  # fmt: skip


def point_id(node_id: str) -> str:
    """The Qdrant point id of a node: the node id when it is a UUID, else a uuid5 of it."""
    try:
        return str(uuid.UUID(node_id))
    except ValueError:
        return str(uuid.uuid5(NODE_ID_NAMESPACE, node_id))


class QdrantEdgeVectorStore(BasePydanticVectorStore):
    """Nodes and their embeddings in a Qdrant Edge shard (the folder ``path/collection_name``).

    The shard opens on first use and stays open (Edge locks its write-ahead log: one process at a time; a second
    gets :class:`~laser_integrations.qdrant.StorageLockedError`); :meth:`close` releases it. Writes are durable
    when ``add`` returns. Qdrant's optimizers (HNSW build, merges) run at the end of each ``add`` unless
    ``optimize_after_add=False`` (then call :meth:`optimize` once after a bulk load).

    Args:
        path: folder that holds the shards (created when missing).
        collection_name: the shard, a subfolder of ``path``.
        embedding_dim: vector size; ``None`` takes it from the shard or from the first ``add``.
        similarity: ``"cosine"``, ``"dot_product"`` or ``"l2"``.
        vector_name: name of the dense vector (QdrantVectorStore's ``"text-dense"``).
        hnsw_config, quantization_config, optimizers_config, search_params, on_disk: as
            ``laser_integrations.edge`` spells them (Qdrant's REST names); refused when unknown, never dropped.
        payload_indexes: ``[{"field_name": "genre", "field_schema": "keyword"}]``, indexes for filtered fields.
        index_doc_id: index ``doc_id`` (deletes by document use it), as QdrantVectorStore does.
        batch_size: nodes per update sent to Edge.
        optimize_after_add: run the optimizers at the end of each ``add``.
        enable_hybrid: also store a sparse vector per node (``sparse_vector_name``), for the ``hybrid`` and
            ``sparse`` query modes. A shard created with the other setting is refused (``CollectionLayoutError``).
        sparse_vector_name: name of the sparse vector (QdrantVectorStore's ``"text-sparse-new"``).
        sparse_doc_fn, sparse_query_fn: the sparse encoders of node texts and query texts (default: BM25,
            ``laser_integrations.sparse.BM25SparseEncoder()``'s ``llama_index_doc_fn`` / ``llama_index_query_fn``).
        hybrid_fusion_fn: ``(dense_result, sparse_result, alpha, top_k) -> result`` (default: Qdrant's RRF,
            ``laser_integrations.hybrid.llama_index_rrf_fusion``).
        payload_layout: ``"auto"`` (default): an existing shard's layout, detected from its stored vectors (an
            unnamed vector, or the sparse ``"text-sparse"``: Haystack's) and checked on one stored payload; a new
            shard gets LlamaIndex's. ``"llama_index"``: only LlamaIndex's (another layout is refused).
            ``"haystack"``: only a shard written by Haystack (``QdrantEdgeDocumentStore`` / ``laser index``), read
            only; the shard's own settings (``hnsw_config``, ``payload_indexes``, vector names...) cannot be given.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    path: str
    collection_name: str = "laser"
    embedding_dim: int | None = None
    similarity: str = "cosine"
    vector_name: str = DEFAULT_VECTOR_NAME
    hnsw_config: dict[str, Any] | None = None
    quantization_config: dict[str, Any] | None = None
    optimizers_config: dict[str, Any] | None = None
    search_params: dict[str, Any] | None = None
    on_disk: bool | None = None
    payload_indexes: list[dict[str, str]] | None = None
    index_doc_id: bool = True
    batch_size: int = Field(default=256, gt=0)
    optimize_after_add: bool = True
    enable_hybrid: bool = False
    sparse_vector_name: str = DEFAULT_SPARSE_VECTOR_NAME
    payload_layout: PayloadLayout = "auto"

    _shard: Any = PrivateAttr(default=None)
    _layout: str | None = PrivateAttr(default=None)  # the open shard's: "llama_index" or "haystack"
    _dense_name: str = PrivateAttr(default=DEFAULT_VECTOR_NAME)  # the open shard's vector names
    _sparse_name: str = PrivateAttr(default=DEFAULT_SPARSE_VECTOR_NAME)
    _sparse_doc_fn: SparseEncoderCallable | None = PrivateAttr(default=None)
    _sparse_query_fn: SparseEncoderCallable | None = PrivateAttr(default=None)
    _hybrid_fusion_fn: Callable[..., VectorStoreQueryResult] | None = PrivateAttr(default=None)

    def __init__(
        self,
        path: str | Path,
        *,
        sparse_doc_fn: SparseEncoderCallable | None = None,
        sparse_query_fn: SparseEncoderCallable | None = None,
        hybrid_fusion_fn: Callable[..., VectorStoreQueryResult] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path=str(path), **kwargs)
        given = [n for n, f in (("sparse_doc_fn", sparse_doc_fn), ("sparse_query_fn", sparse_query_fn),
                                ("hybrid_fusion_fn", hybrid_fusion_fn)) if f is not None]  # fmt: skip
        if given and not self.enable_hybrid:
            msg = f"{', '.join(given)} serve hybrid search only; pass enable_hybrid=True as well, or drop them."
            raise ValueError(msg)
        if self.enable_hybrid:
            from .hybrid import llama_index_rrf_fusion
            from .sparse import BM25SparseEncoder

            bm25 = BM25SparseEncoder()
            self._sparse_doc_fn = sparse_doc_fn or bm25.llama_index_doc_fn
            self._sparse_query_fn = sparse_query_fn or bm25.llama_index_query_fn
            self._hybrid_fusion_fn = hybrid_fusion_fn or llama_index_rrf_fusion
        edge.distance(self.similarity)  # validate now, not at first use
        edge.hnsw_config(self.hnsw_config)
        edge.quantization_config(self.quantization_config)
        edge.optimizers_config(self.optimizers_config)
        edge.search_params(self.search_params)
        for spec in self.payload_indexes or []:
            if set(spec) != {"field_name", "field_schema"}:
                msg = f"Each payload_indexes entry must be {{'field_name': ..., 'field_schema': ...}}, got {spec!r}."
                raise ValueError(msg)
            edge.payload_schema(spec["field_schema"])

    @classmethod
    def class_name(cls) -> str:
        return "QdrantEdgeVectorStore"

    @property
    def folder(self) -> Path:
        """The shard's folder."""
        return Path(self.path).expanduser() / self.collection_name

    @property
    def layout(self) -> str | None:
        """The open shard's payload layout, ``"llama_index"`` or ``"haystack"`` (None before it opens)."""
        return self._layout

    @property
    def client(self) -> Any:
        """The open ``qdrant_edge.EdgeShard`` (None before first use)."""
        return self._shard

    # ---- shard -----------------------------------------------------------------------------------------------

    def _open(self, dimension: int | None = None) -> Any:
        """The shard, opened (created with ``dimension`` when it does not exist yet); None if it cannot exist yet."""
        if self._shard is not None:
            return self._shard
        stored = edge.stored_config(self.folder)
        if self.payload_layout != "llama_index" and stored is not None and _haystack_vectors(stored) is not None:
            shard = self._open_haystack(stored)
            if shard is not None:
                return shard
        if self.payload_layout == "haystack":
            msg = (
                f"payload_layout='haystack' reads a shard written by Haystack (QdrantEdgeDocumentStore / `laser "
                f"index`), but {str(self.folder)!r} holds {'no shard' if stored is None else 'another layout'}. "
                "Index it with `laser index CORPUS --path PATH --collection NAME` first, or use "
                "payload_layout='auto' for LlamaIndex's own layout."
            )
            raise ValueError(msg)
        size = self.embedding_dim
        if size is None and stored is not None:
            vectors = stored.get("vectors") or {}
            if self.vector_name not in vectors:  # raises: the shard has another layout
                edge.check_vectors(self.folder, stored, {self.vector_name: (0, self.similarity)}, self.class_name())
            size = int(vectors[self.vector_name]["size"])
        size = size or dimension
        if size is None:
            return None  # nothing written yet and no size to create a shard with
        indexes = {spec["field_name"]: spec["field_schema"] for spec in self.payload_indexes or []}
        if self.index_doc_id:
            indexes.setdefault(DOC_ID_KEY, "keyword")
        self._shard = edge.open_shard(
            self.folder,
            vectors={self.vector_name: (size, self.similarity)},
            hnsw=self.hnsw_config,
            quantization=self.quantization_config,
            on_disk=self.on_disk,
            optimizers=self.optimizers_config,
            payload_indexes=indexes,
            sparse=[self.sparse_vector_name] if self.enable_hybrid else None,
            hybrid_flag="enable_hybrid=True / hybrid=True",
            where="QdrantEdgeVectorStore",
        )
        self.embedding_dim = size
        self._layout, self._dense_name, self._sparse_name = "llama_index", self.vector_name, self.sparse_vector_name
        return self._shard

    def _open_haystack(self, stored: dict[str, Any]) -> Any:
        """Load a Haystack-layout shard as it is (read only); None when its payload turns out to be LlamaIndex's."""
        dense, sparse = _haystack_vectors(stored)  # type: ignore[misc]
        where = f"Qdrant Edge folder {str(self.folder.parent)!r}"
        given = sorted(name for name in _SHARD_SETTINGS if name in self.model_fields_set)
        if given:
            msg = (
                f"{str(self.folder)!r} was written by Haystack (QdrantEdgeDocumentStore / `laser index`), whose "
                f"store owns its settings; QdrantEdgeVectorStore only reads it and cannot take {', '.join(given)}. "
                "Remove them (search_params still apply), or change them through QdrantEdgeDocumentStore."
            )
            raise ValueError(msg)
        if self.enable_hybrid and sparse is None:
            raise edge.layout_error(self.collection_name, where, True, "enable_hybrid=True / hybrid=True")
        size = int(stored["vectors"][dense]["size"])
        edge.check_vectors(self.folder, stored, {dense: (self.embedding_dim or size, self.similarity)},
                           self.class_name(), [sparse] if self.enable_hybrid and sparse else ())  # fmt: skip
        qe = edge.require_edge()
        shard = edge.load_shard(self.folder)  # as it is: its settings stay Haystack's
        try:
            sample, _ = shard.scroll(qe.ScrollRequest(limit=1, with_payload=True, with_vector=False))
        except BaseException:
            shard.close()
            raise
        if sample and "_node_content" in (sample[0].payload or {}):  # an older QdrantVectorStore's unnamed vector
            shard.close()
            return None
        self._shard, self.embedding_dim = shard, size
        self._layout, self._dense_name, self._sparse_name = "haystack", dense, sparse or HAYSTACK_SPARSE_VECTOR_NAME
        return shard

    def _refuse_writes(self, what: str) -> None:
        """Refuse ``what`` (a write) on a Haystack-layout shard: one collection never holds two payload layouts."""
        if self._layout == "haystack":
            msg = (
                f"QdrantEdgeVectorStore cannot {what}: {str(self.folder)!r} was written by Haystack "
                "(QdrantEdgeDocumentStore / `laser index`) in qdrant-haystack's payload layout, and this store "
                "reads it but never writes LlamaIndex's layout into it. Write it with Haystack's store: `laser index "
                "CORPUS --path PATH --collection NAME`, or laser_integrations.qdrant.open_document_store(path=..., "
                "collection=...) and write_documents; or give LlamaIndex's nodes their own collection."
            )
            raise ValueError(msg)

    def open(self) -> Any:
        """Open the shard now (needs ``embedding_dim`` or an existing shard); returns the ``EdgeShard``."""
        shard = self._open()
        if shard is None:
            msg = f"{str(self.folder)!r} holds no shard yet; give embedding_dim or add nodes first."
            raise ValueError(msg)
        return shard

    def close(self) -> None:
        """Flush and release the shard and its lock; it reopens on next use."""
        if self._shard is not None:
            shard, self._shard = self._shard, None
            shard.close()

    def optimize(self, progress_bar: bool = False) -> bool:
        """Run Qdrant's optimizers until none is planned (builds HNSW); True if anything changed.

        Args:
            progress_bar: show a spinner with the elapsed time on stderr during the build (Edge reports no
                progress to count).
        """
        return edge.optimize(self.open(), progress=progress_bar, what=f"collection {self.collection_name!r}")

    # ---- BasePydanticVectorStore -----------------------------------------------------------------------------

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        """Write the nodes (each with an embedding); returns their ids. Re-adding a node id overwrites it."""
        if add_kwargs:
            msg = f"QdrantEdgeVectorStore.add takes no options, got {sorted(add_kwargs)}."
            raise TypeError(msg)
        if not nodes:
            return []
        sizes = set()
        for node in nodes:
            if node.embedding is None:
                msg = f"Node {node.node_id!r} has no embedding; embed the nodes before adding them."
                raise ValueError(msg)
            sizes.add(len(node.embedding))
        shard = self._open(dimension=len(nodes[0].embedding))
        self._refuse_writes("add nodes")
        wrong = sizes - {self.embedding_dim}
        if wrong:
            msg = (
                f"Embeddings of {sorted(wrong)} values cannot go into {str(self.folder)!r}, which holds vectors of "
                f"{self.embedding_dim}; embed with the model the collection was built with. Nothing was written."
            )
            raise ValueError(msg)
        qe = edge.require_edge()
        for start in range(0, len(nodes), self.batch_size):
            batch = nodes[start : start + self.batch_size]
            vectors: list[dict[str, Any]] = [{self._dense_name: node.get_embedding()} for node in batch]
            if self._sparse_doc_fn is not None:  # the text QdrantVectorStore encodes: what the dense model embeds
                texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in batch]
                indices, values = self._sparse_doc_fn(texts)
                for vector, ids, weights in zip(vectors, indices, values, strict=True):
                    if ids:  # a text without terms has no sparse vector (the sparse search cannot find it)
                        vector[self._sparse_name] = qe.SparseVector(indices=list(ids), values=list(weights))
            points = [
                qe.Point(
                    id=point_id(node.node_id),
                    vector=vector,
                    payload=node_to_metadata_dict(node, remove_text=False, flat_metadata=self.flat_metadata),
                )
                for node, vector in zip(batch, vectors, strict=True)
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))
        if self.optimize_after_add:
            self.optimize()
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id``."""
        shard = self._open()
        if shard is not None:
            self._refuse_writes("delete a document's nodes")
            qe = edge.require_edge()
            of_document = qe.Filter(must=[edge.equal(DOC_ID_KEY, ref_doc_id)])
            shard.update(qe.UpdateOperation.delete_points_by_filter(of_document))

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes with these ids and/or matching ``filters`` (both: the nodes that satisfy both)."""
        if node_ids is None and filters is None:
            msg = "Give node_ids and/or filters; use clear() to delete every node."
            raise ValueError(msg)
        shard = self._open()
        if shard is not None:
            self._refuse_writes("delete nodes")
            qe = edge.require_edge()
            shard.update(qe.UpdateOperation.delete_points_by_filter(self._filter(node_ids, filters)))

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, limit: int | None = None
    ) -> list[BaseNode]:
        """The nodes with these ids and/or matching ``filters`` (all nodes with neither), with their embeddings."""
        shard = self._open()
        if shard is None:
            return []
        qe = edge.require_edge()
        nodes: list[BaseNode] = []
        offset = None
        while limit is None or len(nodes) < limit:
            page = 1000 if limit is None else min(1000, limit - len(nodes))
            request = qe.ScrollRequest(
                offset=offset, limit=page, filter=self._filter(node_ids, filters), with_payload=True,
                with_vector=[self._dense_name],
            )  # fmt: skip
            records, offset = shard.scroll(request)
            nodes.extend(self._node(record) for record in records)
            if offset is None:
                break
        return nodes

    def clear(self) -> None:
        """Delete every node (the shard and its settings stay)."""
        shard = self._open()
        if shard is not None:
            self._refuse_writes("clear the collection")
            qe = edge.require_edge()
            shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter()))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nearest nodes to ``query.query_embedding`` that match its filters.

        Modes as ``QdrantVectorStore`` answers them: ``default`` (dense); with ``enable_hybrid``, ``hybrid`` (a
        dense search ``similarity_top_k`` deep and a sparse one ``sparse_top_k`` deep, fused by
        ``hybrid_fusion_fn`` into ``hybrid_top_k`` nodes, weighted by ``alpha``) and ``sparse``.
        """
        modes = [VectorStoreQueryMode.DEFAULT]
        if self.enable_hybrid:
            modes += [VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SPARSE]
        if query.mode not in modes:
            hint = "" if self.enable_hybrid else " (hybrid and sparse need enable_hybrid=True / hybrid=True)"
            msg = (
                f"QdrantEdgeVectorStore answers the query modes {[m.value for m in modes]}{hint}, not "
                f"{query.mode.value!r}."
            )
            raise ValueError(msg)
        sparse_mode = query.mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SPARSE)
        if sparse_mode and not query.query_str:
            msg = f"A {query.mode.value!r} query needs query_str, the text the sparse encoder turns into terms."
            raise ValueError(msg)
        if query.mode != VectorStoreQueryMode.SPARSE and query.query_embedding is None:
            msg = "The query has no query_embedding; embed it with the index's embed model."
            raise ValueError(msg)
        shard = self._open()
        if shard is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if query.query_embedding is not None and len(query.query_embedding) != self.embedding_dim:
            msg = (
                f"The query embedding has {len(query.query_embedding)} values, but {str(self.folder)!r} holds "
                f"vectors of {self.embedding_dim}; embed the query with the model the nodes were embedded with."
            )
            raise ValueError(msg)
        qe = edge.require_edge()
        # LlamaIndex's retriever passes node_ids=[] for "no restriction" (as QdrantVectorStore reads it).
        condition = self._filter(query.node_ids or None, query.filters)
        if query.doc_ids and self._layout == "haystack":
            msg = (
                "doc_ids cannot be honoured on a Haystack-layout shard: a Haystack document is one node, with no "
                "source document to match; restrict the search with node_ids (the Haystack document ids) instead."
            )
            raise ValueError(msg)
        if query.doc_ids:
            of_documents = qe.Filter(should=[edge.equal(DOC_ID_KEY, d) for d in query.doc_ids])
            condition = qe.Filter(must=[condition, of_documents])
        if sparse_mode:
            assert self._sparse_query_fn is not None and query.query_str is not None  # set with enable_hybrid
            indices, values = self._sparse_query_fn([query.query_str])
            sparse = qe.SparseVector(indices=list(indices[0]), values=list(values[0]))
            depth = query.sparse_top_k or query.similarity_top_k
            sparse_result = self._search(shard, sparse, self._sparse_name, depth, condition)
            if query.mode == VectorStoreQueryMode.SPARSE:
                return sparse_result
        dense = [float(x) for x in query.query_embedding]  # type: ignore[union-attr]
        dense_result = self._search(shard, dense, self._dense_name, query.similarity_top_k, condition)
        if query.mode == VectorStoreQueryMode.DEFAULT:
            return dense_result
        assert self._hybrid_fusion_fn is not None
        return self._hybrid_fusion_fn(
            dense_result, sparse_result, alpha=query.alpha if query.alpha is not None else 0.5,
            top_k=query.hybrid_top_k or query.similarity_top_k,
        )  # fmt: skip

    def _search(self, shard: Any, vector: Any, using: str, limit: int, condition: Any) -> VectorStoreQueryResult:
        """One search of the vector ``using``: the ``limit`` best nodes matching ``condition``, best first."""
        qe = edge.require_edge()
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector, using=using),
            filter=condition,
            with_payload=True,
            with_vector=[self._dense_name],
            params=edge.search_params(self.search_params) if using == self._dense_name else None,
        )
        points = shard.query(request)
        nodes = [self._node(point) for point in points]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[p.score for p in points], ids=[n.node_id for n in nodes]
        )

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _node(self, record: Any) -> BaseNode:
        vector = record.vector or {}
        # An unnamed vector (Haystack's layout without sparse vectors) comes back as a plain list.
        embedding = vector.get(self._dense_name) if isinstance(vector, dict) else (vector or None)
        if self._layout == "haystack":
            return haystack_node(record.payload, embedding)
        node = metadata_dict_to_node(record.payload)
        node.embedding = embedding
        return node

    def _filter(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> Any:
        qe = edge.require_edge()
        haystack = self._layout == "haystack"
        must = []
        if node_ids is not None:
            if not node_ids:
                must.append(edge.nothing())
            elif haystack:  # its point ids are qdrant-haystack's uuid5 of the document id (a node's id here)
                from haystack_integrations.document_stores.qdrant.converters import convert_id

                must.append(qe.HasIdCondition({convert_id(i) for i in node_ids}))
            else:
                must.append(qe.HasIdCondition({point_id(i) for i in node_ids}))
        if filters is not None:
            must.append(convert_metadata_filters(filters, prefix=HAYSTACK_META_PREFIX if haystack else ""))
        return qe.Filter(must=must)


def _haystack_vectors(stored: dict[str, Any]) -> tuple[str, str | None] | None:
    """The dense and sparse vector names of a shard in qdrant-haystack's layout (``("", None)`` or ``("text-dense",
    "text-sparse")``), or None for any other stored layout."""
    vectors, sparse = set(stored.get("vectors") or {}), set(stored.get("sparse_vectors") or {})
    if vectors == {""} and not sparse:
        return "", None
    if vectors == {HAYSTACK_DENSE_VECTOR_NAME} and sparse == {HAYSTACK_SPARSE_VECTOR_NAME}:
        return HAYSTACK_DENSE_VECTOR_NAME, HAYSTACK_SPARSE_VECTOR_NAME
    return None


def haystack_node(payload: dict[str, Any], embedding: list[float] | None = None) -> TextNode:
    """A Haystack ``Document.to_dict()`` payload as a ``TextNode``: its id, content and meta (a blob or an inline
    sparse embedding has no place in a TextNode and is left out)."""
    return TextNode(id_=str(payload["id"]), text=payload.get("content") or "", metadata=dict(payload.get("meta") or {}),
                    embedding=embedding)  # fmt: skip


def convert_metadata_filters(filters: MetadataFilters, prefix: str = "") -> Any:
    """LlamaIndex ``MetadataFilters`` as a ``qdrant_edge.Filter`` over the node metadata: top-level payload keys, or
    ``prefix + key`` (``"meta."`` for a Haystack payload).

    Raises:
        ValueError: an operator Qdrant Edge cannot honour (``text_match_insensitive``) or a malformed value.
    """
    qe = edge.require_edge()
    parts = [
        convert_metadata_filters(f, prefix) if isinstance(f, MetadataFilters) else _metadata_condition(f, prefix)
        for f in filters.filters
    ]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return qe.Filter(must=parts)
    if condition == FilterCondition.OR:
        return qe.Filter(should=parts) if parts else edge.nothing()
    return qe.Filter(must_not=[qe.Filter(must=parts)])  # NOT negates the conjunction of its filters


def _metadata_condition(item: MetadataFilter, prefix: str = "") -> Any:
    qe = edge.require_edge()
    key, value, operator = prefix + item.key, item.value, FilterOperator(item.operator)
    if operator == FilterOperator.EQ or operator == FilterOperator.CONTAINS:
        return edge.equal(key, value)
    if operator == FilterOperator.NE:
        return qe.Filter(must_not=[edge.equal(key, value)])
    if operator in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
        return edge.ordering(operator.value, key, value)
    if operator == FilterOperator.IS_EMPTY:
        return qe.IsEmptyCondition(key=key)
    if operator == FilterOperator.TEXT_MATCH:
        if not isinstance(value, str):
            msg = f"text_match on {key!r} needs a string, got {value!r}."
            raise ValueError(msg)
        return qe.FieldCondition(key=key, match=qe.MatchText(value))
    if operator in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL):
        values = value if isinstance(value, list) else None
        if values is None:
            msg = f"The value of '{operator.value}' on {key!r} must be a list, got {value!r}."
            raise ValueError(msg)
        equals = [edge.equal(key, v) for v in values]
        if operator in (FilterOperator.IN, FilterOperator.ANY):
            return qe.Filter(should=equals) if equals else edge.nothing()
        if operator == FilterOperator.NIN:
            return qe.Filter(must_not=equals)
        return qe.Filter(must=equals)
    msg = f"QdrantEdgeVectorStore cannot honour the filter operator {operator.value!r} (on {key!r})."
    raise ValueError(msg)
