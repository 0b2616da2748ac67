"""Open a Qdrant collection for LaSER vectors, for Haystack or LlamaIndex, in one place.

Three ways to reach Qdrant, two engines behind the same openers (``engine="auto"``, the default, picks one):

- **embedded, persisted** (the default): ``path="laser_qdrant"``, a local folder, no server, on **Qdrant Edge**
  (``qdrant-edge-py``: Qdrant's own segments, HNSW, WAL and payload indexes in this process; docs/edge.md). Each
  collection is one Edge shard, the sub-folder ``path/collection``; one process at a time holds a shard.
  ``engine="client"`` opens the folder with qdrant-client's local mode instead (an exact, pure-Python search for
  up to ~20,000 points): the engine of earlier versions, whose folders Edge cannot read (they are refused with the
  command that converts them, ``laser migrate``).
- **in memory**: ``location=":memory:"``, for tests and throw-away use: qdrant-client's local mode in memory
  (nothing to persist, so nothing gains from Edge's WAL and on-disk segments).
- **server or cluster**: ``url="https://...:6333"`` (qdrant-client) with the API key from an environment variable
  (``api_key=Secret.from_env_var("QDRANT_API_KEY")``); ``shard_number``, ``replication_factor`` and
  ``write_consistency_factor`` are passed to the collection. This is the scale-out path. It uses the same client
  calls as local mode, but the test suite cannot exercise it on machines without a Qdrant server.

Every opener checks an existing collection's vector size against the encoder's dimension before anything is
written, and turns the embedded folder's lock error into one that names the folder and the fix. Given the
encoder's provenance record (``provenance=`` / ``embed_model=``), an opener also checks and records which model
fills the collection (see :mod:`laser_integrations.provenance`); ``read_only=True`` never creates anything.
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

    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
    from laser_integrations.edge_vector_store import QdrantEdgeVectorStore

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


class LocalModeFolderError(FileExistsError):
    """A folder written by qdrant-client's local mode was opened with Qdrant Edge, which cannot read it."""


class CollectionLayoutError(ValueError):
    """An existing collection has (or lacks) the sparse BM25 vectors that hybrid search writes and reads."""


# Collection settings that only a Qdrant server honours: embedded Qdrant (qdrant-client's local mode) searches
# exactly by brute force, keeps everything in memory and has no shards, so it accepts these and ignores them.
SERVER_ONLY_SETTINGS = (
    "hnsw_config", "quantization_config", "optimizers_config", "wal_config", "on_disk", "on_disk_payload",
    "shard_number", "replication_factor", "write_consistency_factor", "sharding_method", "shard_keys",
)  # fmt: skip
SIMILARITIES = ("cosine", "dot_product", "l2")
# "client": qdrant-client (local mode or a server); "edge": Qdrant Edge, Qdrant's engine in-process (edge.py);
# "auto": Edge for a folder, qdrant-client for a server (url=), ":memory:" or a given client.
ENGINES = ("auto", "client", "edge")


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
    """Sub-folders of ``parent`` that hold an embedded Qdrant (local mode's meta.json, or Qdrant Edge shards), for
    'did you mean' messages."""
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and ((p / "meta.json").is_file() or _edge_shards(p)))


def _edge_shards(folder: Path) -> list[str]:
    """The collections (Qdrant Edge shards) in an embedded folder."""
    from .edge import CONFIG_FILE

    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / CONFIG_FILE).is_file())


def _refuse_edge_folder(folder: Path) -> None:
    """qdrant-client's local mode must not open a folder of Edge shards: it would write its meta.json beside them,
    and the Edge default would then refuse the whole folder."""
    if shards := _edge_shards(folder):
        msg = (
            f"{str(folder)!r} holds Qdrant Edge collections ({shards}); qdrant-client's local mode "
            "(engine='client', --engine client) cannot read them and must not write beside them. Open it with the "
            "default engine (engine='auto' or 'edge'), or give local mode another folder."
        )
        raise FileExistsError(msg)


