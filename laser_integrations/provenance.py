"""Which model filled a Qdrant collection, recorded in the collection itself and checked by every writer and reader.

A collection made by ``laser index``, :func:`laser_integrations.qdrant.open_document_store` or
:func:`~laser_integrations.qdrant.open_vector_store` (given the encoder) carries a *provenance record* in its
collection metadata (kept by qdrant-client's local mode and by Qdrant servers >= 1.16) or, for a Qdrant Edge
shard (which has no collection metadata), in the file ``laser_provenance.json`` in the shard's folder, written
atomically (:func:`write_folder_provenance`): the checkpoint as given and as
resolved, a fingerprint of its weight files, its ``laser_config.json`` values, K, the document
template/instruction and embedded fields, the dimension and the library version.

- A **writer** adding to a collection made by another model or format is refused
  (:class:`ProvenanceMismatchError`, naming ``--recreate`` / ``recreate=True``); so is one adding to a non-empty
  collection that records no model (it cannot be checked).
- A **reader** whose query encoder does not match is refused, or with ``allow_mismatch=True`` (``laser search
  --allow-model-mismatch``) warned (:class:`ProvenanceWarning`); a collection without a record gets a warning.

:func:`check_provenance` is a pure function of two records, so a worker process of a parallel indexer can run the
same check on its own. :func:`content_hash` is the per-document hash ``laser index`` stores (payload
``meta.laser_sha256``) so that a repeated run re-embeds exactly the documents whose text changed.

Weight fingerprint: SHA-256 over each weight file's size and bytes; a file over 256 MiB is hashed from its
header and 64 windows of 1 MiB spread over it (a retrained checkpoint differs everywhere, and this keeps the cost
of checking an 8B checkpoint near 0.1 s). A model built in memory (not loaded from files) is fingerprinted from
its parameters. Loading the same files in another dtype or on another device keeps the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from .encoder import LaSEREncoder

logger = logging.getLogger(__name__)

METADATA_KEY = "laser_provenance"
PROVENANCE_FILE = "laser_provenance.json"  # beside a Qdrant Edge shard (Edge keeps no collection metadata)
CONTENT_HASH_FIELD = "laser_sha256"  # in each document's meta (Haystack payload "meta")
RECORD_VERSION = 1
_FULL_HASH_LIMIT = 256 << 20
_WINDOWS, _WINDOW = 64, 1 << 20

# Keys whose difference means the collection's vectors and this encoder's are not comparable.
# (layout: Haystack and LlamaIndex lay out payloads differently; one reading the other's gets empty documents.)
READER_KEYS = ("dimension", "weights_sha256", "num_thinking_steps", "laser_config", "layout", "truncate_dim",
               "precision")
# A writer must also embed documents exactly as the rest of the collection was embedded.
WRITER_KEYS = (*READER_KEYS, "document_instruction", "embedded_fields", "prefix", "suffix", "normalize")
# laser_config keys that only shape queries per call (an instruction given with the query is normal use).
_PER_CALL_CONFIG_KEYS = ("num_thinking_steps", "query_instruction")

Role = Literal["writer", "reader"]


class ProvenanceMismatchError(ValueError):
    """The collection was filled by another model or document format than this encoder's."""


class ProvenanceWarning(UserWarning):
    """A collection's model could not be checked, or a mismatch was accepted with ``allow_mismatch=True``."""


# -- fingerprints ----------------------------------------------------------------------------------------------
_FILE_CACHE: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a weight file (sampled above 256 MiB, see the module docstring), cached per (path, size, mtime)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    digest = hashlib.sha256(str(stat.st_size).encode())
    with open(real, "rb") as f:
        if stat.st_size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f.read(_WINDOW))  # the header: tensor names, shapes and offsets
            step = (stat.st_size - _WINDOW) // _WINDOWS
            for i in range(1, _WINDOWS + 1):
                f.seek(min(i * step, stat.st_size - _WINDOW))
                digest.update(f.read(_WINDOW))
    _FILE_CACHE[key] = digest.hexdigest()
    return _FILE_CACHE[key]


def _parameters_fingerprint(model: Any) -> str:
    """For a model that was not loaded from files: names, shapes and (up to 4096 of) the values of each tensor."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        if flat.numel() > 4096:
            flat = flat[:: flat.numel() // 4096][:4096]
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat.to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()


def weights_fingerprint(encoder: LaSEREncoder) -> str:
    """A fingerprint of the encoder's weights: of its weight files when it was loaded from a checkpoint."""
    from .latent import unwrap_causal_lm
    from .loading import checkpoint_source

    source = checkpoint_source(encoder.model) or checkpoint_source(unwrap_causal_lm(encoder.model))
    if source is not None and source.weight_files:
        digest = hashlib.sha256()
        for file in source.weight_files:
            digest.update(os.path.basename(file).encode() + b"\0" + file_fingerprint(file).encode())
        return digest.hexdigest()
    return _parameters_fingerprint(encoder.model)


