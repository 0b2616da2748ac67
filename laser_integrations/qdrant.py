"""Open a Qdrant collection for LaSER vectors, for Haystack or LlamaIndex, in one place.

Three ways to reach Qdrant, one set of client calls:

- **embedded, persisted** (the default): ``path="laser_qdrant"``, a local folder, no server. Exact search; good
  for tests, demos and up to ~20,000 points. One process at a time holds the folder.
- **in memory**: ``location=":memory:"``, for tests.
- **server or cluster**: ``url="https://...:6333"`` with the API key from an environment variable
  (``api_key=Secret.from_env_var("QDRANT_API_KEY")``); ``shard_number``, ``replication_factor`` and
  ``write_consistency_factor`` are passed to the collection. This is the scale-out path. It uses the same client
  calls as embedded mode, but the test suite cannot exercise it on machines without a Qdrant server.

Every opener checks an existing collection's vector size against the encoder's dimension before anything is
written, and turns the embedded folder's lock error into one that names the folder and the fix.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from haystack.utils import Secret
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

DEFAULT_PATH = "laser_qdrant"
DEFAULT_COLLECTION = "laser"
API_KEY_ENV = "QDRANT_API_KEY"
# qdrant-client's own threshold for embedded mode (QdrantLocal.LARGE_DATA_THRESHOLD).
EMBEDDED_POINTS_LIMIT = 20_000


class CollectionDimensionError(ValueError):
    """An existing collection holds vectors of another size than the encoder produces."""


class StorageLockedError(RuntimeError):
    """The embedded Qdrant folder is held by another process (or another client in this one)."""


class CollectionLayoutError(ValueError):
    """An existing collection has (or lacks) the sparse BM25 vectors that hybrid search writes and reads."""


# Collection settings that only a Qdrant server honours: embedded Qdrant (qdrant-client's local mode) searches
# exactly by brute force, keeps everything in memory and has no shards, so it accepts these and ignores them.
SERVER_ONLY_SETTINGS = (
    "hnsw_config", "quantization_config", "optimizers_config", "wal_config", "on_disk", "on_disk_payload",
    "shard_number", "replication_factor", "write_consistency_factor", "sharding_method", "shard_keys",
)  # fmt: skip
SIMILARITIES = ("cosine", "dot_product", "l2")


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        msg = f"{module} is not installed; install it with pip: `pip install laser-integrations[{extra}]`."
        raise ImportError(msg) from e


def _connection(
    path: str | Path | None, location: str | None, url: str | None
) -> tuple[dict[str, Any], str]:
    """Client arguments for exactly one way in, and a human-readable description of it."""
    given = [name for name, value in (("path", path), ("location", location), ("url", url)) if value is not None]
    if len(given) > 1:
        msg = f"Give one of path, location and url, not {' and '.join(given)}."
        raise ValueError(msg)
    if url is not None:
        return {"url": url}, f"Qdrant server {url}"
    if location is not None:
        if location != ":memory:":
            msg = f"location must be ':memory:' (use path=... for a folder, url=... for a server), got {location!r}."
            raise ValueError(msg)
        return {"location": ":memory:"}, "in-memory Qdrant"
    folder = str(Path(path if path is not None else DEFAULT_PATH).expanduser())
    return {"path": folder}, f"embedded Qdrant folder {folder!r}"


def _resolve_api_key(api_key: Secret | str | None, url: str | None) -> str | None:
    if api_key is None:
        return None
    if isinstance(api_key, str):
        # qdrant-haystack's QdrantDocumentStore takes a Secret only (a string fails there with an AttributeError).
        msg = (
            "api_key must be a haystack Secret from an environment variable, not a plain string, so it is never "
            f"written to a file or a log: put the key in ${API_KEY_ENV} and pass "
            f"api_key=Secret.from_env_var({API_KEY_ENV!r})."
        )
        raise TypeError(msg)
    if url is None:
        msg = "api_key is for a Qdrant server (url=...); embedded and in-memory Qdrant take no key. Remove api_key."
        raise ValueError(msg)
    return api_key.resolve_value()


def _refuse_server_only(settings: dict[str, Any], where: str) -> None:
    """Embedded Qdrant accepts server-only collection settings and drops them; refuse them instead."""
    # on_disk=False asks for what embedded Qdrant does anyway (everything in memory): not refused.
    given = [
        name for name in SERVER_ONLY_SETTINGS
        if settings.get(name) is not None and not (name.startswith("on_disk") and settings[name] is False)
    ]  # fmt: skip
    if given:
        msg = (
            f"{', '.join(given)} cannot be honoured by {where}: embedded Qdrant (qdrant-client's local mode) "
            "searches exactly by brute force in memory, without HNSW, quantization, write-ahead log, on-disk "
            "storage or shards, and would ignore them. Remove them, or connect to a Qdrant server with url=... "
            "(--url), which applies them."
        )
        raise ValueError(msg)


def _check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        msg = f"Invalid similarity {similarity!r}. Valid similarities are: {list(SIMILARITIES)} (LaSER is trained for cosine)."
        raise ValueError(msg)


def _locked_error(folder: str) -> StorageLockedError:
    msg = (
        f"The embedded Qdrant folder {folder!r} is already opened by another process (or another client in this "
        "one); embedded Qdrant allows one at a time. Close the other program (e.g. a running `laser index`), use "
        "another folder (--path), or run a Qdrant server and connect with url=... (--url) for concurrent access."
    )
    return StorageLockedError(msg)


def _is_lock_error(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and "already accessed by another instance" in str(error)


def open_client(
    *,
    path: str | Path | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
    **client_kwargs: Any,
) -> QdrantClient:
    """A ``QdrantClient`` for an embedded folder (default ``./laser_qdrant``), ``":memory:"`` or a server.

    Args:
        path: folder of an embedded Qdrant (created when missing).
        location: ``":memory:"`` for a throw-away in-memory store.
        url: a Qdrant server or cluster, e.g. ``"http://localhost:6333"``.
        api_key: a ``Secret`` from an environment variable, for ``url`` only.
        **client_kwargs: passed to ``QdrantClient`` (``timeout``, ``prefer_grpc``...).

    Raises:
        StorageLockedError: the embedded folder is held by another process.
    """
    _require("qdrant_client", "qdrant")
    from qdrant_client import QdrantClient

    params, _ = _connection(path, location, url)
    key = _resolve_api_key(api_key, url)
    try:
        return QdrantClient(**params, **({"api_key": key} if key else {}), **client_kwargs)
    except RuntimeError as e:
        if _is_lock_error(e):
            raise _locked_error(params["path"]) from e
        raise


def collection_vector_size(client: QdrantClient, collection: str) -> int | None:
    """The dense vector size of ``collection``, or None when it does not exist.

    Understands Haystack's layout (one unnamed vector) and LlamaIndex's (one named dense vector).
    """
    if not client.collection_exists(collection):
        return None
    vectors = client.get_collection(collection).config.params.vectors
    if isinstance(vectors, dict):
        sizes = {params.size for params in vectors.values()}
        return sizes.pop() if len(sizes) == 1 else None
    return None if vectors is None else int(vectors.size)


def check_vector_size(client: QdrantClient, collection: str, dimension: int, where: str = "Qdrant") -> None:
    """Raise :class:`CollectionDimensionError` if ``collection`` exists with another vector size than ``dimension``."""
    size = collection_vector_size(client, collection)
    if size is not None and size != dimension:
        raise _dimension_error(collection, size, dimension, where)


def _layout_error(collection: str, where: str, hybrid: bool) -> CollectionLayoutError:
    if hybrid:
        msg = (
            f"Collection {collection!r} in {where} was created without sparse BM25 vectors, which hybrid search "
            "needs. Index it again with hybrid=True / --hybrid and recreate=True / --recreate (or into another "
            "collection), or search it densely (without hybrid / --hybrid)."
        )
    else:
        msg = (
            f"Collection {collection!r} in {where} was created for hybrid search (dense and sparse BM25 vectors); "
            "open it with hybrid=True / --hybrid."
        )
    return CollectionLayoutError(msg)


def _dimension_error(collection: str, size: int | str, dimension: int, where: str) -> CollectionDimensionError:
    msg = (
        f"Collection {collection!r} in {where} holds vectors of size {size}, but the encoder embeds into "
        f"{dimension} dimensions. Search it with the model it was indexed with, index into another collection "
        "(collection=... / --collection), or drop and rebuild this one (recreate=True / --recreate)."
    )
    return CollectionDimensionError(msg)


def warn_if_large(client: QdrantClient, collection: str, *, embedded: bool) -> int:
    """Warn when an embedded collection holds more than 20,000 points; returns the point count."""
    if not client.collection_exists(collection):
        return 0
    count = client.count(collection, exact=True).count
    if embedded:
        warn_large_collection(collection, count)
    return count


def open_document_store(
    *,
    embedding_dim: int,
    path: str | Path | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
    collection: str = DEFAULT_COLLECTION,
    recreate: bool = False,
    similarity: str = "cosine",
    hybrid: bool = False,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    **store_kwargs: Any,
) -> QdrantDocumentStore:
    """A connected Haystack ``QdrantDocumentStore`` (cosine) for LaSER vectors of size ``embedding_dim``.

    Write to it with ``DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE)``: point ids are derived from
    ``Document.id``, so re-indexing the same documents overwrites them instead of adding duplicates.

    Example:
        >>> store = open_document_store(location=":memory:", embedding_dim=encoder.dimension)  # doctest: +SKIP

    Args:
        embedding_dim: the encoder's dimension (``LaSEREncoder.dimension``).
        path: embedded Qdrant folder (default ``./laser_qdrant``).
        location: ``":memory:"`` for tests.
        url: Qdrant server or cluster (the scale-out path).
        api_key: ``Secret.from_env_var("QDRANT_API_KEY")`` for a server that needs one.
        collection: collection (Haystack "index") name.
        recreate: drop and recreate the collection (all its points are lost).
        similarity: ``"cosine"`` (LaSER's, the default), ``"dot_product"`` (the same ranking on LaSER's
            normalised vectors) or ``"l2"``.
        hybrid: also hold sparse BM25 vectors (``use_sparse_embeddings=True`` with Qdrant's IDF modifier), for
            ``LaSERHybridRetriever`` and ``laser search --hybrid``; write them with ``BM25SparseDocumentEmbedder``.
        shard_number: shards of a new collection (server/cluster only; refused in embedded mode).
        replication_factor: replicas of each shard (server/cluster only).
        write_consistency_factor: replicas that must confirm a write (server/cluster only).
        **store_kwargs: other ``QdrantDocumentStore`` arguments (``write_batch_size``, ``payload_fields_to_index``;
            on a server also ``hnsw_config``, ``quantization_config``, ``on_disk``...).

    Raises:
        CollectionDimensionError: the collection exists with another vector size.
        CollectionLayoutError: ``hybrid`` does not match how the collection was created.
        StorageLockedError: the embedded folder is held by another process.
        ValueError: a server-only setting (``hnsw_config``, ``quantization_config``, ``shard_number``...) in
            embedded mode, where Qdrant would ignore it.
    """
    _require("haystack_integrations.document_stores.qdrant", "haystack")
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
    from haystack_integrations.document_stores.qdrant.document_store import QdrantStoreError

    params, where = _connection(path, location, url)
    _resolve_api_key(api_key, url)  # only validates: a plain-string key would be serialized with a pipeline
    _check_similarity(similarity)
    for name in ("use_sparse_embeddings", "sparse_idf", "embedding_dim", "index", "recreate_index"):
        if name in store_kwargs:
            fix = {"use_sparse_embeddings": "hybrid", "sparse_idf": "hybrid", "index": "collection",
                   "recreate_index": "recreate"}.get(name, name)  # fmt: skip
            msg = f"open_document_store sets {name} itself; use its parameter {fix}= instead."
            raise TypeError(msg)
    if url is None:
        _refuse_server_only(
            {"shard_number": shard_number, "replication_factor": replication_factor,
             "write_consistency_factor": write_consistency_factor, **store_kwargs},
            where,
        )  # fmt: skip
    cluster = {
        name: value
        for name, value in (
            ("shard_number", shard_number),
            ("replication_factor", replication_factor),
            ("write_consistency_factor", write_consistency_factor),
        )
        if value is not None
    }
    if "path" in params:
        Path(params["path"]).mkdir(parents=True, exist_ok=True)
    store = QdrantDocumentStore(
        **params,
        api_key=api_key if url is not None else None,
        index=collection,
        embedding_dim=embedding_dim,
        similarity=similarity,
        recreate_index=recreate,
        use_sparse_embeddings=hybrid,
        sparse_idf=hybrid,  # Modifier.IDF: Qdrant computes BM25's IDF (laser_integrations.sparse)
        **cluster,
        **store_kwargs,
    )
    # The store connects lazily; connect now so a locked folder or a wrong-sized collection fails here,
    # before any document is embedded or written.
    try:
        count = store.count_documents()
    except RuntimeError as e:
        if _is_lock_error(e):
            raise _locked_error(params["path"]) from e
        raise
    except QdrantStoreError as e:
        if "sparse" not in str(e):
            raise
        store.close()
        raise _layout_error(collection, where, hybrid) from e
    except ValueError as e:
        if "vector size" not in str(e):
            raise
        store.close()  # release the folder so we can read the collection's actual size
        with closing(open_client(path=path, location=location, url=url, api_key=api_key)) as client:
            size = collection_vector_size(client, collection) or "another"
        raise _dimension_error(collection, size, embedding_dim, where) from e
    if "path" in params:
        warn_large_collection(collection, count)
    return store


def warn_large_collection(collection: str, count: int) -> None:
    """Warn that an embedded collection of ``count`` points is past 20,000 and should move to a server."""
    if count <= EMBEDDED_POINTS_LIMIT:
        return
    msg = (
        f"Collection {collection!r} holds {count:,} points in embedded Qdrant, which searches by brute force "
        f"and keeps everything in memory; above {EMBEDDED_POINTS_LIMIT:,} points use a Qdrant server or "
        "cluster (url=... / --url), which indexes with HNSW and scales out with shards and replicas."
    )
    warnings.warn(msg, UserWarning, stacklevel=3)


class LocalAsyncClient:
    """The async face of an embedded (or in-memory) ``QdrantClient``: every method of the same client, awaitable.

    Embedded Qdrant is one store per process: a second ``AsyncQdrantClient(":memory:")`` would be another, empty
    store, and a second client on the same folder is refused by its lock. So LlamaIndex's async paths
    (``aretrieve``, ``use_async=True``, ``async_add``) get this wrapper over the one sync client. The calls run in
    the calling thread: local mode is in-process work with no I/O to overlap, and its SQLite storage must stay
    in the thread that opened it.
    """

    def __init__(self, client: QdrantClient) -> None:
        self._sync = client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._sync, name)
        if not callable(method):
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        call.__name__ = name
        return call

    async def close(self, **kwargs: Any) -> None:
        """Closing the async face leaves the shared sync client open (close that one to release the folder)."""


def is_local_client(client: Any) -> bool:
    """Whether ``client`` is an embedded or in-memory ``QdrantClient`` (qdrant-client's local mode)."""
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), QdrantLocal)