def resolve_engine(
    engine: str = "auto", *, path: str | Path | None = None, location: str | None = None, url: str | None = None,
    client: Any = None,
) -> str:  # fmt: skip
    """The engine an opener uses: ``"edge"`` or ``"client"``.

    ``"auto"`` (the default) is Qdrant Edge for an embedded folder (``path=``, or the default folder) and
    qdrant-client for a server (``url=``), ``location=":memory:"`` or an already open ``client``.
    """
    if engine not in ENGINES:
        msg = f"engine must be one of {list(ENGINES)}, got {engine!r}."
        raise ValueError(msg)
    if engine != "auto":
        return engine
    return "client" if url is not None or location is not None or client is not None else "edge"


def _embedded_root(path: str | Path | None) -> Path:
    return Path(path if path is not None else DEFAULT_PATH).expanduser()


def _require_edge_collection(collection: str, path: str | Path | None) -> None:
    """:func:`require_collection` for an Edge folder: ``path/collection`` must hold a shard; creates nothing."""
    from . import edge

    root = _embedded_root(path)
    if edge.is_local_mode_folder(root):
        raise edge.local_mode_error(root)
    if edge.stored_config(root / collection) is not None:
        return
    if not root.is_dir():
        others = _qdrant_folders(root.parent if root.parent != root else Path("."))
        hint = f" Qdrant folders in {str(root.parent)!r}: {others}." if others else ""
        what = "is a file, not a folder" if root.exists() else "does not exist"
        msg = f"{str(root)!r} {what}; give the folder `laser index` wrote (--path).{hint}"
        raise CollectionNotFoundError(msg)
    holds = _edge_shards(root) or "no collections"
    msg = f"Collection {collection!r} does not exist in embedded Qdrant folder {str(root)!r}; it holds {holds} (--collection)."
    raise CollectionNotFoundError(msg)


def require_collection(
    collection: str,
    *,
    path: str | Path | None = None,
    location: str | None = None,
    url: str | None = None,
    api_key: Secret | None = None,
    engine: str = "auto",
) -> None:
    """Raise :class:`CollectionNotFoundError` (naming what exists) unless ``collection`` exists; creates nothing.

    Used by the readers (``read_only=True``, ``laser search``), so a mistyped folder or collection name is an error
    instead of a new, empty collection. ``engine`` as in :func:`open_document_store`.

    Raises:
        LocalModeFolderError: an Edge reader (the default for a folder) was given a qdrant-client local-mode folder.
    """
    params, where = _connection(path, location, url)
    if resolve_engine(engine, path=path, location=location, url=url) == "edge":
        _require_edge_collection(collection, path)
        return
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
    if "path" in params:
        _refuse_edge_folder(Path(params["path"]))
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


