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
written, and turns the embedded folder's lock error into one that names the folder and the fix. Given the
encoder's provenance record (``provenance=`` / ``embed_model=``), an opener also checks and records which model
fills the collection (see :mod:`laser_integrations.provenance`); ``read_only=True`` never creates anything.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import closing
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


class CollectionNotFoundError(FileNotFoundError):
    """``read_only=True``: the Qdrant folder or the collection does not exist (nothing was created)."""


class QdrantUnreachableError(ConnectionError):
    """The Qdrant server at ``url`` did not answer."""


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
    if api_key is None or url is None:
        return None
    if isinstance(api_key, str):
        msg = (
            "api_key must be a haystack Secret from an environment variable, not a plain string, so it is never "
            f"written to a file or a log: api_key=Secret.from_env_var({API_KEY_ENV!r})."
        )
        raise TypeError(msg)
    return api_key.resolve_value()


def _locked_error(folder: str) -> StorageLockedError:
    msg = (
        f"The embedded Qdrant folder {folder!r} is already opened by another process (or another client in this "
        "one); embedded Qdrant allows one at a time. Close the other program (e.g. a running `laser index`), use "
        "another folder (--path), or run a Qdrant server and connect with url=... (--url) for concurrent access."
    )
    return StorageLockedError(msg)


def _is_lock_error(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and "already accessed by another instance" in str(error)


def _is_connection_error(error: BaseException | None) -> bool:
    """A refused/failed connection, as qdrant-client raises it (ResponseHandlingException around httpx's)."""
    import httpx

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, (ConnectionError, httpx.TransportError)):
            return True
        if type(error).__name__ == "ResponseHandlingException":  # qdrant-client's wrapper of a failed request
            return True
        if getattr(error, "status_code", None) in (401, 403):  # qdrant-client's UnexpectedResponse: a bad API key
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _unreachable(url: str, error: BaseException) -> QdrantUnreachableError:
    cause: BaseException | None = error
    while cause is not None and getattr(cause, "status_code", None) is None:
        cause = cause.__cause__ or cause.__context__
    error = cause if cause is not None else error
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if getattr(error, "status_code", None) in (401, 403):
        msg = (
            f"The Qdrant server at {url} refused the request ({reason}): its API key is missing or wrong. Put the "
            f"key in the environment variable {API_KEY_ENV} (or the one named by --api-key-env / api_key=Secret...)."
        )
    else:
        msg = f"Cannot reach the Qdrant server at {url} ({reason}); check the URL and that the server is running."
    return QdrantUnreachableError(msg)


def _qdrant_folders(parent: Path) -> list[str]:
    """Sub-folders of ``parent`` that hold an embedded Qdrant (meta.json), for 'did you mean' messages."""
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if (p / "meta.json").is_file())