def open_vector_store(
    *,
    embedding_dim: int,
    path: str | Path | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
    collection: str = DEFAULT_COLLECTION,
    recreate: bool = False,
    hybrid: bool = False,
    sparse_encoder: Any = None,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    client: QdrantClient | None = None,
    aclient: Any = None,
    **store_kwargs: Any,
) -> QdrantVectorStore:
    """A LlamaIndex ``QdrantVectorStore`` for LaSER vectors of size ``embedding_dim``, with sync and async clients.

    LlamaIndex derives point ids from node ids, so re-inserting the same nodes overwrites them. LlamaIndex and
    Haystack lay out payloads differently: give each framework its own collection.

    Both clients are set, so ``retrieve`` and ``aretrieve``, ``use_async=True`` and ``async_add`` all work: with
    ``url=`` a ``QdrantClient`` and an ``AsyncQdrantClient`` to the server; in embedded and in-memory mode the one
    local client and :class:`LocalAsyncClient` over it (two local clients would be two stores, or a locked folder).

    Example:
        >>> store = open_vector_store(path="laser_qdrant", collection="notes", embedding_dim=embed_model.dimension)  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))  # doctest: +SKIP

    Args:
        embedding_dim: the encoder's dimension (``LaSEREmbedding.dimension``).
        path, location, url, api_key: where Qdrant is, as in :func:`open_client`.
        collection: collection name.
        recreate: drop the collection first (all its points are lost).
        hybrid: LlamaIndex's hybrid mode with local BM25 (``laser_integrations.sparse``) as the sparse vectors,
            Qdrant's IDF modifier, and RRF fusion (``laser_integrations.hybrid.llama_index_rrf_fusion``); query with
            ``vector_store_query_mode="hybrid"``.
        sparse_encoder: the ``BM25SparseEncoder`` for ``hybrid`` (default: ``avg_doc_length`` 256; set your
            corpus' mean with ``BM25SparseEncoder.fit(texts)``).
        shard_number, replication_factor, write_consistency_factor: for a new collection on a server/cluster.
        client: an already open ``QdrantClient`` (then path/location/url are not used).
        aclient: its ``AsyncQdrantClient``; default: derived as above for a local ``client``, none for a server one.
        **store_kwargs: other ``QdrantVectorStore`` arguments.

    Raises:
        CollectionDimensionError: the collection exists with another vector size.
        StorageLockedError: the embedded folder is held by another process.
        ValueError: a server-only setting (``quantization_config``, HNSW in ``dense_config``, shards) in embedded
            mode, where Qdrant would ignore it.
    """
    _require("llama_index.vector_stores.qdrant", "llama-index")
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    for name in ("enable_hybrid", "sparse_doc_fn", "sparse_query_fn", "hybrid_fusion_fn", "sparse_config"):
        if name in store_kwargs and hybrid:
            msg = f"open_vector_store(hybrid=True) sets {name} itself; pass either hybrid=True or your own {name}."
            raise TypeError(msg)
    if client is None:
        _, where = _connection(path, location, url)
        client = open_client(path=path, location=location, url=url, api_key=api_key)
        embedded = url is None
        if aclient is None:
            if embedded:
                aclient = LocalAsyncClient(client)
            else:
                from qdrant_client import AsyncQdrantClient

                key = _resolve_api_key(api_key, url)
                aclient = AsyncQdrantClient(url=url, **({"api_key": key} if key else {}))
    else:
        where, embedded = "the given Qdrant client", is_local_client(client)
        if aclient is None and embedded:
            aclient = LocalAsyncClient(client)
    if embedded:
        dense_config = store_kwargs.get("dense_config")
        _refuse_server_only(
            {"shard_number": shard_number, "replication_factor": replication_factor,
             "write_consistency_factor": write_consistency_factor,
             "hnsw_config": getattr(dense_config, "hnsw_config", None),
             "on_disk": getattr(dense_config, "on_disk", None), **store_kwargs},
            where,
        )  # fmt: skip
    if recreate and client.collection_exists(collection):
        client.delete_collection(collection)
    check_vector_size(client, collection, embedding_dim, where)
    if embedded and location is None and where != "the given Qdrant client":
        warn_if_large(client, collection, embedded=True)
    if embedded:
        # Payload indexes do nothing in embedded Qdrant (qdrant-client warns on each); servers keep them.
        store_kwargs.setdefault("index_doc_id", False)
    if hybrid:
        from .hybrid import llama_index_rrf_fusion
        from .sparse import BM25SparseEncoder, sparse_vector_params

        sparse_encoder = sparse_encoder or BM25SparseEncoder()
        store_kwargs.update(
            enable_hybrid=True,
            sparse_doc_fn=sparse_encoder.llama_index_doc_fn,
            sparse_query_fn=sparse_encoder.llama_index_query_fn,
            hybrid_fusion_fn=llama_index_rrf_fusion,
            sparse_config=sparse_vector_params(),
        )
    elif sparse_encoder is not None:
        msg = "sparse_encoder is used by hybrid search only; pass hybrid=True as well, or drop sparse_encoder."
        raise ValueError(msg)
    with _quiet_unsynced_warning():
        return QdrantVectorStore(
            collection_name=collection,
            client=client,
            aclient=aclient,
            shard_number=shard_number,
            replication_factor=replication_factor,
            write_consistency_factor=write_consistency_factor,
            **store_kwargs,
        )


@contextmanager
def _quiet_unsynced_warning() -> Iterator[None]:
    """QdrantVectorStore warns that a local client and an aclient "are not synced": true of two local clients,
    not of LocalAsyncClient, which is the same client. Only that message is held back."""

    def keep(record: logging.LogRecord) -> bool:
        return "data between clients is not synced" not in record.getMessage()

    store_logger = logging.getLogger("llama_index.vector_stores.qdrant.base")
    store_logger.addFilter(keep)
    try:
        yield
    finally:
        store_logger.removeFilter(keep)
