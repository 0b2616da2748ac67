"""``QdrantEdgeVectorStore``: a LlamaIndex vector store on Qdrant Edge, Qdrant's engine in this process.

Points are laid out as llama-index-vector-stores-qdrant's ``QdrantVectorStore`` lays them out (one named dense
vector ``"text-dense"``, the payload of ``node_to_metadata_dict``: the node's metadata at the top level, the node
itself in ``_node_content``, its document in ``doc_id``/``ref_doc_id``/``document_id``), so the points can move to
a Qdrant server collection that ``QdrantVectorStore`` reads.

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
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
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

DEFAULT_VECTOR_NAME = "text-dense"  # QdrantVectorStore's name for the dense vector
DOC_ID_KEY = "doc_id"
# Node ids that are not UUIDs (Qdrant accepts only UUIDs and integers) become uuid5 in this namespace.
NODE_ID_NAMESPACE = uuid.UUID("0b8f5a8e-6a34-4d7e-9b3c-5b1f0c9f2d41")


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

    _shard: Any = PrivateAttr(default=None)

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(path=str(path), **kwargs)
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
    def client(self) -> Any:
        """The open ``qdrant_edge.EdgeShard`` (None before first use)."""
        return self._shard

    # ---- shard -----------------------------------------------------------------------------------------------

    def _open(self, dimension: int | None = None) -> Any:
        """The shard, opened (created with ``dimension`` when it does not exist yet); None if it cannot exist yet."""
        if self._shard is not None:
            return self._shard
        stored = edge.stored_config(self.folder)
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
            where="QdrantEdgeVectorStore",
        )
        self.embedding_dim = size
        return self._shard

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
        wrong = sizes - {self.embedding_dim}
        if wrong:
            msg = (
                f"Embeddings of {sorted(wrong)} values cannot go into {str(self.folder)!r}, which holds vectors of "
                f"{self.embedding_dim}; embed with the model the collection was built with. Nothing was written."
            )
            raise ValueError(msg)
        qe = edge.require_edge()
        for start in range(0, len(nodes), self.batch_size):
            points = [
                qe.Point(
                    id=point_id(node.node_id),
                    vector={self.vector_name: node.get_embedding()},
                    payload=node_to_metadata_dict(node, remove_text=False, flat_metadata=self.flat_metadata),
                )
                for node in nodes[start : start + self.batch_size]
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))
        if self.optimize_after_add:
            self.optimize()
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id``."""
        shard = self._open()
        if shard is not None:
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
                with_vector=[self.vector_name],
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
            qe = edge.require_edge()
            shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter()))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nearest nodes to ``query.query_embedding`` that match its filters."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            msg = f"QdrantEdgeVectorStore answers dense queries only (mode 'default'), not {query.mode.value!r}."
            raise ValueError(msg)
        if query.query_embedding is None:
            msg = "The query has no query_embedding; embed it with the index's embed model."
            raise ValueError(msg)
        shard = self._open()
        if shard is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if len(query.query_embedding) != self.embedding_dim:
            msg = (
                f"The query embedding has {len(query.query_embedding)} values, but {str(self.folder)!r} holds "
                f"vectors of {self.embedding_dim}; embed the query with the model the nodes were embedded with."
            )
            raise ValueError(msg)
        qe = edge.require_edge()
        # LlamaIndex's retriever passes node_ids=[] for "no restriction" (as QdrantVectorStore reads it).
        condition = self._filter(query.node_ids or None, query.filters)
        if query.doc_ids:
            of_documents = qe.Filter(should=[edge.equal(DOC_ID_KEY, d) for d in query.doc_ids])
            condition = qe.Filter(must=[condition, of_documents])
        request = qe.QueryRequest(
            limit=query.similarity_top_k,
            query=qe.Query.Nearest([float(x) for x in query.query_embedding], using=self.vector_name),
            filter=condition,
            with_payload=True,
            with_vector=[self.vector_name],
            params=edge.search_params(self.search_params),
        )
        points = shard.query(request)
        nodes = [self._node(point) for point in points]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[p.score for p in points], ids=[n.node_id for n in nodes]
        )

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _node(self, record: Any) -> BaseNode:
        node = metadata_dict_to_node(record.payload)
        vector = record.vector or {}
        node.embedding = vector.get(self.vector_name) if isinstance(vector, dict) else None
        return node

    def _filter(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> Any:
        qe = edge.require_edge()
        must = []
        if node_ids is not None:
            must.append(qe.HasIdCondition({point_id(i) for i in node_ids}) if node_ids else edge.nothing())
        if filters is not None:
            must.append(convert_metadata_filters(filters))
        return qe.Filter(must=must)


def convert_metadata_filters(filters: MetadataFilters) -> Any:
    """LlamaIndex ``MetadataFilters`` as a ``qdrant_edge.Filter`` over the node metadata (top-level payload keys).

    Raises:
        ValueError: an operator Qdrant Edge cannot honour (``text_match_insensitive``) or a malformed value.
    """
    qe = edge.require_edge()
    parts = [
        convert_metadata_filters(f) if isinstance(f, MetadataFilters) else _metadata_condition(f)
        for f in filters.filters
    ]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return qe.Filter(must=parts)
    if condition == FilterCondition.OR:
        return qe.Filter(should=parts) if parts else edge.nothing()
    return qe.Filter(must_not=[qe.Filter(must=parts)])  # NOT negates the conjunction of its filters


def _metadata_condition(item: MetadataFilter) -> Any:
    qe = edge.require_edge()
    key, value, operator = item.key, item.value, FilterOperator(item.operator)
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