def require_collection(
    collection: str,
    *,
    path: str | Path | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
) -> None:
    """Raise :class:`CollectionNotFoundError` (naming what exists) unless ``collection`` exists; creates nothing.

    Used by the readers (``read_only=True``, ``laser search``), so a mistyped folder or collection name is an error
    instead of a new, empty collection.
    """
    params, where = _connection(path, location, url)
    if "path" in params:
        folder = Path(params["path"])
        if not (folder / "meta.json").is_file():
            others = _qdrant_folders(folder.parent if folder.parent != folder else Path("."))
            hint = f" Qdrant folders in {str(folder.parent)!r}: {others}." if others else ""
            what = "is not an embedded Qdrant folder (no meta.json)" if folder.exists() else "does not exist"
            msg = f"{str(folder)!r} {what}; give the folder `laser index` wrote (--path).{hint}"
            raise CollectionNotFoundError(msg)
    with closing(open_client(path=path, location=location, url=url, api_key=api_key)) as client:
        try:
            if client.collection_exists(collection):
                return
            names = sorted(c.name for c in client.get_collections().collections)
        except Exception as e:
            if url is not None and _is_connection_error(e):
                raise _unreachable(url, e) from e
            raise
    holds = names or "no collections"
    msg = f"Collection {collection!r} does not exist in {where}; it holds {holds} (--collection)."
    raise CollectionNotFoundError(msg)


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
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    provenance: dict[str, Any] | None = None,
    read_only: bool = False,
    allow_model_mismatch: bool = False,
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
        shard_number: shards of a new collection (server/cluster only; embedded Qdrant ignores it).
        replication_factor: replicas of each shard (server/cluster only).
        write_consistency_factor: replicas that must confirm a write (server/cluster only).
        provenance: the encoder's record (:func:`laser_integrations.provenance.describe_encoder`): a writer records
            it in a new collection and refuses a collection made by another model; a reader (``read_only``) checks it.
        read_only: for searching: the folder and the collection must exist (nothing is created) and ``provenance``
            is checked as a reader's.
        allow_model_mismatch: a reader whose ``provenance`` differs from the collection's gets a warning, not an error.
        **store_kwargs: other ``QdrantDocumentStore`` arguments (``hnsw_config``, ``on_disk``, ``write_batch_size``...).

    Raises:
        CollectionDimensionError: the collection exists with another vector size.
        CollectionNotFoundError: ``read_only`` and the folder or collection does not exist.
        ProvenanceMismatchError: the collection was filled by another model or document format.
        QdrantUnreachableError: the server at ``url`` does not answer.
        StorageLockedError: the embedded folder is held by another process.
    """
    _require("haystack_integrations.document_stores.qdrant", "haystack")
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    params, where = _connection(path, location, url)
    _resolve_api_key(api_key, url)  # only validates: a plain-string key would be serialized with a pipeline
    cluster = {
        name: value
        for name, value in (
            ("shard_number", shard_number),
            ("replication_factor", replication_factor),
            ("write_consistency_factor", write_consistency_factor),
        )
        if value is not None
    }
    if read_only:
        if recreate:
            msg = "read_only=True cannot recreate the collection; open it for writing to rebuild it."
            raise ValueError(msg)
        require_collection(collection, path=path, location=location, url=url, api_key=api_key)
    elif "path" in params:
        if Path(params["path"]).exists() and not Path(params["path"]).is_dir():
            msg = f"{params['path']!r} is a file, not an embedded Qdrant folder; give a folder (--path / path=...)."
            raise NotADirectoryError(msg)
        Path(params["path"]).mkdir(parents=True, exist_ok=True)
    store = QdrantDocumentStore(
        **params,
        api_key=api_key if url is not None else None,
        index=collection,
        embedding_dim=embedding_dim,
        similarity="cosine",
        recreate_index=recreate,
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
    except ValueError as e:
        if "vector size" not in str(e):
            raise
        store.close()  # release the folder so we can read the collection's actual size
        with closing(open_client(path=path, location=location, url=url, api_key=api_key)) as client:
            size = collection_vector_size(client, collection) or "another"
        raise _dimension_error(collection, size, embedding_dim, where) from e
    except Exception as e:
        if url is not None and _is_connection_error(e):
            raise _unreachable(url, e) from e
        raise
    if provenance is not None:
        _check_store_provenance(store, collection, provenance, where, read_only, allow_model_mismatch)
    if "path" in params:
        warn_large_collection(collection, count)
    return store


def _check_store_provenance(
    store: QdrantDocumentStore, collection: str, record: dict[str, Any], where: str, read_only: bool, allow: bool
) -> None:
    """Check (and for a writer of a new collection, record) the model of a connected Haystack store."""
    from .provenance import ensure_provenance

    try:
        ensure_provenance(store._client, collection, record, role="reader" if read_only else "writer",  # noqa: SLF001
                          where=where, allow_mismatch=allow)  # fmt: skip
    except BaseException:
        store.close()  # release the embedded folder: nothing was written
        raise


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


def open_vector_store(
    *,
    embedding_dim: int | None = None,
    path: str | Path | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
    collection: str = DEFAULT_COLLECTION,
    recreate: bool = False,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    client: QdrantClient | None = None,
    embed_model: Any = None,
    read_only: bool = False,
    allow_model_mismatch: bool = False,
    **store_kwargs: Any,
) -> QdrantVectorStore:
    """A LlamaIndex ``QdrantVectorStore`` for LaSER vectors of size ``embedding_dim``.

    LlamaIndex derives point ids from node ids, so re-inserting the same nodes overwrites them. LlamaIndex and
    Haystack lay out payloads differently: give each framework its own collection.

    Example:
        >>> store = open_vector_store(path="laser_qdrant", collection="notes", embedding_dim=embed_model.dimension)  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))  # doctest: +SKIP

    Args:
        embedding_dim: the encoder's dimension (``LaSEREmbedding.dimension``).
        path, location, url, api_key: where Qdrant is, as in :func:`open_client`.
        collection: collection name.
        recreate: drop the collection first (all its points are lost).
        shard_number, replication_factor, write_consistency_factor: for a new collection on a server/cluster.
        client: an already open ``QdrantClient`` (then path/location/url are not used).
        embed_model: the ``LaSEREmbedding`` that fills (or searches) the collection; its dimension is
            ``embedding_dim``, and its provenance is recorded in a new collection and checked against an existing
            one (another model or format is refused).
        read_only: for querying an existing index: the collection must exist (nothing is created) and
            ``embed_model`` is checked as a reader's (its weights, K and input format).
        allow_model_mismatch: a reader whose ``embed_model`` differs from the collection's gets a warning instead.
        **store_kwargs: other ``QdrantVectorStore`` arguments.

    Raises:
        CollectionDimensionError: the collection exists with another vector size.
        CollectionNotFoundError: ``read_only`` and the collection does not exist.
        ProvenanceMismatchError: the collection was filled by another model or format.
        StorageLockedError: the embedded folder is held by another process.
    """
    _require("llama_index.vector_stores.qdrant", "llama-index")
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    if embedding_dim is None:
        if embed_model is None:
            msg = "Give embedding_dim=... or embed_model=LaSEREmbedding(...) (whose dimension is used)."
            raise TypeError(msg)
        embedding_dim = int(embed_model.dimension)
    if read_only and recreate:
        msg = "read_only=True cannot recreate the collection; open it for writing to rebuild it."
        raise ValueError(msg)
    if read_only and client is None:
        require_collection(collection, path=path, location=location, url=url, api_key=api_key)
    owns_client = client is None
    if client is None:
        _, where = _connection(path, location, url)
        client = open_client(path=path, location=location, url=url, api_key=api_key)
        embedded = url is None
    else:
        where, embedded = "the given Qdrant client", False
    if recreate and client.collection_exists(collection):
        client.delete_collection(collection)
    check_vector_size(client, collection, embedding_dim, where)
    if embedded and location is None:
        warn_if_large(client, collection, embedded=True)
    if embedded:
        # Payload indexes do nothing in embedded Qdrant (qdrant-client warns on each); servers keep them.
        store_kwargs.setdefault("index_doc_id", False)
    store = QdrantVectorStore(
        collection_name=collection,
        client=client,
        shard_number=shard_number,
        replication_factor=replication_factor,
        write_consistency_factor=write_consistency_factor,
        **store_kwargs,
    )
    if embed_model is not None:
        try:
            _check_vector_store_provenance(store, client, collection, embed_model, embedding_dim, where, read_only,
                                           allow_model_mismatch)  # fmt: skip
        except BaseException:
            if owns_client:
                client.close()  # release the embedded folder: nothing was written
            raise
    return store


def _check_vector_store_provenance(
    store: QdrantVectorStore, client: QdrantClient, collection: str, embed_model: Any, dimension: int, where: str,
    read_only: bool, allow: bool,
) -> None:  # fmt: skip
    """Check the LlamaIndex collection's model; a writer creates a missing collection now, to record it."""
    from .provenance import ensure_provenance

    if read_only and not client.collection_exists(collection):
        msg = f"Collection {collection!r} does not exist in {where} (read_only=True creates nothing)."
        raise CollectionNotFoundError(msg)
    if not read_only and not client.collection_exists(collection):
        # QdrantVectorStore creates its collection on the first insert; create it the same way now, so the record
        # is there before the first vector.
        store._create_collection(collection, dimension)  # noqa: SLF001
    ensure_provenance(client, collection, embed_model.provenance_record(), role="reader" if read_only else "writer",
                      where=where, allow_mismatch=allow)  # fmt: skip