def content_hash(*parts: str | None) -> str:
    """SHA-256 of the texts that are embedded for one document (e.g. title and text), in order."""
    return hashlib.sha256(json.dumps(list(parts), ensure_ascii=False).encode()).hexdigest()


# -- records ---------------------------------------------------------------------------------------------------
def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("laser-integrations")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        from . import __version__

        return __version__


def describe_encoder(
    encoder: LaSEREncoder,
    *,
    num_thinking_steps: int | None = None,
    instruction: str | None = None,
    embedded_fields: Iterable[str] = (),
    prefix: str = "",
    suffix: str = "",
    layout: str = "haystack",
    truncate_dim: int | None = None,
    precision: str = "float32",
) -> dict[str, Any]:
    """The provenance record of a collection filled (or searched) by ``encoder`` with these per-call settings.

    Args:
        encoder: the loaded encoder.
        num_thinking_steps: K used (None: the checkpoint's).
        instruction: document instruction used (None: the config's ``document_instruction``).
        embedded_fields: meta fields embedded with the text (``laser index`` embeds ``title`` unless --no-title).
        prefix, suffix: texts put around each document (Haystack embedders).
        layout: ``"haystack"`` or ``"llama_index"`` (their payloads differ).
        truncate_dim, precision: the embedders' Matryoshka truncation and quantization (queries must match).
    """
    from .latent import unwrap_causal_lm
    from .loading import checkpoint_source

    config = encoder.config
    source = checkpoint_source(encoder.model) or checkpoint_source(unwrap_causal_lm(encoder.model))
    return {
        "record_version": RECORD_VERSION,
        "library_version": _library_version(),
        "checkpoint": source.given if source else encoder.name_or_path,
        "checkpoint_resolved": source.resolved if source else None,
        "weights_sha256": weights_fingerprint(encoder),
        "laser_config": {k: v for k, v in config.to_dict().items() if k not in _PER_CALL_CONFIG_KEYS},
        "num_thinking_steps": num_thinking_steps if num_thinking_steps is not None else config.num_thinking_steps,
        "document_template": config.document_template,
        "document_instruction": instruction if instruction is not None else config.document_instruction,
        "embedded_fields": sorted(embedded_fields),
        "prefix": prefix,
        "suffix": suffix,
        "normalize": bool(config.normalize),
        "dimension": encoder.dimension,
        "layout": layout,
        "truncate_dim": truncate_dim,
        "precision": precision,
    }


def provenance_of(component: Any) -> dict[str, Any]:
    """The record of a LaSER component as it embeds documents: a Haystack ``LaSERDocumentEmbedder`` (its K,
    instruction, prefix, suffix and embedded meta fields) or a LlamaIndex ``LaSEREmbedding``; loads it if needed.

    Example:
        >>> store = open_document_store(path="laser_qdrant", embedding_dim=embedder.encoder.dimension,
        ...                             provenance=provenance_of(embedder))  # doctest: +SKIP
    """
    if callable(getattr(component, "provenance_record", None)):
        return component.provenance_record()
    if getattr(component, "encoder", None) is None and callable(getattr(component, "warm_up", None)):
        component.warm_up()
    encoder = getattr(component, "encoder", None)
    if encoder is None:
        msg = f"{type(component).__name__} is not a LaSER component (no encoder); give a LaSERDocumentEmbedder."
        raise TypeError(msg)
    return describe_encoder(
        encoder,
        num_thinking_steps=getattr(component, "num_thinking_steps", None),
        instruction=getattr(component, "instruction", None),
        embedded_fields=getattr(component, "meta_fields_to_embed", ()),
        prefix=getattr(component, "prefix", ""),
        suffix=getattr(component, "suffix", ""),
        truncate_dim=getattr(component, "truncate_dim", None),
        precision=getattr(component, "precision", "float32"),
    )


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a fingerprint
    return repr(value)


