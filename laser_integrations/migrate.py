"""``laser migrate``: copy a collection out of an embedded Qdrant folder, points, vectors, payloads and provenance.

Sources are embedded folders: Qdrant Edge shards (``DIR/<collection>``, the default engine) or a folder written by
qdrant-client's local mode (earlier versions' embedded store: ``meta.json`` + ``collection/<name>/storage.sqlite``),
which is read with qdrant-client and never written. Targets are a Qdrant server or cluster (any ``QdrantClient``:
moving up to a server) or a new Qdrant Edge folder (converting a local-mode folder).

Points are streamed with scroll in batches and upserted with their ids unchanged, so a rerun never duplicates a
point. The target records the migration (``laser_migration`` in the collection's metadata, or
``laser_migration.json`` beside an Edge shard) with the scroll offset reached; rerunning the same command after a
crash resumes there. The model's provenance record is written into the target last, when every point is there: a
half-copied collection records no model, so writers refuse it and readers warn.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import edge
from .indexing import MAX_REQUEST_BYTES, request_batches
from .provenance import (
    ProvenanceMismatchError,
    read_folder_provenance,
    read_provenance,
    write_folder_provenance,
    write_json_atomically,
    write_provenance,
)
from .qdrant import CollectionDimensionError, CollectionNotFoundError, open_client

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

MARKER_KEY = "laser_migration"  # in a server collection's metadata
MARKER_FILE = "laser_migration.json"  # beside an Edge shard
DEFAULT_BATCH_SIZE = 256

# A point as both engines hand it over: id (int or UUID string), vectors by name ("" is the unnamed one; a sparse
# vector is an (indices, values) pair), payload.
Point = tuple[Any, dict[str, Any], dict[str, Any]]


@dataclass
class Layout:
    """A collection's vectors, in the form Edge stores them (``edge_config.json``, Qdrant's REST names).

    ``dense``: name -> ``{"size": 1024, "distance": "Cosine", "on_disk": None}``; ``sparse``: name -> modifier
    (``"idf"`` or None); ``hnsw``, ``quantization``: index settings to carry over, or None.
    """

    dense: dict[str, dict[str, Any]]
    sparse: dict[str, str | None]
    hnsw: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None

    def vectors(self) -> dict[str, tuple[int, str]]:
        return {name: (int(v["size"]), v["distance"]) for name, v in self.dense.items()}

    def same_vectors(self, other: Layout) -> bool:
        return self.vectors() == other.vectors() and set(self.sparse) == set(other.sparse)

    def describe(self) -> str:
        dense = ", ".join(f"{n or '(unnamed)'}: {s} {d}" for n, (s, d) in sorted(self.vectors().items()))
        return f"dense {{{dense}}}, sparse {sorted(self.sparse)}"


@dataclass
class MigrationResult:
    source: str
    target: str
    collection: str
    points: int
    resumed: bool
    provenance: dict[str, Any] | None


# -- sources ---------------------------------------------------------------------------------------------------
def embedded_collections(folder: str | Path) -> tuple[str, list[str]]:
    """The engine of an embedded folder (``"edge"`` or ``"local"``) and the collections it holds.

    Raises:
        FileNotFoundError: the folder does not exist or holds no embedded Qdrant.
    """
    from .qdrant import _edge_shards

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        msg = f"--from-path {str(folder)!r} {what}; give the embedded Qdrant folder to migrate (nothing was created)."
        raise FileNotFoundError(msg)
    if edge.is_local_mode_folder(folder):
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        return "local", sorted(meta.get("collections") or {})
    shards = _edge_shards(folder)
    if edge.stored_config(folder) is not None:
        msg = (
            f"--from-path {str(folder)!r} is one Qdrant Edge collection; give the folder that holds it: "
            f"--from-path {str(folder.parent)!r} --collection {folder.name!r}."
        )
        raise FileNotFoundError(msg)
    if not shards:
        msg = (
            f"--from-path {str(folder)!r} holds no embedded Qdrant (neither Qdrant Edge collections nor "
            "qdrant-client's meta.json); give the folder `laser index` (--path) wrote."
        )
        raise FileNotFoundError(msg)
    return "edge", shards


def _choose(folder: Path, names: list[str], collection: str | None) -> str:
    if collection is None:
        if len(names) == 1:
            return names[0]
        msg = f"{str(folder)!r} holds {len(names)} collections {names}; choose one with --collection."
        raise ValueError(msg)
    if collection not in names:
        held = names or "no collections"
        msg = f"Collection {collection!r} does not exist in {str(folder)!r}; it holds {held} (--collection)."
        raise CollectionNotFoundError(msg)
    return collection


class EdgeSource:
    """A Qdrant Edge shard ``folder/collection``, loaded as it is (no config is written into it)."""

    def __init__(self, folder: Path, collection: str) -> None:
        self.shard_folder = folder / collection
        config = edge.stored_config(self.shard_folder) or {}
        self.layout = Layout(
            dense={n: {"size": v["size"], "distance": v["distance"], "on_disk": v.get("on_disk")}
                   for n, v in (config.get("vectors") or {}).items()},
            sparse={n: (v or {}).get("modifier") for n, v in (config.get("sparse_vectors") or {}).items()},
            hnsw=config.get("hnsw_config"),
            quantization=config.get("quantization_config"),
        )  # fmt: skip
        self.shard = edge.load_shard(self.shard_folder)
        self.provenance = read_folder_provenance(self.shard_folder)

    def count(self) -> int:
        return int(self.shard.count(edge.require_edge().CountRequest(exact=True)))

    def scroll(self, offset: Any, limit: int) -> tuple[list[Point], Any]:
        qe = edge.require_edge()
        records, next_offset = self.shard.scroll(
            qe.ScrollRequest(offset=_edge_id(offset), limit=limit, with_payload=True, with_vector=True)
        )
        points = []
        for r in records:
            vector = r.vector if isinstance(r.vector, dict) else {"": r.vector}
            vectors = {n: (list(v.indices), list(v.values)) if isinstance(v, qe.SparseVector) else list(v)
                       for n, v in vector.items()}  # fmt: skip
            points.append((_plain_id(r.id), vectors, dict(r.payload or {})))
        return points, _plain_id(next_offset)

    def close(self) -> None:
        self.shard.close()


class LocalModeSource:
    """A collection of a qdrant-client local-mode folder, read with qdrant-client (nothing is written to it)."""

    def __init__(self, folder: Path, collection: str) -> None:
        from qdrant_client import models

        self.client = open_client(path=folder)
        self.collection = collection
        params = self.client.get_collection(collection).config.params
        vectors = params.vectors if isinstance(params.vectors, dict) else {"": params.vectors}
        dense = {}
        for name, v in vectors.items():
            if v is None:
                continue
            if v.multivector_config is not None or v.datatype not in (None, models.Datatype.FLOAT32):
                msg = (
                    f"Collection {collection!r} in {str(folder)!r} has vector {name or '(unnamed)'!r} as "
                    f"{'multivectors' if v.multivector_config else v.datatype}; laser migrate copies float32 "
                    "single vectors only."
                )
                raise ValueError(msg)
            dense[name] = {"size": v.size, "distance": _enum_value(v.distance), "on_disk": v.on_disk}
        sparse = {n: (_enum_value(s.modifier) if s.modifier is not None else None)
                  for n, s in (params.sparse_vectors or {}).items()}  # fmt: skip
        # Local mode accepts HNSW and quantization settings and ignores them: nothing to carry.
        self.layout = Layout(dense=dense, sparse=sparse)
        self.provenance = read_provenance(self.client, collection)

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def scroll(self, offset: Any, limit: int) -> tuple[list[Point], Any]:
        records, next_offset = self.client.scroll(
            self.collection, offset=offset, limit=limit, with_payload=True, with_vectors=True
        )
        points = []
        for r in records:
            vector = r.vector if isinstance(r.vector, dict) else {"": r.vector}
            vectors = {n: (list(v.indices), list(v.values)) if hasattr(v, "indices") else list(v)
                       for n, v in (vector or {}).items()}  # fmt: skip
            points.append((_plain_id(r.id), vectors, dict(r.payload or {})))
        return points, _plain_id(next_offset)

    def close(self) -> None:
        self.client.close()


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def _plain_id(point_id: Any) -> Any:
    """A point id as JSON can hold it: an int, or a UUID as its string."""
    return str(point_id) if isinstance(point_id, uuid.UUID) else point_id


def _edge_id(point_id: Any) -> Any:
    return uuid.UUID(point_id) if isinstance(point_id, str) else point_id


# -- targets ---------------------------------------------------------------------------------------------------
class ClientTarget:
    """A collection reached with qdrant-client: a server or cluster (a local-mode client stands in for one in tests)."""

    def __init__(self, client: QdrantClient, collection: str, where: str) -> None:
        self.client, self.collection, self.where = client, collection, where

    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count) if self.exists() else 0

    def layout(self) -> Layout:
        params = self.client.get_collection(self.collection).config.params
        vectors = params.vectors if isinstance(params.vectors, dict) else {"": params.vectors}
        dense = {n: {"size": v.size, "distance": _enum_value(v.distance)} for n, v in vectors.items() if v is not None}
        return Layout(dense=dense, sparse={n: None for n in params.sparse_vectors or {}})

    def provenance(self) -> dict[str, Any] | None:
        return read_provenance(self.client, self.collection)

    def marker(self) -> dict[str, Any] | None:
        metadata = self.client.get_collection(self.collection).config.metadata or {}
        marker = metadata.get(MARKER_KEY)
        return json.loads(marker) if isinstance(marker, str) else marker

    def drop(self) -> None:
        self.client.delete_collection(self.collection)

    def create(self, layout: Layout) -> None:
        from qdrant_client import models

        dense = {n: models.VectorParams(size=int(v["size"]), distance=models.Distance(v["distance"]),
                                        on_disk=v.get("on_disk"))
                 for n, v in layout.dense.items()}  # fmt: skip
        sparse = {n: models.SparseVectorParams(modifier=models.Modifier(m) if m else None)
                  for n, m in layout.sparse.items()}  # fmt: skip
        quantization = None
        if layout.quantization:
            (kind, config), = layout.quantization.items()
            kinds = {"scalar": models.ScalarQuantization, "product": models.ProductQuantization,
                     "binary": models.BinaryQuantization}  # fmt: skip
            quantization = kinds[kind](**{kind: config})
        self.client.create_collection(
            self.collection,
            vectors_config=dense[""] if list(dense) == [""] else dense,
            sparse_vectors_config=sparse or None,
            hnsw_config=models.HnswConfigDiff(**layout.hnsw) if layout.hnsw else None,
            quantization_config=quantization,
        )

    def write_marker(self, marker: dict[str, Any]) -> None:
        self.client.update_collection(self.collection, metadata={MARKER_KEY: marker})

    def upsert(self, points: list[Point]) -> None:
        from qdrant_client import models

        def vector(vectors: dict[str, Any]) -> Any:
            if list(vectors) == [""]:
                return vectors[""]
            return {n: models.SparseVector(indices=v[0], values=v[1]) if isinstance(v, tuple) else v
                    for n, v in vectors.items()}  # fmt: skip

        # Each request stays under the size a server accepts (Qdrant's default limit is 32 MB).
        for batch in request_batches(points, MAX_REQUEST_BYTES, _point_bytes):
            structs = [models.PointStruct(id=i, vector=vector(v), payload=p) for i, v, p in batch]
            self.client.upsert(self.collection, points=structs, wait=True)

    def finish(self, provenance: dict[str, Any] | None) -> None:
        if provenance is not None:
            write_provenance(self.client, self.collection, provenance)

    def close(self) -> None:
        """The caller's client stays open."""


