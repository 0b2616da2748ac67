"""Qdrant Edge, Qdrant's own engine in-process: one shard per folder, shared by the Haystack and LlamaIndex stores.

Qdrant Edge (``pip install qdrant-edge-py``) runs Qdrant's segments, HNSW, WAL, payload indexes and quantization
inside this process, without a server. This module holds what both framework stores need:

- :func:`open_shard` creates a shard in a folder or loads the one there, checks its vector size and distance
  against what the caller expects (:class:`~laser_integrations.qdrant.CollectionDimensionError`), refuses a folder
  that is not an Edge shard (e.g. one written by qdrant-client's local mode) instead of creating an empty shard
  beside its data, and turns Edge's WAL lock ("WouldBlock": another process holds the folder) into
  :class:`~laser_integrations.qdrant.StorageLockedError`;
- the JSON-friendly settings (``hnsw_config``, ``quantization_config``, ``optimizers_config``, ``search_params``,
  payload indexes) as Qdrant's REST API spells them, converted into Edge's objects. An unknown key is refused,
  never dropped.

Settings are persisted by Edge in ``<folder>/edge_config.json``; passing them again when a shard is loaded
updates them (Edge checks that they are compatible with the stored segments).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from laser_integrations.qdrant import (
    CollectionDimensionError,
    LocalModeFolderError,
    StorageLockedError,
    layout_error,
)

if TYPE_CHECKING:
    import qdrant_edge

logger = logging.getLogger(__name__)

CONFIG_FILE = "edge_config.json"
DISTANCES = {"cosine": "Cosine", "dot_product": "Dot", "l2": "Euclid"}
# Qdrant's own defaults, filled in when a user gives only some HNSW keys (Edge needs all three).
HNSW_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10_000}
_HNSW_KEYS = {
    "m", "ef_construct", "full_scan_threshold", "max_indexing_threads", "on_disk", "payload_m", "inline_storage",
}  # fmt: skip
_OPTIMIZER_KEYS = {
    "deleted_threshold", "vacuum_min_vector_number", "default_segment_number", "max_segment_size",
    "indexing_threshold", "prevent_unoptimized",
}  # fmt: skip
_SEARCH_KEYS = {"hnsw_ef", "exact", "quantization", "indexed_only"}
_QUANTIZATION_SEARCH_KEYS = {"ignore", "rescore", "oversampling"}
_SCHEMA_TYPES = ("keyword", "integer", "float", "bool", "datetime", "text", "uuid", "geo")


def require_edge() -> Any:
    """Import ``qdrant_edge`` or fail with the command that installs it."""
    try:
        import qdrant_edge
    except ImportError as e:
        msg = "qdrant-edge-py is not installed; install it with pip: `pip install laser-integrations[qdrant]`."
        raise ImportError(msg) from e
    return qdrant_edge


def _check_keys(what: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        msg = f"Unknown {what} key(s) {unknown}; Qdrant Edge accepts {sorted(allowed)}."
        raise ValueError(msg)


def distance(similarity: str) -> qdrant_edge.Distance:
    """Edge's distance for a Haystack similarity name (``cosine``, ``dot_product``, ``l2``)."""
    qe = require_edge()
    if similarity not in DISTANCES:
        msg = f"similarity must be one of {sorted(DISTANCES)}, got {similarity!r}."
        raise ValueError(msg)
    return getattr(qe.Distance, DISTANCES[similarity])


def hnsw_config(config: dict[str, Any] | None) -> qdrant_edge.HnswIndexConfig | None:
    """``{"m": 32, "ef_construct": 200, ...}`` (Qdrant's REST names) as Edge's ``HnswIndexConfig``."""
    if config is None:
        return None
    _check_keys("hnsw_config", config, _HNSW_KEYS)
    return require_edge().HnswIndexConfig(**{**HNSW_DEFAULTS, **config})


def optimizers_config(config: dict[str, Any] | None) -> qdrant_edge.EdgeOptimizersConfig | None:
    """``{"indexing_threshold": 20000, ...}`` (KB, as in Qdrant) as Edge's ``EdgeOptimizersConfig``."""
    if config is None:
        return None
    _check_keys("optimizers_config", config, _OPTIMIZER_KEYS)
    return require_edge().EdgeOptimizersConfig(**config)