def differences(stored: dict[str, Any], current: dict[str, Any], role: Role) -> list[str]:
    """Human-readable lines, one per key that differs between two records (empty when they match)."""
    lines = []
    for key in WRITER_KEYS if role == "writer" else READER_KEYS:
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if key == "laser_config" and isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    was, now = _show(old.get(sub)), _show(new.get(sub))
                    lines.append(f"laser_config.{sub}: collection {was}, this encoder {now}")
        elif key == "weights_sha256":
            lines.append(f"weights fingerprint: collection {_show(old)}, this encoder {_show(new)}")
        else:
            lines.append(f"{key}: collection {_show(old)}, this encoder {_show(new)}")
    return lines


def check_provenance(
    stored: dict[str, Any] | None,
    current: dict[str, Any],
    *,
    role: Role,
    collection: str,
    where: str = "Qdrant",
    points: int = 0,
    allow_mismatch: bool = False,
) -> None:
    """Raise (or warn) when ``current`` may not write to / search a collection whose record is ``stored``.

    A pure function of the two records (plus the collection's point count), so that each worker of a parallel
    indexer can call it on the record it read.

    Args:
        stored: the collection's record (:func:`read_provenance`), None when it has none.
        current: this encoder's record (:func:`describe_encoder`).
        role: ``"writer"`` (adds documents) or ``"reader"`` (searches).
        collection, where: for the message.
        points: points in the collection (a writer may adopt an empty collection that has no record).
        allow_mismatch: readers only: warn instead of raising.

    Raises:
        ProvenanceMismatchError: the records differ (writer, or reader without ``allow_mismatch``), or a writer
            meets a non-empty collection without a record.
    """
    name = f"Collection {collection!r} in {where}"
    if stored is None:
        if role == "writer" and points > 0:
            msg = (
                f"{name} holds {points} points but records no model (it was indexed before provenance was "
                "recorded, or by another tool), so adding to it could mix vectors of two models. Rebuild it "
                "with --recreate (recreate=True), or index into another --collection."
            )
            raise ProvenanceMismatchError(msg)
        if role == "reader" and points > 0:
            msg = (
                f"{name} records no model (indexed before provenance was recorded, or by another tool); the "
                "results are right only if it was indexed with this model and K. Re-index it with `laser index "
                "--recreate`, or write it through open_document_store(provenance=provenance_of(embedder)) / "
                "open_vector_store(embed_model=...), to record its model."
            )
            warnings.warn(msg, ProvenanceWarning, stacklevel=3)
        return
    lines = differences(stored, current, role)
    if not lines:
        return
    made_by = stored.get("checkpoint_resolved") or stored.get("checkpoint")
    detail = "; ".join(lines)
    if role == "writer":
        msg = (
            f"{name} was indexed by {made_by!r} with other settings than this run ({detail}). Adding to it would "
            "mix incomparable vectors. Index with the same model and settings, drop and rebuild the collection "
            "with --recreate (recreate=True), or use another --collection."
        )
        raise ProvenanceMismatchError(msg)
    if allow_mismatch:
        msg = f"{name} was indexed by {made_by!r}, which differs from this query encoder ({detail}); searching anyway."
        warnings.warn(msg, ProvenanceWarning, stacklevel=3)
        return
    msg = (
        f"{name} was indexed by {made_by!r}, which differs from this query encoder ({detail}); its hits would be "
        "meaningless. Search with the model and K it was indexed with, re-index it with this model (`laser index "
        "--recreate`), or accept the mismatch explicitly (--allow-model-mismatch / allow_model_mismatch=True)."
    )
    raise ProvenanceMismatchError(msg)


# -- storage in Qdrant -----------------------------------------------------------------------------------------
def read_provenance(client: QdrantClient, collection: str) -> dict[str, Any] | None:
    """The collection's record, or None when it has none (or does not exist)."""
    if not client.collection_exists(collection):
        return None
    metadata = client.get_collection(collection).config.metadata or {}
    record = metadata.get(METADATA_KEY)
    if isinstance(record, str):  # a server may hand nested metadata back as JSON text
        record = json.loads(record)
    return record if isinstance(record, dict) else None


def write_provenance(client: QdrantClient, collection: str, record: dict[str, Any]) -> bool:
    """Store ``record`` in the collection's metadata; False (with a warning) when the server does not keep it."""
    try:
        client.update_collection(collection, metadata={METADATA_KEY: record})
        kept = read_provenance(client, collection) == record
    except Exception as e:  # noqa: BLE001 - an older server rejects the field; the index still works
        logger.debug("update_collection(metadata=...) failed: %s", e)
        kept = False
    if not kept:
        msg = (
            f"This Qdrant does not keep collection metadata (Qdrant >= 1.16 does), so collection {collection!r} "
            "cannot record which model filled it; readers will not be able to check it."
        )
        warnings.warn(msg, ProvenanceWarning, stacklevel=3)
    return kept


