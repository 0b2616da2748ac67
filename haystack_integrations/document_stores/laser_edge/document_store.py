"""``QdrantEdgeDocumentStore``: a Haystack document store on Qdrant Edge, Qdrant's engine in this process."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, default_from_dict, default_to_dict
from haystack.dataclasses import SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.document_stores.qdrant.converters import convert_id

from laser_integrations import edge
from laser_integrations.hybrid import DENSE_VECTOR_NAME, SPARSE_VECTOR_NAME, validate_rrf

from .filters import convert_filters

DEFAULT_INDEX = "Document"
# Qdrant's depth of a prefetch that names no limit: qdrant-haystack's _query_hybrid leaves its prefetches at it.
DEFAULT_PREFETCH_LIMIT = 10
# Qdrant's RRF constant when a query names none (qdrant-haystack's default, Fusion.RRF).
QDRANT_DEFAULT_RRF_K = 2


class QdrantEdgeDocumentStore:
    """Documents and their embeddings in a Qdrant Edge shard: HNSW, payload indexes and a WAL, no server.

    Each ``index`` is one Edge shard in the folder ``path/index``. Points are laid out as qdrant-haystack's
    ``QdrantDocumentStore`` lays them out (point id ``uuid5(Document.id)``, payload ``Document.to_dict()`` without
    the embedding, one unnamed dense vector), so the points can move to a Qdrant server collection unchanged.
    With ``use_sparse_embeddings=True`` (hybrid search), as qdrant-haystack's with ``sparse_idf=True``: the named
    dense vector ``"text-dense"`` and ``Document.sparse_embedding`` as the sparse vector ``"text-sparse"``, to which
    Qdrant applies its IDF modifier (BM25's IDF, see ``laser_integrations.sparse``).

    One process at a time can open a shard (Edge locks its write-ahead log); a second one gets
    :class:`~laser_integrations.qdrant.StorageLockedError` naming the folder. What a store wrote is durable once
    ``write_documents`` returns and is seen by the next process that opens the folder.

    HNSW is built by Qdrant's optimizers, which Edge runs when asked: by default after each ``write_documents``
    call (``optimize_after_write``), so write a corpus in one call (``DocumentWriter`` does) or pass
    ``optimize_after_write=False`` and call :meth:`optimize` once after the upload, as Qdrant's bulk-load advice
    says. Segments not yet indexed are searched exactly.

    Usage example:

    ```python
    from haystack import Document
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

    store = QdrantEdgeDocumentStore(path="laser_edge", embedding_dim=4)
    store.write_documents([Document(content="Kraft's inequality", embedding=[0.1, 0.2, 0.3, 0.4])])
    print(store.query_by_embedding([0.1, 0.2, 0.3, 0.4], top_k=1)[0].content)
    ```
    """

    def __init__(
        self,
        path: str | Path,
        *,
        index: str = DEFAULT_INDEX,
        embedding_dim: int = 768,
        similarity: str = "cosine",
        return_embedding: bool = False,
        recreate_index: bool = False,
        on_disk: bool | None = None,
        hnsw_config: dict[str, Any] | None = None,
        quantization_config: dict[str, Any] | None = None,
        optimizers_config: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        payload_fields_to_index: list[dict[str, str]] | None = None,
        write_batch_size: int = 100,
        scroll_size: int = 10_000,
        optimize_after_write: bool = True,
        use_sparse_embeddings: bool = False,
    ) -> None:
        """Create the store; the shard opens on first use (or :meth:`open`).

        :param path: Folder that holds the store's shards (created when missing).
        :param index: Name of the shard (the collection), a subfolder of `path`.
        :param embedding_dim: Size of the dense vectors; checked against an existing shard.
        :param similarity: "cosine", "dot_product" or "l2".
        :param return_embedding: Return the Documents' embeddings from filter_documents and searches.
        :param recreate_index: Drop the shard and create it empty (all its Documents are lost).
        :param on_disk: Keep the original vectors on disk (memory-mapped) instead of in RAM.
        :param hnsw_config: HNSW settings as Qdrant names them (`m`, `ef_construct`, `full_scan_threshold`,
            `max_indexing_threads`, `on_disk`, `payload_m`).
        :param quantization_config: Qdrant's form, e.g. `{"scalar": {"type": "int8", "always_ram": True}}`.
        :param optimizers_config: Qdrant's optimizer settings (`indexing_threshold` in KB, ...).
        :param search_params: Defaults for searches: `hnsw_ef`, `exact`, `quantization`
            (`{"rescore": True, "oversampling": 2.0}`), `indexed_only`.
        :param payload_fields_to_index: Payload indexes for the fields filters use, as in qdrant-haystack:
            `[{"field_name": "meta.category", "field_schema": "keyword"}]`.
        :param write_batch_size: Documents per update sent to Edge.
        :param scroll_size: Points read per scroll page.
        :param optimize_after_write: Run Qdrant's optimizers (HNSW build, merges) at the end of each
            `write_documents` call.
        :param use_sparse_embeddings: Also store `Document.sparse_embedding` (a sparse vector with Qdrant's IDF
            modifier) for hybrid search (`_query_hybrid`, `LaSERHybridRetriever`). A shard created with the other
            setting is refused (``CollectionLayoutError``).
        """
        edge.distance(similarity)  # validate now, not at first use
        edge.hnsw_config(hnsw_config)
        edge.quantization_config(quantization_config)
        edge.optimizers_config(optimizers_config)
        edge.search_params(search_params)
        self._indexes = _payload_indexes(payload_fields_to_index)
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            msg = f"embedding_dim must be a positive integer, got {embedding_dim!r}."
            raise ValueError(msg)
        self.path = str(path)
        self.index = index
        self.embedding_dim = embedding_dim
        self.similarity = similarity
        self.return_embedding = return_embedding
        self.recreate_index = recreate_index
        self.on_disk = on_disk
        self.hnsw_config = hnsw_config
        self.quantization_config = quantization_config
        self.optimizers_config = optimizers_config
        self.search_params = search_params
        self.payload_fields_to_index = payload_fields_to_index
        self.write_batch_size = write_batch_size
        self.scroll_size = scroll_size
        self.optimize_after_write = optimize_after_write
        self.use_sparse_embeddings = bool(use_sparse_embeddings)
        self._shard: Any = None
        self._recreated = False

    @property
    def folder(self) -> Path:
        """The shard's folder, ``path/index``."""
        return Path(self.path).expanduser() / self.index

    # ---- connection -------------------------------------------------------------------------------------------

    def open(self) -> Any:
        """Open (or create) the shard now; returns the ``qdrant_edge.EdgeShard``.

        Raises:
            CollectionDimensionError: the shard holds vectors of another size.
            CollectionLayoutError: the shard has sparse vectors and ``use_sparse_embeddings`` is False, or the
                other way round.
            StorageLockedError: another process holds the folder.
        """
        if self._shard is not None:
            return self._shard
        if self.recreate_index and not self._recreated and self.folder.exists():
            edge.remove_shard(self.folder)
        # Only once per store: a closed and reopened store must not drop what it wrote meanwhile.
        self._recreated = True
        self._shard = edge.open_shard(
            self.folder,
            vectors={self._dense_name: (self.embedding_dim, self.similarity)},
            sparse=[SPARSE_VECTOR_NAME] if self.use_sparse_embeddings else None,
            hybrid_flag="use_sparse_embeddings=True / hybrid=True / --hybrid",
            hnsw=self.hnsw_config,
            quantization=self.quantization_config,
            on_disk=self.on_disk,
            optimizers=self.optimizers_config,
            payload_indexes=self._indexes,
            where="QdrantEdgeDocumentStore",
        )
        return self._shard

    def close(self) -> None:
        """Flush and release the shard (and its lock); the store reopens it on next use."""
        if self._shard is not None:
            shard, self._shard = self._shard, None
            shard.close()

    def optimize(self, progress_bar: bool = False) -> bool:
        """Run Qdrant's optimizers until none is planned (builds HNSW); True if anything changed.

        :param progress_bar: Show a spinner with the elapsed time on stderr during the build (Edge reports no
            progress to count).
        """
        return edge.optimize(self.open(), progress=progress_bar, what=f"collection {self.index!r}")

    # ---- DocumentStore protocol -------------------------------------------------------------------------------

    def count_documents(self) -> int:
        """The number of Documents in the store."""
        return self.open().count(edge.require_edge().CountRequest(exact=True))

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """The Documents matching Haystack `filters` (all of them without filters).

        :param filters: Haystack filters (https://docs.haystack.deepset.ai/docs/metadata-filtering) or a native
            ``qdrant_edge.Filter``.
        """
        return list(self._scroll(convert_filters(filters), with_vector=self.return_embedding))

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write `documents`; returns how many were written.

        :param documents: Documents; each embedding must have `embedding_dim` values.
        :param policy: NONE and FAIL raise ``DuplicateDocumentError`` (writing nothing) when a Document id is
            already stored or repeated; SKIP writes only new ids; OVERWRITE replaces stored ones.
        """
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            msg = "write_documents expects a list of Documents."
            raise ValueError(msg)
        if not documents:
            return 0
        for document in documents:
            if document.embedding is not None and len(document.embedding) != self.embedding_dim:
                msg = (
                    f"Document {document.id!r} has an embedding of {len(document.embedding)} values, but the store "
                    f"expects dim {self.embedding_dim} (embedding_dim); embed it with the store's model."
                )
                raise ValueError(msg)
        shard = self.open()
        if policy in (DuplicatePolicy.NONE, DuplicatePolicy.FAIL):
            repeated = [i for i, n in Counter(d.id for d in documents).items() if n > 1]
            stored = self._stored_ids([d.id for d in documents])
            if repeated or stored:
                msg = (
                    f"Documents with ids {sorted(set(repeated) | stored)[:10]} already exist in the store or are "
                    "repeated in the input; nothing was written. Use policy=DuplicatePolicy.OVERWRITE or SKIP."
                )
                raise DuplicateDocumentError(msg)
        elif policy == DuplicatePolicy.SKIP:
            stored = self._stored_ids([d.id for d in documents])
            seen: set[str] = set()
            kept = []
            for document in documents:
                if document.id not in stored and document.id not in seen:
                    kept.append(document)
                    seen.add(document.id)
            documents = kept
        qe = edge.require_edge()
        for start in range(0, len(documents), self.write_batch_size):
            batch = documents[start : start + self.write_batch_size]
            shard.update(qe.UpdateOperation.upsert_points([_point(d, self.use_sparse_embeddings) for d in batch]))
        if self.optimize_after_write:
            self.optimize()
        return len(documents)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete the Documents with these ids; unknown ids are ignored."""
        if document_ids:
            qe = edge.require_edge()
            self.open().update(qe.UpdateOperation.delete_points([convert_id(i) for i in document_ids]))

    # ---- beyond the protocol, as qdrant-haystack offers ------------------------------------------------------

    def delete_all_documents(self, recreate_index: bool = False) -> None:
        """Delete every Document; with `recreate_index`, drop the shard's files and recreate it (same settings)."""
        if recreate_index:
            self.close()
            if self.folder.exists():
                edge.remove_shard(self.folder)
            self.open()
            return
        qe = edge.require_edge()
        self.open().update(qe.UpdateOperation.delete_points_by_filter(qe.Filter()))

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the Documents matching `filters`; returns how many were deleted."""
        qe = edge.require_edge()
        condition = self._required_filter(filters)
        count = self.open().count(qe.CountRequest(exact=True, filter=condition))
        if count:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(condition))
        return count

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merge `meta` into the meta of the Documents matching `filters` (vectors kept); returns how many."""
        if not isinstance(meta, dict):
            msg = f"meta must be a dictionary, got {type(meta).__name__}."
            raise ValueError(msg)
        qe = edge.require_edge()
        condition = self._required_filter(filters)
        count = self.open().count(qe.CountRequest(exact=True, filter=condition))
        if count and meta:
            self._shard.update(qe.UpdateOperation.set_payload_by_filter(condition, meta, key="meta"))
        return count

    def get_documents_by_id(self, ids: list[str]) -> list[Document]:
        """The stored Documents with these ids (unknown ids are left out), as qdrant-haystack's store returns them."""
        shard = self.open()
        documents: list[Document] = []
        for start in range(0, len(ids), self.scroll_size):
            point_ids = [convert_id(i) for i in ids[start : start + self.scroll_size]]
            records = shard.retrieve(point_ids, with_payload=True, with_vector=self.return_embedding)
            documents.extend(_document(record, None) for record in records if record.payload)
        return documents

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """The number of Documents matching `filters`."""
        qe = edge.require_edge()
        return self.open().count(qe.CountRequest(exact=True, filter=convert_filters(filters)))

    def get_metadata_fields_info(self) -> dict[str, dict[str, str]]:
        """Each meta field's name and type (``keyword``, ``long``, ``float``, ``boolean``), as qdrant-haystack's."""
        fields: dict[str, dict[str, str]] = {}
        for document in self._scroll(None, with_vector=False):
            for name, value in document.meta.items():
                if value is not None and name not in fields:
                    fields[name] = {"type": _type_name(value)}
        return fields

    def get_metadata_field_min_max(self, metadata_field: str) -> dict[str, Any]:
        """``{"min": ..., "max": ...}`` of a meta field over all Documents (None and None when no Document has it)."""
        values = [v for v, _ in self._meta_values(_meta_name(metadata_field), None)]
        return {"min": min(values), "max": max(values)} if values else {"min": None, "max": None}

    def count_unique_metadata_by_filter(self, filters: dict[str, Any], metadata_fields: list[str]) -> dict[str, int]:
        """The number of distinct values of each of `metadata_fields` among the Documents matching `filters`."""
        names = [_meta_name(f) for f in metadata_fields]
        unique: dict[str, set[tuple[type, Any]]] = {name: set() for name in names}
        for document in self._scroll(convert_filters(filters), with_vector=False):
            for name in names:
                if document.meta.get(name) is not None:
                    unique[name].add(_distinct_key(document.meta[name]))
        return {field: len(unique[name]) for field, name in zip(metadata_fields, names, strict=True)}

    def get_metadata_field_unique_values(
        self,
        metadata_field: str,
        search_term: str | None = None,
        from_: int = 0,
        size: int = 10,
        filters: dict[str, Any] | None = None,
    ) -> tuple[list[Any], int]:
        """A page of the distinct values of a meta field (sorted) and how many there are in all.

        :param metadata_field: The meta field, with or without the "meta." prefix.
        :param search_term: Keep values whose text contains this, ignoring case.
        :param from_: Index of the first value of the page.
        :param size: Values per page.
        :param filters: Only the Documents matching these filters.
        """
        distinct: dict[tuple[type, Any], Any] = {}
        for value, key in self._meta_values(_meta_name(metadata_field), convert_filters(filters)):
            if search_term is None or search_term.lower() in str(value).lower():
                distinct.setdefault(key, value)
        ordered = sorted(distinct.values(), key=lambda v: (type(v).__name__, str(v)))
        return ordered[from_ : from_ + size], len(ordered)

    # ---- search -----------------------------------------------------------------------------------------------

    def query_by_embedding(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | Any | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
    ) -> list[Document]:
        """The `top_k` Documents nearest to `query_embedding`, best first, with their `score`.

        Same signature as qdrant-haystack's ``QdrantDocumentStore._query_by_embedding``.

        :param query_embedding: The query vector (`embedding_dim` values).
        :param filters: Haystack filters or a native ``qdrant_edge.Filter``.
        :param top_k: Maximum number of Documents.
        :param scale_score: Scale scores to [0, 1] as qdrant-haystack does.
        :param return_embedding: Return the Documents' embeddings.
        :param score_threshold: Drop Documents scoring below this (above it for l2).
        :param group_by: Not supported by Qdrant Edge: refused.
        :param group_size: Not supported by Qdrant Edge: refused.
        """
        _refuse_groups(group_by, group_size)
        self._check_query_dim(query_embedding)
        qe = edge.require_edge()
        request = qe.QueryRequest(
            limit=top_k,
            query=qe.Query.Nearest(list(map(float, query_embedding)), using=self._dense_name or None),
            filter=convert_filters(filters),
            with_payload=True,
            with_vector=return_embedding,
            score_threshold=score_threshold,
            params=edge.search_params(self.search_params),
        )
        documents = [_document(point, point.score) for point in self.open().query(request)]
        if scale_score:
            documents = [replace(d, score=self._scale(d.score)) for d in documents]
        return documents

    # QdrantEmbeddingRetriever and LaSERRetriever call the store's private name.
    _query_by_embedding = query_by_embedding

    def _query_hybrid(
        self,
        query_embedding: list[float],
        query_sparse_embedding: SparseEmbedding,
        filters: dict[str, Any] | Any | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
        score_threshold: float | None = None,
        group_by: str | None = None,
        group_size: int | None = None,
        rrf_k: int | None = None,
        rrf_weights: list[float] | None = None,
        *,
        prefetch_limit: int | None = None,
    ) -> list[Document]:
        """The `top_k` Documents best by Reciprocal Rank Fusion of a sparse and a dense search, best first.

        qdrant-haystack's ``QdrantDocumentStore._query_hybrid`` (the signature ``QdrantHybridRetriever`` calls),
        in one Edge query: a prefetch on each vector, fused by Qdrant's RRF. `score` is the fused RRF score.

        :param query_embedding: The query's dense vector (`embedding_dim` values).
        :param query_sparse_embedding: The query's sparse vector (anything with `indices` and `values`).
        :param filters: Haystack filters or a native ``qdrant_edge.Filter``, applied to both searches.
        :param top_k: Maximum number of Documents.
        :param return_embedding: Return the Documents' dense and sparse embeddings.
        :param score_threshold: Drop Documents whose fused RRF score is below this.
        :param group_by: Not supported by Qdrant Edge: refused.
        :param group_size: Not supported by Qdrant Edge: refused.
        :param rrf_k: RRF's constant (Qdrant's default, 2, when None, as qdrant-haystack leaves it).
        :param rrf_weights: `[sparse_weight, dense_weight]`, as qdrant-haystack orders them.
        :param prefetch_limit: Depth of each of the two searches (default 10, Qdrant's, as qdrant-haystack's
            prefetches go); LaSERHybridRetriever passes its own.
        """
        if not self.use_sparse_embeddings:
            msg = (
                f"Hybrid search needs sparse embeddings, but the store (index {self.index!r}) was created with "
                "use_sparse_embeddings=False; open it with use_sparse_embeddings=True (open_document_store: "
                "hybrid=True) and write Documents with sparse embeddings (BM25SparseDocumentEmbedder)."
            )
            raise ValueError(msg)
        _refuse_groups(group_by, group_size)
        self._check_query_dim(query_embedding)
        k = QDRANT_DEFAULT_RRF_K if rrf_k is None else rrf_k
        depth = DEFAULT_PREFETCH_LIMIT if prefetch_limit is None else prefetch_limit
        validate_rrf(k, depth)
        if rrf_weights is not None and len(rrf_weights) != 2:  # noqa: PLR2004
            msg = f"rrf_weights must be [sparse_weight, dense_weight], got {rrf_weights!r}."
            raise ValueError(msg)
        qe = edge.require_edge()
        condition = convert_filters(filters)
        sparse = qe.SparseVector(
            indices=list(map(int, query_sparse_embedding.indices)),
            values=list(map(float, query_sparse_embedding.values)),
        )
        request = qe.QueryRequest(
            limit=top_k,
            prefetches=[  # sparse first, as qdrant-haystack orders them (rrf_weights follow this order)
                qe.Prefetch(limit=depth, query=qe.Query.Nearest(sparse, using=SPARSE_VECTOR_NAME), filter=condition),
                qe.Prefetch(
                    limit=depth,
                    query=qe.Query.Nearest(list(map(float, query_embedding)), using=DENSE_VECTOR_NAME),
                    filter=condition,
                    params=edge.search_params(self.search_params),
                ),
            ],
            query=qe.Fusion.Rrf(k=k, weights=list(map(float, rrf_weights)) if rrf_weights is not None else None),
            with_payload=True,
            with_vector=return_embedding,
            score_threshold=score_threshold,
        )
        return [_document(point, point.score) for point in self.open().query(request)]

    # ---- serialization ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Serialize to ``{"type", "init_parameters"}``."""
        return default_to_dict(
            self,
            path=self.path,
            index=self.index,
            embedding_dim=self.embedding_dim,
            similarity=self.similarity,
            return_embedding=self.return_embedding,
            recreate_index=self.recreate_index,
            on_disk=self.on_disk,
            hnsw_config=self.hnsw_config,
            quantization_config=self.quantization_config,
            optimizers_config=self.optimizers_config,
            search_params=self.search_params,
            payload_fields_to_index=self.payload_fields_to_index,
            write_batch_size=self.write_batch_size,
            scroll_size=self.scroll_size,
            optimize_after_write=self.optimize_after_write,
            use_sparse_embeddings=self.use_sparse_embeddings,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QdrantEdgeDocumentStore:
        """Rebuild the store from :meth:`to_dict`'s output (the shard opens on first use)."""
        return default_from_dict(cls, data)

    # ---- helpers ----------------------------------------------------------------------------------------------

    @property
    def _dense_name(self) -> str:
        # qdrant-haystack's layout: one unnamed vector, or the named "text-dense" beside the sparse one.
        return DENSE_VECTOR_NAME if self.use_sparse_embeddings else ""

    def _check_query_dim(self, query_embedding: list[float]) -> None:
        if len(query_embedding) != self.embedding_dim:
            msg = (
                f"The query embedding has {len(query_embedding)} values, but the store holds vectors of dim "
                f"{self.embedding_dim}; embed the query with the model the documents were embedded with."
            )
            raise ValueError(msg)

    def _scale(self, score: float | None) -> float | None:
        if score is None:
            return None
        if self.similarity == "cosine":
            return (score + 1) / 2
        return float(1 / (1 + math.exp(-score / 100)))

    def _required_filter(self, filters: dict[str, Any]) -> Any:
        condition = convert_filters(filters)
        if condition is None:
            msg = "filters must not be empty; use delete_all_documents() to affect every Document."
            raise ValueError(msg)
        return condition

    def _stored_ids(self, ids: list[str]) -> set[str]:
        stored: set[str] = set()
        shard = self.open()
        for start in range(0, len(ids), self.scroll_size):
            point_ids = [convert_id(i) for i in ids[start : start + self.scroll_size]]
            records = shard.retrieve(point_ids, with_payload=["id"], with_vector=False)
            stored.update(r.payload["id"] for r in records if r.payload)
        return stored

    def _scroll(self, condition: Any, *, with_vector: bool) -> Iterator[Document]:
        qe = edge.require_edge()
        shard = self.open()
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=self.scroll_size, filter=condition, with_payload=True, with_vector=with_vector
                )
            )
            for record in records:
                yield _document(record, None)
            if offset is None:
                return

    def _meta_values(self, name: str, condition: Any) -> Iterator[tuple[Any, tuple[type, Any]]]:
        for document in self._scroll(condition, with_vector=False):
            value = document.meta.get(name)
            if value is not None:
                yield value, _distinct_key(value)