def quantization_config(config: dict[str, Any] | None) -> Any:
    """Qdrant's REST form of quantization as Edge's config object.

    ``{"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}``,
    ``{"product": {"compression": "x16", "always_ram": True}}`` or
    ``{"binary": {"always_ram": True, "encoding": "one_bit"}}``.
    """
    if config is None:
        return None
    qe = require_edge()
    if len(config) != 1 or next(iter(config)) not in ("scalar", "product", "binary"):
        msg = (
            "quantization_config must have exactly one of the keys 'scalar', 'product', 'binary', e.g. "
            f"{{'scalar': {{'type': 'int8', 'quantile': 0.99, 'always_ram': True}}}}; got {config!r}."
        )
        raise ValueError(msg)
    kind, params = next(iter(config.items()))
    params = dict(params)
    if kind == "scalar":
        _check_keys("quantization_config.scalar", params, {"type", "quantile", "always_ram"})
        scalar_type = str(params.pop("type", "int8"))
        if scalar_type.lower() != "int8":
            msg = f"Scalar quantization supports type 'int8' only, got {scalar_type!r}."
            raise ValueError(msg)
        return qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, **params)
    if kind == "product":
        _check_keys("quantization_config.product", params, {"compression", "always_ram"})
        ratio = str(params.pop("compression", "x16")).upper()
        if not hasattr(qe.CompressionRatio, ratio):
            msg = f"Product quantization compression must be one of x4, x8, x16, x32, x64, got {ratio.lower()!r}."
            raise ValueError(msg)
        return qe.ProductQuantizationConfig(compression=getattr(qe.CompressionRatio, ratio), **params)
    _check_keys("quantization_config.binary", params, {"always_ram", "encoding"})
    if "encoding" in params:
        names = {"one_bit": "OneBit", "two_bits": "TwoBits", "one_and_half_bits": "OneAndHalfBits"}
        if params["encoding"] not in names:
            msg = f"Binary quantization encoding must be one of {sorted(names)}, got {params['encoding']!r}."
            raise ValueError(msg)
        params["encoding"] = getattr(qe.BinaryQuantizationEncoding, names[params["encoding"]])
    return qe.BinaryQuantizationConfig(**params)


def match_value(value: bool | int | str) -> Any:
    """``MatchValue`` that matches a bool as a bool.

    qdrant-edge-py 0.9 reads a Python ``True`` as the integer 1 (so ``MatchValue(True)`` matches ``1``, never
    ``true``); a ``numpy.bool_`` is read as a bool.
    """
    qe = require_edge()
    if isinstance(value, bool):
        import numpy as np

        return qe.MatchValue(np.bool_(value))
    return qe.MatchValue(value)


def nothing() -> Any:
    """A condition no point satisfies (an ordering comparison with None, ``in []``)."""
    return require_edge().HasIdCondition(set())


def equal(field: str, value: Any) -> Any:
    """``field == value`` as Qdrant conditions compare: None is a missing or null field; a float compares numerically.

    Raises:
        ValueError: a list or a dict, which Qdrant cannot compare for equality.
    """
    qe = require_edge()
    if value is None:
        return qe.IsEmptyCondition(key=field)
    if isinstance(value, (bool, int, str)):
        return qe.FieldCondition(key=field, match=match_value(value))
    if isinstance(value, float):
        return qe.FieldCondition(key=field, range=qe.RangeFloat(gte=value, lte=value))
    msg = f"Qdrant cannot compare the field {field!r} for equality with a {type(value).__name__} ({value!r})."
    raise ValueError(msg)


def ordering(operator: str, field: str, value: Any) -> Any:
    """``field <op> value`` for ``>``, ``>=``, ``<``, ``<=`` on a number or an ISO 8601 date; None matches nothing.

    Raises:
        ValueError: any other value.
    """
    qe = require_edge()
    bound = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[operator]
    if value is None:
        return nothing()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return qe.FieldCondition(key=field, range=qe.RangeFloat(**{bound: float(value)}))
    if isinstance(value, str) and _is_datetime(value):
        return qe.FieldCondition(key=field, range=qe.RangeDateTime(**{bound: value}))
    msg = (
        f"The value of '{operator}' on {field!r} must be a number or an ISO 8601 date string, got "
        f"{type(value).__name__} {value!r}."
    )
    raise ValueError(msg)


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def search_params(params: dict[str, Any] | None) -> qdrant_edge.SearchParams | None:
    """``{"hnsw_ef": 128, "exact": False, "quantization": {"rescore": True, "oversampling": 2.0}}`` for Edge."""
    if params is None:
        return None
    qe = require_edge()
    _check_keys("search_params", params, _SEARCH_KEYS)
    params = dict(params)
    if params.get("quantization") is not None:
        _check_keys("search_params.quantization", params["quantization"], _QUANTIZATION_SEARCH_KEYS)
        params["quantization"] = qe.QuantizationSearchParams(**params["quantization"])
    return qe.SearchParams(**params)