class EdgeTarget:
    """A Qdrant Edge shard ``folder/collection``; its HNSW is built once, when every point is in."""

    def __init__(self, folder: Path, collection: str) -> None:
        self.root, self.collection = folder, collection
        self.folder = folder / collection
        self.where = f"Qdrant Edge folder {str(folder)!r}"
        self.shard: Any = None

    def exists(self) -> bool:
        return edge.stored_config(self.folder) is not None

    def _open(self, layout: Layout | None = None) -> Any:
        if self.shard is None:
            if layout is None:
                self.shard = edge.load_shard(self.folder)
            else:
                similarity = {d: s for s, d in edge.DISTANCES.items()}
                vectors = {}
                for name, (size, distance) in layout.vectors().items():
                    if distance not in similarity:
                        msg = f"Qdrant Edge stores cosine, dot and Euclid vectors; vector {name!r} is {distance}."
                        raise ValueError(msg)
                    vectors[name] = (size, similarity[distance])
                self.shard = edge.open_shard(self.folder, vectors=vectors, sparse=layout.sparse, hnsw=layout.hnsw,
                                             quantization=layout.quantization, where=self.where)  # fmt: skip
        return self.shard

    def count(self) -> int:
        if not self.exists():
            return 0
        return int(self._open().count(edge.require_edge().CountRequest(exact=True)))

    def layout(self) -> Layout:
        config = edge.stored_config(self.folder) or {}
        return Layout(dense={n: {"size": v["size"], "distance": v["distance"]} for n, v in config["vectors"].items()},
                      sparse={n: None for n in config.get("sparse_vectors") or {}})  # fmt: skip

    def provenance(self) -> dict[str, Any] | None:
        return read_folder_provenance(self.folder)

    def marker(self) -> dict[str, Any] | None:
        path = self.folder / MARKER_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def drop(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        edge.remove_shard(self.folder)

    def create(self, layout: Layout) -> None:
        self._open(layout)

    def write_marker(self, marker: dict[str, Any]) -> None:
        self._open().flush()  # the points before the offset are on disk before the marker says so
        write_json_atomically(self.folder / MARKER_FILE, marker)

    def upsert(self, points: list[Point]) -> None:
        qe = edge.require_edge()

        def vector(vectors: dict[str, Any]) -> Any:
            if list(vectors) == [""]:
                return vectors[""]
            return {n: qe.SparseVector(v[0], v[1]) if isinstance(v, tuple) else v for n, v in vectors.items()}

        structs = [qe.Point(id=_edge_id(i), vector=vector(v), payload=p) for i, v, p in points]
        self._open().update(qe.UpdateOperation.upsert_points(structs))

    def finish(self, provenance: dict[str, Any] | None) -> None:
        shard = self._open()
        shard.optimize()  # HNSW once, over every point (not after each batch)
        shard.flush()
        if provenance is not None:
            write_folder_provenance(self.folder, provenance)

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None


def _point_bytes(point: Point) -> int:
    """An upper estimate of a point's JSON size in an upsert request (as ``indexing.document_bytes``)."""
    _, vectors, payload = point
    floats = sum(len(v[0]) * 2 if isinstance(v, tuple) else len(v) for v in vectors.values())
    return 12 * floats + len(json.dumps(payload, ensure_ascii=False).encode()) + 200


# -- the migration ---------------------------------------------------------------------------------------------
def _same_place(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def migrate(
    from_path: str | os.PathLike,
    *,
    to_client: QdrantClient | None = None,
    to_path: str | os.PathLike | None = None,
    collection: str | None = None,
    to_collection: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    recreate: bool = False,
    progress: bool = True,
    to_where: str | None = None,
) -> MigrationResult:
    """Copy one collection of the embedded folder ``from_path`` into a server collection (``to_client``) or a new
    Qdrant Edge folder (``to_path``), resumably.

    Args:
        from_path: a folder of Qdrant Edge collections, or one written by qdrant-client's local mode.
        to_client: a ``QdrantClient`` of the target server (left open).
        to_path: a Qdrant Edge folder; the collection becomes its sub-folder ``to_path/to_collection``.
        collection: the source collection (default: the only one in ``from_path``).
        to_collection: the target collection's name (default: the source's).
        batch_size: points read per scroll page (and written per request, split further to stay under
            ``MAX_REQUEST_BYTES`` for a server).
        recreate: drop the target collection first (all its points are lost).
        progress: show a tqdm progress bar.
        to_where: how messages name ``to_client`` (e.g. its URL).

    Returns:
        What was copied: the point count, whether an interrupted run was resumed, the provenance record.

    Raises:
        FileNotFoundError: ``from_path`` is missing or holds no embedded Qdrant; CollectionNotFoundError: no such
            collection (the message lists those there).
        ValueError: two targets or none, the same folder as source and target, a source with several collections
            and no ``collection``, a bad ``batch_size``.
        FileExistsError: the target collection already holds points not copied by this migration (``recreate``).
        CollectionDimensionError: the target collection has other vectors.
        ProvenanceMismatchError: the target collection records another model.
    """
    from tqdm.auto import tqdm

    if (to_client is None) == (to_path is None):
        msg = "Give one target: a server (--to-url / to_client=...) or a Qdrant Edge folder (--to-path / to_path=...)."
        raise ValueError(msg)
    if batch_size < 1:
        msg = f"--batch-size must be a positive integer, got {batch_size}."
        raise ValueError(msg)
    source_folder = Path(from_path).expanduser()
    engine, names = embedded_collections(source_folder)
    name = _choose(source_folder, names, collection)
    target_name = to_collection or name
    if to_path is not None:
        target_folder = Path(to_path).expanduser()
        if _same_place(source_folder, target_folder):
            msg = (
                f"--to-path {str(target_folder)!r} is --from-path {str(source_folder)!r} or inside it (or holds it); "
                "migrating a folder into itself would write beside the data being read. Give a new folder."
            )
            raise ValueError(msg)
        if target_folder.exists() and not target_folder.is_dir():
            msg = f"--to-path {str(target_folder)!r} is a file; give a folder."
            raise NotADirectoryError(msg)
        if edge.is_local_mode_folder(target_folder):
            raise edge.local_mode_error(target_folder)
        target: ClientTarget | EdgeTarget = EdgeTarget(target_folder, target_name)
    else:
        target = ClientTarget(to_client, target_name, to_where or "the target Qdrant")
    source_id = {"from": str(source_folder.resolve()), "collection": name}
    source = EdgeSource(source_folder, name) if engine == "edge" else LocalModeSource(source_folder, name)
    try:
        offset, resumed = _prepare_target(source, target, source_id, recreate)
        total = source.count()
        done = target.count() if resumed else 0
        with tqdm(total=total, initial=min(done, total), unit="point", disable=not progress,
                  desc=f"migrate {name}") as bar:  # fmt: skip
            while True:
                points, next_offset = source.scroll(offset, batch_size)
                if points:
                    target.upsert(points)
                offset = next_offset
                target.write_marker({**source_id, "offset": offset, "done": False})
                bar.update(len(points))
                if offset is None:
                    break
        target.finish(source.provenance)
        copied = target.count()
        if copied != total:
            msg = (
                f"{target.where} collection {target_name!r} holds {copied} points after the migration, the source "
                f"{total}; was one of them written to meanwhile? Rerun with --recreate."
            )
            raise RuntimeError(msg)
        target.write_marker({**source_id, "offset": None, "done": True})
    finally:
        source.close()
        target.close()
    where = str(to_path) if to_path is not None else target.where
    return MigrationResult(source=str(source_folder), target=where, collection=target_name, points=total,
                           resumed=resumed, provenance=source.provenance)  # fmt: skip


def _prepare_target(
    source: EdgeSource | LocalModeSource, target: ClientTarget | EdgeTarget, source_id: dict[str, Any], recreate: bool
) -> tuple[Any, bool]:
    """Create the target collection, or check the existing one; the scroll offset to start from, and whether this
    resumes an interrupted migration of the same source."""
    name = target.collection
    if target.exists() and recreate:
        target.drop()
    if not target.exists():
        target.create(source.layout)
        target.write_marker({**source_id, "offset": None, "done": False})
        return None, False
    if not target.layout().same_vectors(source.layout):
        msg = (
            f"Collection {name!r} in {target.where} has other vectors ({target.layout().describe()}) than the source "
            f"({source.layout.describe()}). Migrate into another collection (--to-collection), or drop and rebuild "
            "it with --recreate."
        )
        raise CollectionDimensionError(msg)
    stored = target.provenance()
    if stored is not None and source.provenance is not None and stored != source.provenance:
        made_by = stored.get("checkpoint_resolved") or stored.get("checkpoint")
        source_by = source.provenance.get("checkpoint_resolved") or source.provenance.get("checkpoint")
        msg = (
            f"Collection {name!r} in {target.where} was indexed by {made_by!r} with other settings than the source "
            f"(indexed by {source_by!r}); copying into it would mix incomparable vectors. Migrate into another "
            "collection (--to-collection), or drop and rebuild it with --recreate."
        )
        raise ProvenanceMismatchError(msg)
    marker = target.marker()
    if marker is not None and {k: marker.get(k) for k in source_id} == source_id:
        offset = None if marker.get("done") else marker.get("offset")
        logger.info("Resuming the migration into %s at offset %r", name, offset)
        return offset, True
    points = target.count()
    if points == 0 and marker is None and stored is None:
        target.write_marker({**source_id, "offset": None, "done": False})
        return None, False
    came_from = f" (migrated from {marker.get('from')!r}, collection {marker.get('collection')!r})" if marker else ""
    msg = (
        f"Collection {name!r} in {target.where} already holds {points} points{came_from} that this migration did not "
        "copy; merging them could mix two corpora. Migrate into another collection (--to-collection), or drop and "
        "rebuild it with --recreate."
    )
    raise FileExistsError(msg)