def layout_error(
    collection: str, where: str, hybrid: bool, flag: str = "hybrid=True / --hybrid"
) -> CollectionLayoutError:
    """The refusal of a collection whose sparse vectors (or their absence) do not match ``hybrid``; ``flag`` is how
    the caller turns sparse vectors on."""
    if hybrid:
        msg = (
            f"Collection {collection!r} in {where} was created without sparse BM25 vectors, which hybrid search "
            f"needs. Index it again with {flag} and recreate=True / --recreate (or into another "
            f"collection), or search it densely (without {flag})."
        )
    else:
        msg = (
            f"Collection {collection!r} in {where} was created for hybrid search (dense and sparse BM25 vectors); "
            f"open it with {flag}."
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


def _edge_engine(engine: str, opener: str, path: str | Path | None, api_key: Secret | None = None,
                 **given: Any) -> bool:  # fmt: skip
    """Whether the opener uses Qdrant Edge (:func:`resolve_engine`); refuses what an Edge folder cannot honour."""
    if resolve_engine(engine, path=path, location=given.get("location"), url=given.get("url"),
                      client=given.get("client")) == "client":  # fmt: skip
        return False
    if given.get("url") is None:
        _resolve_api_key(api_key, None)  # the key of a server; refused for a folder with the usual message
    refused = sorted(name for name, value in given.items() if value not in (None, False))
    if refused:
        msg = (
            f"{opener}(engine={engine!r}) opens an embedded Qdrant Edge folder (path=...), a single shard on this "
            f"machine; it cannot take {', '.join(refused)} (location/url/api_key, clients and shards are "
            "qdrant-client's: a server or cluster with url=..., or engine='client'). Remove them."
        )
        raise ValueError(msg)
    _require("qdrant_edge", "qdrant")
    return True


def _edge_dimension_error(error: CollectionDimensionError, folder: Path, collection: str, dimension: int,
                          where: str) -> CollectionDimensionError:  # fmt: skip
    """The opener's dimension message (as for qdrant-client collections) for an Edge shard of another size."""
    from . import edge

    sizes = {int(v["size"]) for v in ((edge.stored_config(folder) or {}).get("vectors") or {}).values()}
    if len(sizes) == 1 and sizes != {dimension}:
        return _dimension_error(collection, sizes.pop(), dimension, where)
    return error  # another layout (the other framework's shard): Edge's own message says so


def _edge_points(shard: Any) -> int:
    from .edge import require_edge

    return int(shard.count(require_edge().CountRequest(exact=True)))


def _drop_progress_bar(store_class: type, store_kwargs: dict[str, Any]) -> None:
    """qdrant-haystack's ``progress_bar`` for an Edge store without one: False is honoured, True refused."""
    import inspect

    if "progress_bar" in store_kwargs and "progress_bar" not in inspect.signature(store_class).parameters:
        if store_kwargs.pop("progress_bar"):
            msg = f"{store_class.__name__} has no progress bar; pass progress_bar=False or leave it out."
            raise ValueError(msg)


def _open_edge(
    store: Any, *, root: Path, collection: str, dimension: int | None, record: dict[str, Any] | None,
    read_only: bool, allow_mismatch: bool,
) -> None:  # fmt: skip
    """Open an Edge store now (a locked folder or a wrong-sized shard fails here, before anything is embedded),
    then check (a writer of a new or empty shard: record) the model that fills it, in ``laser_provenance.json``."""
    from .provenance import ensure_folder_provenance

    where = f"embedded Qdrant folder {str(root)!r}"
    try:
        shard = store.open()
    except CollectionDimensionError as e:
        raise _edge_dimension_error(e, store.folder, collection, dimension or 0, where) from e
    if record is None:
        return
    if getattr(store, "layout", None) == "haystack" and record.get("layout") != "haystack":
        # A LlamaIndex store reading a shard Haystack wrote (it refuses writes there): the model is checked as a
        # reader's, of the layout it reads; document-side settings (title, instruction) are the writer's business.
        record, read_only = {**record, "layout": "haystack"}, True
    try:
        ensure_folder_provenance(store.folder, _edge_points(shard), record, collection=collection, where=where,
                                 role="reader" if read_only else "writer", allow_mismatch=allow_mismatch)  # fmt: skip
    except BaseException:
        store.close()  # release the shard: nothing was written
        raise


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
    engine: str = "auto",
    provenance: dict[str, Any] | None = None,
    read_only: bool = False,
    allow_model_mismatch: bool = False,
    **store_kwargs: Any,
) -> QdrantDocumentStore | QdrantEdgeDocumentStore:
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
        engine: ``"auto"`` (the default): ``"edge"`` for a folder, ``"client"`` for ``url``/``location``.
            ``"edge"``: a ``QdrantEdgeDocumentStore`` in the folder ``path/collection``, Qdrant's own engine
            in-process, with HNSW, quantization and payload indexes (docs/edge.md); ``"client"``: qdrant-client
            (its local mode for ``path``/``location``, a server for ``url``).
        provenance: the encoder's record (:func:`laser_integrations.provenance.describe_encoder`): a writer records
            it in a new collection and refuses a collection made by another model; a reader (``read_only``) checks it.
        read_only: for searching: the folder and the collection must exist (nothing is created) and ``provenance``
            is checked as a reader's.
        allow_model_mismatch: a reader whose ``provenance`` differs from the collection's gets a warning, not an error.
        **store_kwargs: other ``QdrantDocumentStore`` arguments (``write_batch_size``, ``payload_fields_to_index``;
            on a server also ``hnsw_config``, ``quantization_config``, ``on_disk``...), or with ``engine="edge"``
            ``QdrantEdgeDocumentStore``'s (``hnsw_config``, ``quantization_config``, ``search_params``...).

    Raises:
        CollectionDimensionError: the collection exists with another vector size.
        CollectionLayoutError: ``hybrid`` does not match how the collection was created.
        CollectionNotFoundError: ``read_only`` and the folder or collection does not exist.
        LocalModeFolderError: Qdrant Edge was given a folder of qdrant-client's local mode (``laser migrate``
            converts it; ``engine="client"`` reads it).
        ProvenanceMismatchError: the collection was filled by another model or document format.
        QdrantUnreachableError: the server at ``url`` does not answer.
        StorageLockedError: the embedded folder is held by another process.
        ValueError: a server-only setting (``hnsw_config``, ``quantization_config``, ``shard_number``...) in
            embedded mode, where Qdrant would ignore it.
    """
    for name in ("use_sparse_embeddings", "sparse_idf", "embedding_dim", "index", "recreate_index"):
        if name in store_kwargs:
            fix = {"use_sparse_embeddings": "hybrid", "sparse_idf": "hybrid", "index": "collection",
                   "recreate_index": "recreate"}.get(name, name)  # fmt: skip
            msg = f"open_document_store sets {name} itself; use its parameter {fix}= instead."
            raise TypeError(msg)
    if _edge_engine(engine, "open_document_store", path, api_key=api_key, location=location,
                    url=url, shard_number=shard_number, replication_factor=replication_factor,
                    write_consistency_factor=write_consistency_factor):  # fmt: skip
        _require("haystack_integrations.document_stores.laser_edge", "haystack")
        from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

        from . import edge

        root = _embedded_root(path)
        if edge.is_local_mode_folder(root):  # before recreate could touch it: never an empty shard beside it
            raise edge.local_mode_error(root)
        if read_only:
            if recreate:
                msg = "read_only=True cannot recreate the collection; open it for writing to rebuild it."
                raise ValueError(msg)
            _require_edge_collection(collection, path)
        elif root.exists() and not root.is_dir():
            msg = f"{str(root)!r} is a file, not an embedded Qdrant folder; give a folder (--path / path=...)."
            raise NotADirectoryError(msg)
        _drop_progress_bar(QdrantEdgeDocumentStore, store_kwargs)
        edge_store = QdrantEdgeDocumentStore(
            path=root, index=collection, embedding_dim=embedding_dim, similarity=similarity, recreate_index=recreate,
            use_sparse_embeddings=hybrid, **store_kwargs,
        )  # fmt: skip
        _open_edge(edge_store, root=root, collection=collection, dimension=embedding_dim, record=provenance,
                   read_only=read_only, allow_mismatch=allow_model_mismatch)  # fmt: skip
        return edge_store
    _require("haystack_integrations.document_stores.qdrant", "haystack")
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
    from haystack_integrations.document_stores.qdrant.document_store import QdrantStoreError

    params, where = _connection(path, location, url)
    _resolve_api_key(api_key, url)  # only validates: a plain-string key would be serialized with a pipeline
    _check_similarity(similarity)
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
        _refuse_edge_folder(Path(params["path"]))
    if read_only:
        if recreate:
            msg = "read_only=True cannot recreate the collection; open it for writing to rebuild it."
            raise ValueError(msg)
        require_collection(collection, path=path, location=location, url=url, api_key=api_key, engine="client")
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
        if url is not None and _is_connection_error(e):
            raise _unreachable(url, e) from e
        if "sparse" not in str(e):
            raise
        store.close()
        raise layout_error(collection, where, hybrid) from e
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
    embedding_dim: int | None = None,
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
    embed_model: Any = None,
    read_only: bool = False,
    allow_model_mismatch: bool = False,
    aclient: Any = None,
    engine: str = "auto",
    **store_kwargs: Any,
) -> QdrantVectorStore | QdrantEdgeVectorStore:
    """A LlamaIndex ``QdrantVectorStore`` for LaSER vectors of size ``embedding_dim``, with sync and async clients.

    LlamaIndex derives point ids from node ids, so re-inserting the same nodes overwrites them. LlamaIndex and
    Haystack lay out payloads differently: give each framework its own collection to write. On Qdrant Edge, a
    folder written by Haystack (``laser index``, ``QdrantEdgeDocumentStore``) opens read only in its own layout
    (``QdrantEdgeVectorStore(payload_layout="auto")``), so LlamaIndex can search what ``laser index`` built; its
    model is checked as a reader's.

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
        embed_model: the ``LaSEREmbedding`` that fills (or searches) the collection; its dimension is
            ``embedding_dim``, and its provenance is recorded in a new collection and checked against an existing
            one (another model or format is refused).
        read_only: for querying an existing index: the collection must exist (nothing is created) and
            ``embed_model`` is checked as a reader's (its weights, K and input format).
        allow_model_mismatch: a reader whose ``embed_model`` differs from the collection's gets a warning instead.
        aclient: its ``AsyncQdrantClient``; default: derived as above for a local ``client``, none for a server one.
        engine: ``"auto"`` (the default): ``"edge"`` for a folder, ``"client"`` for ``url``/``location``/``client``.
            ``"edge"``: a ``QdrantEdgeVectorStore`` in the folder ``path/collection``, Qdrant's own engine
            in-process (docs/edge.md); ``"client"``: qdrant-client, as above (its local mode for ``path``).
        **store_kwargs: other ``QdrantVectorStore`` arguments (``QdrantEdgeVectorStore``'s with ``engine="edge"``).

    Raises:
        CollectionDimensionError: the collection exists with another vector size.
        CollectionNotFoundError: ``read_only`` and the collection does not exist.
        ProvenanceMismatchError: the collection was filled by another model or format.
        StorageLockedError: the embedded folder is held by another process.
        ValueError: a server-only setting (``quantization_config``, HNSW in ``dense_config``, shards) in embedded
            mode, where Qdrant would ignore it.
    """
    for name in ("enable_hybrid", "sparse_doc_fn", "sparse_query_fn", "hybrid_fusion_fn", "sparse_config"):
        if name in store_kwargs and hybrid:
            msg = f"open_vector_store(hybrid=True) sets {name} itself; pass either hybrid=True or your own {name}."
            raise TypeError(msg)
    if sparse_encoder is not None and not hybrid:
        msg = "sparse_encoder is used by hybrid search only; pass hybrid=True as well, or drop sparse_encoder."
        raise ValueError(msg)
    if hybrid:
        from .hybrid import llama_index_rrf_fusion
        from .sparse import BM25SparseEncoder

        sparse_encoder = sparse_encoder or BM25SparseEncoder()
        store_kwargs.update(
            enable_hybrid=True,
            sparse_doc_fn=sparse_encoder.llama_index_doc_fn,
            sparse_query_fn=sparse_encoder.llama_index_query_fn,
            hybrid_fusion_fn=llama_index_rrf_fusion,
        )
    if _edge_engine(engine, "open_vector_store", path, api_key=api_key, location=location, url=url,
                    shard_number=shard_number, replication_factor=replication_factor,
                    write_consistency_factor=write_consistency_factor, client=client, aclient=aclient):  # fmt: skip
        _require("llama_index.core", "llama-index")
        from . import edge
        from .edge_vector_store import QdrantEdgeVectorStore

        root = _embedded_root(path)
        if edge.is_local_mode_folder(root):  # before recreate could touch it: never an empty shard beside it
            raise edge.local_mode_error(root)
        if embedding_dim is None and embed_model is not None:
            embedding_dim = int(embed_model.dimension)
        if read_only:
            if recreate:
                msg = "read_only=True cannot recreate the collection; open it for writing to rebuild it."
                raise ValueError(msg)
            _require_edge_collection(collection, path)
        edge_store = QdrantEdgeVectorStore(path=root, collection_name=collection, embedding_dim=embedding_dim,
                                           **store_kwargs)  # fmt: skip
        if recreate:
            edge.remove_shard(edge_store.folder)
        record = embed_model.provenance_record() if embed_model is not None else None
        _open_edge(edge_store, root=root, collection=collection, dimension=embedding_dim, record=record,
                   read_only=read_only, allow_mismatch=allow_model_mismatch)  # fmt: skip
        return edge_store
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
        require_collection(collection, path=path, location=location, url=url, api_key=api_key, engine="client")
    owns_client = client is None
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
        from .sparse import sparse_vector_params

        store_kwargs["sparse_config"] = sparse_vector_params()  # Qdrant's IDF modifier: BM25's IDF
    with _quiet_unsynced_warning():
        store = QdrantVectorStore(
            collection_name=collection,
            client=client,
            aclient=aclient,
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