def payload_schema(field_schema: str) -> Any:
    """A payload index type by Qdrant's name (``keyword``, ``integer``, ``float``, ``bool``, ``datetime``...)."""
    qe = require_edge()
    name = str(field_schema).lower()
    if name not in _SCHEMA_TYPES:
        msg = f"Payload index type must be one of {list(_SCHEMA_TYPES)}, got {field_schema!r}."
        raise ValueError(msg)
    return getattr(qe.PayloadSchemaType, name.capitalize())


def stored_config(folder: str | Path) -> dict[str, Any] | None:
    """The shard configuration Edge persisted in ``folder``, or None when the folder holds no shard."""
    config_file = Path(folder) / CONFIG_FILE
    if not config_file.is_file():
        return None
    return json.loads(config_file.read_text(encoding="utf-8"))


def is_local_mode_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds qdrant-client's local-mode storage (a ``meta.json`` listing ``collections``)."""
    meta = Path(folder) / "meta.json"
    if not meta.is_file():
        return False
    try:
        return "collections" in json.loads(meta.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False


def local_mode_error(folder: str | Path) -> LocalModeFolderError:
    """The refusal of a folder written by qdrant-client's local mode, naming the command that converts it."""
    folder = str(folder)
    msg = (
        f"{folder!r} was written by qdrant-client's local mode (it has meta.json and collection/<name>/"
        "storage.sqlite), the embedded store of earlier versions; Qdrant Edge, now the default embedded engine, "
        "cannot read it, and nothing was created in it. Convert it into an Edge folder with `laser migrate "
        f"--from-path {folder} --to-path NEW_DIR` and use NEW_DIR from then on, or keep reading it with "
        "qdrant-client's local mode: engine=\"client\" (CLI: --engine client)."
    )
    return LocalModeFolderError(msg)


# The build's progress indication runs in a child process: EdgeShard.optimize() holds the GIL for the whole build
# and reports no progress, so no thread of this process could draw anything meanwhile. The child ticks once a
# second until its stdin closes (the build ended, or this process died).
_SPINNER = r"""
import select, sys, time
start, frames, i = time.monotonic(), "|/-\\", 0
while not select.select([sys.stdin], [], [], 1.0)[0]:
    seconds = int(time.monotonic() - start)
    sys.stderr.write(f"\r{sys.argv[1]} {frames[i % 4]} {seconds // 60}:{seconds % 60:02d} elapsed")
    sys.stderr.flush()
    i += 1
sys.stderr.write("\n")
"""


def optimize(shard: qdrant_edge.EdgeShard, *, progress: bool = False, what: str = "the shard") -> bool:
    """Run Qdrant's optimizers on ``shard`` until none is planned (builds HNSW), logging the build's length.

    Args:
        shard: the open shard.
        progress: show a spinner with the elapsed time on stderr while the build runs. Edge gives no progress
            callback, so there is no percentage to show.
        what: how the log lines name the shard.

    Returns:
        True if any segment was optimized.
    """
    info = shard.info()
    pending = info.points_count - info.indexed_vectors_count
    logger.info("Qdrant Edge: optimizing %s (%d points, %d not yet in an HNSW index)", what, info.points_count,
                max(pending, 0))  # fmt: skip
    spinner = None
    if progress and os.name == "posix":  # select() on a pipe: POSIX only
        label = f"Building the HNSW index of {what} ({info.points_count:,} points)"
        spinner = subprocess.Popen([sys.executable, "-c", _SPINNER, label], stdin=subprocess.PIPE)  # noqa: S603
    start = time.monotonic()
    try:
        changed = bool(shard.optimize())
    finally:
        if spinner is not None:
            spinner.stdin.close()  # type: ignore[union-attr]
            spinner.wait()
    info = shard.info()
    logger.info("Qdrant Edge: %s optimized in %.1f s: %d segments, %d of %d vectors indexed", what,
                time.monotonic() - start, info.segments_count, info.indexed_vectors_count, info.points_count)  # fmt: skip
    return changed


def remove_shard(folder: str | Path) -> None:
    """Delete the shard in ``folder`` (to recreate it); refuses a folder that is not an Edge shard."""
    folder = Path(folder)
    if not folder.exists():
        return
    if stored_config(folder) is None and any(folder.iterdir()):
        msg = f"{str(folder)!r} is not a Qdrant Edge shard; refusing to delete it to recreate the index."
        raise FileExistsError(msg)
    shutil.rmtree(folder)


def locked_error(folder: str | Path) -> StorageLockedError:
    """The error for a shard folder another process (or another open store in this one) holds."""
    msg = (
        f"The Qdrant Edge folder {str(folder)!r} is already opened by another process (or another store in this "
        "one); Edge locks its write-ahead log, so one process at a time can open it. Close the other program "
        "(e.g. a running `laser index`) or call close() on the other store, wait for it to exit, and open the "
        "folder again; or use another folder; or run a Qdrant server (url=...) for concurrent access."
    )
    return StorageLockedError(msg)


def _is_lock_error(error: BaseException) -> bool:
    return "WouldBlock" in str(error)


def open_shard(
    folder: str | Path,
    *,
    vectors: dict[str, tuple[int, str]],
    hnsw: dict[str, Any] | None = None,
    quantization: dict[str, Any] | None = None,
    on_disk: bool | None = None,
    optimizers: dict[str, Any] | None = None,
    payload_indexes: dict[str, str] | None = None,
    sparse: dict[str, str | None] | list[str] | None = None,
    hybrid_flag: str = "hybrid=True / --hybrid",
    where: str = "Qdrant Edge",
) -> qdrant_edge.EdgeShard:
    """Load the Edge shard in ``folder``, or create it there when the folder is missing or empty.

    Args:
        folder: the shard's folder.
        vectors: vector name (``""`` for the unnamed one) to ``(size, similarity)``.
        hnsw, quantization, on_disk, optimizers: settings, as in :func:`hnsw_config` etc.; ``None`` keeps what the
            shard has (or Qdrant's default for a new one).
        payload_indexes: payload field to index type (``{"meta.category": "keyword"}``), created when missing.
        sparse: the sparse vectors: a list of names, each with Qdrant's IDF modifier (BM25's, hybrid search), or
            a dict of name to modifier (``"idf"`` or None: ``laser migrate`` copies a source's).
        hybrid_flag: the caller's switch for sparse vectors, as layout errors name it.
        where: how errors name the store.

    Raises:
        CollectionDimensionError: the shard holds vectors of another size or distance.
        CollectionLayoutError: the shard has sparse vectors and ``sparse`` is empty, or the other way round.
        StorageLockedError: another process holds the folder.
        FileExistsError: the folder holds something that is not an Edge shard.
        LocalModeFolderError: the folder (or its parent) was written by qdrant-client's local mode.
    """
    qe = require_edge()
    folder = Path(folder).expanduser()
    modifiers = dict(sparse) if isinstance(sparse, dict) else {name: "idf" for name in sparse or []}
    sparse = list(modifiers)
    for candidate in (folder, folder.parent):
        if is_local_mode_folder(candidate):
            raise local_mode_error(candidate)
    existing = stored_config(folder)
    if existing is not None:
        # Before the dense check: a hybrid shard names its dense vector, so that check would blame the framework.
        if bool(existing.get("sparse_vectors")) != bool(sparse):
            raise layout_error(folder.name, f"Qdrant Edge folder {str(folder.parent)!r}", bool(sparse), hybrid_flag)
        check_vectors(folder, existing, vectors, where, sparse)
    elif folder.exists() and any(folder.iterdir()):
        msg = (
            f"{str(folder)!r} is not empty and holds no Qdrant Edge shard ({CONFIG_FILE} is missing); refusing to "
            "create a shard beside its data. If it was written by qdrant-client's local mode (it has meta.json and "
            "collection/), open it with qdrant-client (laser_integrations.qdrant.open_document_store / "
            "open_vector_store) or copy its points into a new Edge folder; otherwise give an empty or new folder."
        )
        raise FileExistsError(msg)
    params = {
        name: qe.EdgeVectorParams(size=size, distance=distance(similarity), on_disk=on_disk)
        for name, (size, similarity) in vectors.items()
    }
    # Qdrant multiplies each query term by its IDF over the shard's points: BM25 (laser_integrations.sparse).
    sparse_params = {name: qe.EdgeSparseVectorParams(modifier=sparse_modifier(modifier))
                     for name, modifier in modifiers.items()}  # fmt: skip
    config = qe.EdgeConfig(
        vectors=params[""] if list(params) == [""] else params,
        sparse_vectors=sparse_params or None,
        hnsw_config=hnsw_config(hnsw),
        quantization_config=quantization_config(quantization),
        optimizers=optimizers_config(optimizers),
    )
    if existing is not None:
        shard = load_shard(folder, config)
    else:
        shard = _unlocked(folder, lambda: qe.EdgeShard.create(str(folder), config))
    try:
        ensure_payload_indexes(shard, payload_indexes or {})
    except Exception:
        shard.close()
        raise
    return shard


def load_shard(folder: str | Path, config: qdrant_edge.EdgeConfig | None = None) -> qdrant_edge.EdgeShard:
    """Load the existing shard in ``folder`` (with ``config``: checked against it and stored; None: as it is).

    Raises:
        StorageLockedError: another process holds the folder.
    """
    qe = require_edge()
    return _unlocked(folder, lambda: qe.EdgeShard.load(str(folder), config))


def _unlocked(folder: str | Path, open_: Callable[[], qdrant_edge.EdgeShard]) -> qdrant_edge.EdgeShard:
    """``open_()``, with Edge's WAL lock failure ("WouldBlock") turned into :class:`StorageLockedError`."""
    try:
        return open_()
    except Exception as e:  # Edge raises plain Exception for every failure
        if _is_lock_error(e):
            raise locked_error(folder) from e
        raise


def sparse_modifier(modifier: str | None) -> Any:
    """Edge's sparse-vector modifier for Qdrant's name of it (``"idf"``; None or ``"none"``: no modifier)."""
    if modifier in (None, "none"):
        return None
    if str(modifier).lower() != "idf":
        msg = f"Sparse vector modifier must be 'idf' or None, got {modifier!r}."
        raise ValueError(msg)
    return require_edge().Modifier.Idf


def ensure_payload_indexes(shard: qdrant_edge.EdgeShard, indexes: dict[str, str]) -> None:
    """Create each payload index of ``indexes`` (field -> type) that the shard does not have yet."""
    qe = require_edge()
    present = shard.info().payload_schema
    for field, schema in indexes.items():
        wanted = payload_schema(schema)
        if field in present:
            if present[field].data_type != wanted:
                msg = (
                    f"Payload field {field!r} is already indexed as {present[field].data_type.name.lower()}, "
                    f"not {schema}; drop the index or keep its type."
                )
                raise ValueError(msg)
            continue
        shard.update(qe.UpdateOperation.create_field_index(field, wanted))


def check_vectors(
    folder: Path, existing: dict[str, Any], vectors: dict[str, tuple[int, str]], where: str, sparse: Sequence[str] = (),
) -> None:  # fmt: skip
    """Raise unless the stored config ``existing`` has each of ``vectors`` (name -> size, similarity) and each of
    the ``sparse`` vectors, with Qdrant's IDF modifier."""
    stored_sparse = existing.get("sparse_vectors") or {}
    for name in sparse:
        if name not in stored_sparse:
            msg = (
                f"The Qdrant Edge folder {str(folder)!r} has no sparse vector {name!r} (it has "
                f"{sorted(stored_sparse)}): it was written with another layout (by the other framework's store?). "
                "Give each framework its own folder."
            )
            raise CollectionDimensionError(msg)
        if (stored_sparse[name] or {}).get("modifier") != "idf":
            msg = (
                f"{where} {str(folder)!r} holds the sparse vector {name!r} without Qdrant's IDF modifier, which BM25 "
                "needs; rebuild it (recreate=True / --recreate)."
            )
            raise ValueError(msg)
    stored = existing.get("vectors") or {}
    for name, (size, similarity) in vectors.items():
        label = f"vector {name!r}" if name else "vectors"
        if name not in stored:
            msg = (
                f"The Qdrant Edge folder {str(folder)!r} has no {label} (it has {sorted(stored)}): it was written "
                "with another layout (by the other framework's store?). Give each framework its own folder."
            )
            raise CollectionDimensionError(msg)
        if int(stored[name]["size"]) != size:
            msg = (
                f"{where} {str(folder)!r} holds {label} of size {stored[name]['size']}, but {size} dimensions were "
                "asked for (the encoder's dimension). Search it with the model it was indexed with, index into "
                "another folder or collection, or drop and rebuild this one (recreate=True / --recreate)."
            )
            raise CollectionDimensionError(msg)
        if stored[name]["distance"] != DISTANCES[similarity]:
            msg = (
                f"{where} {str(folder)!r} holds {label} compared by {stored[name]['distance']}, not "
                f"{DISTANCES[similarity]} ({similarity!r}); open it with the similarity it was created with."
            )
            raise ValueError(msg)