def _payload_indexes(fields: list[dict[str, str]] | None) -> dict[str, str]:
    indexes: dict[str, str] = {}
    for spec in fields or []:
        if set(spec) != {"field_name", "field_schema"}:
            msg = (
                "Each payload_fields_to_index entry must be {'field_name': ..., 'field_schema': ...}, e.g. "
                f"{{'field_name': 'meta.category', 'field_schema': 'keyword'}}; got {spec!r}."
            )
            raise ValueError(msg)
        edge.payload_schema(spec["field_schema"])
        indexes[spec["field_name"]] = spec["field_schema"]
    return indexes


def _refuse_groups(group_by: str | None, group_size: int | None) -> None:
    if group_by is not None or group_size is not None:
        msg = (
            "group_by/group_size are not supported by Qdrant Edge (it has no grouped search); search without "
            "them, or use QdrantDocumentStore on a Qdrant server for grouped results."
        )
        raise ValueError(msg)


def _point(document: Document, use_sparse_embeddings: bool) -> Any:
    qe = edge.require_edge()
    # to_dict() deep-copies the embedding float by float in Python (dataclasses.asdict: ~300 us for 576 values,
    # 5x the rest of the point); the payload is built without it and the list goes to Edge as it is.
    payload = replace(document, embedding=None).to_dict(flatten=False)
    payload.pop("embedding", None)
    vector = document.embedding
    if not use_sparse_embeddings:  # the sparse embedding, if any, stays in the payload, as qdrant-haystack keeps it
        return qe.Point(id=convert_id(document.id), vector=vector if vector is not None else {}, payload=payload)
    vectors: dict[str, Any] = {} if vector is None else {DENSE_VECTOR_NAME: vector}
    sparse = payload.pop("sparse_embedding", None)
    if sparse is not None:
        vectors[SPARSE_VECTOR_NAME] = qe.SparseVector(indices=sparse["indices"], values=sparse["values"])
    return qe.Point(id=convert_id(document.id), vector=vectors, payload=payload)


def _document(point: Any, score: float | None) -> Document:
    payload = dict(point.payload or {})
    payload["score"] = score
    vector = point.vector
    if isinstance(vector, dict):  # named vectors: the hybrid layout
        payload["embedding"] = vector.get(DENSE_VECTOR_NAME) or None
        sparse = vector.get(SPARSE_VECTOR_NAME)
        if sparse is not None:
            payload["sparse_embedding"] = {"indices": list(sparse.indices), "values": list(sparse.values)}
    else:
        payload["embedding"] = vector if isinstance(vector, list) and vector else None
    return Document.from_dict(payload)


def _meta_name(field: str) -> str:
    return field[len("meta.") :] if field.startswith("meta.") else field


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    return "keyword"


def _distinct_key(value: Any) -> tuple[type, Any]:
    # 1, 1.0, True and "1" are distinct values (Python's == would merge the first three); lists and dicts are
    # unhashable, so they are keyed by their text.
    return type(value), str(value) if isinstance(value, (list, dict)) else value