def read_folder_provenance(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record kept beside a Qdrant Edge shard (``folder/laser_provenance.json``), or None when it has none.

    Raises:
        ValueError: the file is not a JSON object (damaged by hand: nothing to check against).
    """
    path = os.path.join(folder, PROVENANCE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            record = json.load(f)
        except ValueError as e:
            msg = f"{path!r} is not valid JSON ({e}); delete it and re-index with --recreate (recreate=True)."
            raise ValueError(msg) from e
    if not isinstance(record, dict):
        msg = f"{path!r} does not hold a provenance record (a JSON object); re-index with --recreate (recreate=True)."
        raise ValueError(msg)
    return record


def write_folder_provenance(folder: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write ``record`` beside a Qdrant Edge shard atomically: a temporary file, flushed, then renamed over."""
    write_json_atomically(os.path.join(folder, PROVENANCE_FILE), record)


def write_json_atomically(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as JSON to ``path``: a temporary file, flushed, then renamed over the old one."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)  # a reader sees the old file or the new one, never half of one


def ensure_provenance(
    client: QdrantClient,
    collection: str,
    current: dict[str, Any],
    *,
    role: Role,
    where: str = "Qdrant",
    allow_mismatch: bool = False,
) -> dict[str, Any] | None:
    """Check ``current`` against the collection's record and, for a writer of a collection without one (new or
    empty), record it. Returns the stored record (None if the collection records none)."""
    exists = client.collection_exists(collection)
    return _ensure(read_provenance(client, collection), current, role=role, collection=collection, where=where,
                   exists=exists, points=client.count(collection, exact=True).count if exists else 0,
                   write=lambda: write_provenance(client, collection, current), allow_mismatch=allow_mismatch)  # fmt: skip


def ensure_folder_provenance(
    folder: str | os.PathLike,
    points: int,
    current: dict[str, Any],
    *,
    role: Role,
    collection: str,
    where: str = "Qdrant Edge",
    allow_mismatch: bool = False,
) -> dict[str, Any] | None:
    """:func:`ensure_provenance` for a Qdrant Edge shard in ``folder`` that holds ``points`` points: the same
    check, the record kept in ``folder/laser_provenance.json``."""
    return _ensure(read_folder_provenance(folder), current, role=role, collection=collection, where=where,
                   exists=True, points=points, write=lambda: write_folder_provenance(folder, current),
                   allow_mismatch=allow_mismatch)  # fmt: skip


def _ensure(
    stored: dict[str, Any] | None, current: dict[str, Any], *, role: Role, collection: str, where: str,
    exists: bool, points: int, write: Any, allow_mismatch: bool,
) -> dict[str, Any] | None:  # fmt: skip
    check_provenance(stored, current, role=role, collection=collection, where=where, points=points,
                     allow_mismatch=allow_mismatch)  # fmt: skip
    if stored is None and role == "writer" and exists:
        write()
        return current
    return stored


def check_haystack_store(store: Any, embedder: Any, *, allow_mismatch: bool = False) -> None:
    """A reader's check of a Haystack ``QdrantDocumentStore`` (or ``QdrantEdgeDocumentStore``) against the query ``encoder`` (the LaSER retrievers
    run it at warm-up with their warmed-up ``LaSERTextEmbedder``): another model, K or format raises :class:`ProvenanceMismatchError`, or warns with
    ``allow_mismatch``; a collection without a record warns."""
    record = describe_encoder(embedder.encoder, num_thinking_steps=embedder.num_thinking_steps,
                              truncate_dim=getattr(embedder, "truncate_dim", None),
                              precision=getattr(embedder, "precision", "float32"))  # fmt: skip
    if type(store).__name__ == "QdrantEdgeDocumentStore":
        ensure_folder_provenance(store.folder, store.count_documents(), record, role="reader", collection=store.index,
                                 where=f"Qdrant Edge folder {str(store.path)!r}", allow_mismatch=allow_mismatch)  # fmt: skip
        return
    if store.url:
        where = f"Qdrant server {store.url}"
    elif store.path:
        where = f"embedded Qdrant folder {store.path!r}"
    else:
        where = "in-memory Qdrant" if store.location == ":memory:" else "the QdrantDocumentStore"
    store._initialize_client()  # noqa: SLF001 - the store's own (possibly embedded, single-holder) client
    ensure_provenance(store._client, store.index, record, role="reader", where=where,  # noqa: SLF001
                      allow_mismatch=allow_mismatch)  # fmt: skip
