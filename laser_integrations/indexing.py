"""The indexing engine behind ``laser index --devices/--processes`` and ``laser index`` under torchrun/accelerate.

Each worker (a spawned process per device, or one torchrun rank) takes a stable shard of the corpus: the
documents whose id hashes to its rank (:func:`shard_of`, the same on every machine and every run). It streams
the corpus file, keeps its shard, and embeds it a chunk at a time, skipping ids the collection already holds, so
a killed run keeps what it wrote and the rerun finishes each shard where it stopped; point ids derive from
document ids (Haystack's uuid5), so nothing is written twice.

- **Embedded Qdrant** allows one writer: the parent process holds the folder, answers the workers' "which of
  these ids are present?" and writes what they embedded. Under torchrun every rank would need the folder, so
  that combination is refused with the two ways that work.
- **A Qdrant server or cluster**: every worker opens the collection itself (through ``open_document_store``,
  so every check that opener makes applies to each worker) and uploads its own points in several streams, in
  requests kept under the server's request size limit. The collection is bulk-loaded as Qdrant documents it:
  HNSW construction is deferred (``m=0``) during the upload and restored afterwards.

With ``--hybrid`` each worker also computes its documents' BM25 sparse vectors (``laser_integrations.sparse``)
and they are written with the dense ones, in the same point. The encoder's only corpus statistic, the average
document length, is measured once over the whole corpus before the workers start and travels in the
:class:`IndexJob` (torchrun ranks each measure the same file), so every worker writes the vectors one process
writes; the IDF is Qdrant's (``Modifier.IDF``), computed over the points present.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .parallel import parent_alive, replay_log, setup_worker, spawn_context, threads_for

logger = logging.getLogger(__name__)

_POLL_S = 0.5
# Qdrant's default service.max_request_size_mb is 32; requests stay well below it.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_HNSW_M = 16  # Qdrant's default, restored when a collection was left in bulk mode by a killed run
UPLOAD_STREAMS = 2  # concurrent upload requests per worker (Qdrant suggests 2-4 streams in all)


def shard_of(doc_id: str, world_size: int) -> int:
    """The shard (0..world_size-1) of a document id: stable across runs, processes and machines."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % world_size


@dataclass
class IndexJob:
    """Everything a worker needs (picklable: it travels to spawned processes).

    ``embedder_kwargs`` are ``LaSERDocumentEmbedder`` arguments without the device; ``store_kwargs`` are
    ``open_document_store`` arguments (the API key only as a ``Secret`` naming an environment variable);
    ``sparse``, for a hybrid collection, the ``BM25SparseDocumentEmbedder`` arguments
    (``laser_integrations.cli.index.sparse_settings``).
    """

    corpus: Path
    embedder_kwargs: dict[str, Any]
    store_kwargs: dict[str, Any]
    chunk_size: int = 256
    server: bool = False
    upload_streams: int = UPLOAD_STREAMS
    bulk_load: bool = True
    sparse: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class IndexResult:
    written: int
    skipped: int
    count: int
    updated: int = 0  # already present with another text: embedded again
    built: str = ""  # Qdrant Edge: how the HNSW build went, for the summary


def torchrun_rank() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) under torchrun / accelerate launch (RANK, WORLD_SIZE), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    rank = int(os.environ.get("RANK", "0"))
    return rank, world, int(os.environ.get("LOCAL_RANK", str(rank)))


def shard_records(corpus: Path, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
    """The corpus's records of shard ``rank``, streamed (the file is read line by line, never held)."""
    from .cli.index import read_corpus  # the one corpus parser (ids, text keys, its errors)

    for record in read_corpus(corpus):
        if shard_of(record["id"], world_size) == rank:
            yield record


def chunks(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _digest(record: dict[str, Any], embed_title: bool) -> str:
    from .provenance import content_hash

    # What is embedded, as the one-process `laser index` hashes it: the title (unless --no-title) and the text.
    return content_hash(record["title"] if embed_title else "", record["text"])


def _embeds_title(job: IndexJob) -> bool:
    return "title" in (job.embedder_kwargs.get("meta_fields_to_embed") or [])


def stored_hashes(store: Any, ids: list[str]) -> dict[str, str | None]:
    """Content hash of each id already in the collection (None for points written before hashes were kept)."""
    from .provenance import CONTENT_HASH_FIELD

    return {doc.id: doc.meta.get(CONTENT_HASH_FIELD) for doc in store.get_documents_by_id(ids)}


def to_embed(chunk: list[dict[str, Any]], stored: dict[str, str | None], embed_title: bool) -> tuple[list[dict], int]:
    """Records to embed (new, or present with another text: a resumed or repeated run re-embeds those), each with
    its content hash, and how many of them were present."""
    todo, updated = [], 0
    for r in chunk:
        sha = _digest(r, embed_title)
        if r["id"] in stored and stored[r["id"]] == sha:
            continue
        updated += r["id"] in stored
        todo.append({**r, "sha256": sha})
    return todo, updated


def documents_of(records: list[dict[str, Any]]) -> list[Any]:
    from haystack import Document

    from .provenance import CONTENT_HASH_FIELD

    return [
        Document(id=r["id"], content=r["text"],
                 meta={**({"title": r["title"]} if r["title"] else {}), CONTENT_HASH_FIELD: r["sha256"]})
        for r in records
    ]  # fmt: skip


def sparse_embedder(settings: dict[str, Any] | None) -> Any:
    """The ``BM25SparseDocumentEmbedder`` of ``settings`` (see :class:`IndexJob`), or None for a dense collection."""
    if settings is None:
        return None
    from haystack_integrations.components.embedders.laser_sparse import BM25SparseDocumentEmbedder

    return BM25SparseDocumentEmbedder(**settings)


def embed(records: list[dict[str, Any]], embedder: Any, sparse: Any = None) -> list[Any]:
    """The Documents of ``records`` (:func:`to_embed`'s) with their LaSER embedding and, when ``sparse`` is an
    embedder, their BM25 sparse embedding: what every path of ``laser index`` writes."""
    if not records:
        return []
    documents = embedder.run(documents_of(records))["documents"]
    return sparse.run(documents)["documents"] if sparse is not None else documents


def document_bytes(doc: Any) -> int:
    """An upper estimate of an embedded Haystack document's JSON size in an upsert request."""
    # A float is at most ~12 characters of JSON, a sparse term ~24 (its uint32 id and value); payload as written;
    # 200 bytes of keys and id.
    sparse = len(doc.sparse_embedding.indices) if getattr(doc, "sparse_embedding", None) is not None else 0
    return (12 * len(doc.embedding or []) + 24 * sparse + len((doc.content or "").encode()) + len(json.dumps(doc.meta))
            + 200)  # fmt: skip


def request_batches(
    documents: list[Any], limit_bytes: int = MAX_REQUEST_BYTES, size_of: Callable[[Any], int] = document_bytes
) -> list[list[Any]]:
    """Split embedded documents (or points, with their ``size_of``) into upsert requests whose JSON stays under
    ``limit_bytes``."""
    batches: list[list[Any]] = []
    batch: list[Any] = []
    size = 0
    for doc in documents:
        point = size_of(doc)
        if batch and size + point > limit_bytes:
            batches.append(batch)
            batch, size = [], 0
        batch.append(doc)
        size += point
    if batch:
        batches.append(batch)
    return batches


def write_documents(store: Any, documents: list[Any], streams: int = 1) -> None:
    """Upsert (never duplicate: point ids derive from document ids) in size-limited requests, ``streams`` at once."""
    from haystack.document_stores.types import DuplicatePolicy

    batches = request_batches(documents)
    if streams <= 1 or len(batches) <= 1:
        for batch in batches:
            store.write_documents(batch, policy=DuplicatePolicy.OVERWRITE)
        return
    with ThreadPoolExecutor(max_workers=streams) as pool:
        for future in [pool.submit(store.write_documents, b, policy=DuplicatePolicy.OVERWRITE) for b in batches]:
            future.result()


# -- bulk-load mode (server) -----------------------------------------------------------------------------------
def begin_bulk_load(client: Any, collection: str) -> int:
    """Defer HNSW construction (``m=0``) for the upload; returns the ``m`` to restore afterwards.

    A collection found at ``m=0`` was left so by a killed bulk load: it gets Qdrant's default (16) back.
    """
    from qdrant_client.models import HnswConfigDiff

    m = client.get_collection(collection).config.hnsw_config.m
    if m == 0:
        logger.warning("Collection %r has hnsw m=0 (a bulk load was interrupted?); m=%d is restored after this one.",
                       collection, DEFAULT_HNSW_M)  # fmt: skip
        m = DEFAULT_HNSW_M
    client.update_collection(collection, hnsw_config=HnswConfigDiff(m=0))
    logger.info("Bulk load: HNSW construction deferred on %r (m=0); m=%d comes back at the end.", collection, m)
    return m


def end_bulk_load(client: Any, collection: str, m: int) -> None:
    """Restore HNSW construction; the server then builds the index in the background."""
    from qdrant_client.models import HnswConfigDiff

    client.update_collection(collection, hnsw_config=HnswConfigDiff(m=m))
    logger.info("Bulk load done: hnsw m=%d restored on %r; Qdrant now builds the index in the background.", m, collection)


# -- bulk-load mode (Qdrant Edge) ------------------------------------------------------------------------------
def begin_edge_bulk_load(store: Any) -> bool:
    """On a Qdrant Edge store, defer the optimizers (the HNSW build) to :func:`end_edge_bulk_load`; returns
    whether ``store`` is one. Points written meanwhile are in plain segments, searched exactly."""
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore

    if not isinstance(store, QdrantEdgeDocumentStore):
        return False
    store.optimize_after_write = False
    return True


def end_edge_bulk_load(store: Any, progress: bool) -> str:
    """Build the HNSW index once, over everything uploaded (a no-op when it is built already); returns a
    sentence for the command's summary."""
    start = time.monotonic()
    changed = store.optimize(progress_bar=progress)
    info = store.open().info()
    built = f"built in {time.monotonic() - start:.0f} s" if changed else "already built"
    rest = " (the others, in segments under Qdrant's indexing threshold, are searched exactly)"
    return (f" HNSW index {built}: {info.indexed_vectors_count} of {info.points_count} vectors in it"
            f"{rest if info.indexed_vectors_count < info.points_count else ''}.")  # fmt: skip


# -- workers ---------------------------------------------------------------------------------------------------
def _load_embedder(job: IndexJob, device: str) -> Any:
    from haystack.utils import ComponentDevice

    from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder

    embedder = LaSERDocumentEmbedder(**job.embedder_kwargs, device=ComponentDevice.from_str(device))
    embedder.warm_up()
    return embedder


def _open_worker_store(job: IndexJob, dimension: int, embedder: Any) -> Any:
    from .provenance import provenance_of
    from .qdrant import open_document_store

    # The parent created (or recreated) the collection; a worker only opens it, with the opener's checks (its
    # vector size and the model recorded in it: laser_integrations.provenance).
    return open_document_store(**{**job.store_kwargs, "recreate": False}, embedding_dim=dimension,
                               provenance=provenance_of(embedder))  # fmt: skip


def _index_worker(rank: int, world: int, device: str, threads: int, job: IndexJob, results: Any, replies: Any,
                  parent_pid: int) -> None:  # fmt: skip
    """One spawned worker: embed shard ``rank`` of ``world``; see the module docstring for who writes."""
    try:
        setup_worker(device, threads, results)
        embedder = _load_embedder(job, device)
        sparse = sparse_embedder(job.sparse)
        from .provenance import provenance_of

        # The dimension and the provenance record: the parent checks (and records) it before anything is written.
        _put(results, ("ready", rank, (embedder.encoder.dimension, provenance_of(embedder))), parent_pid)
        if _get(replies, parent_pid) != "go":  # the parent could not open the collection
            return
        store = _open_worker_store(job, embedder.encoder.dimension, embedder) if job.server else None
        for chunk in chunks(shard_records(job.corpus, rank, world), job.chunk_size):
            ids = [r["id"] for r in chunk]
            if store is not None:
                present = stored_hashes(store, ids)
            else:
                _put(results, ("ask", rank, ids), parent_pid)
                present = _get(replies, parent_pid)
            todo, updated = to_embed(chunk, present, _embeds_title(job))
            embedded = embed(todo, embedder, sparse)
            counts = (len(todo) - updated, updated, len(chunk) - len(todo))
            if store is not None:
                write_documents(store, embedded, job.upload_streams)
                _put(results, ("wrote", rank, (*counts, [])), parent_pid)
            else:
                _put(results, ("wrote", rank, (*counts, embedded)), parent_pid)
        if store is not None:
            store.close()
        _put(results, ("done", rank, None), parent_pid)
    except _ParentGone:
        os._exit(0)
    except BaseException as e:
        _put(results, ("error", rank, f"{type(e).__name__}: {e}"), parent_pid)


class _ParentGone(Exception):
    """The parent died (e.g. SIGKILL): a worker stops rather than embed for nobody."""


def _put(q: Any, item: Any, parent_pid: int) -> None:
    while True:
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            if not parent_alive(parent_pid):
                raise _ParentGone from None


def _get(q: Any, parent_pid: int) -> Any:
    while True:
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            if not parent_alive(parent_pid):
                raise _ParentGone from None


# -- the parent ------------------------------------------------------------------------------------------------
class IndexingFailed(RuntimeError):
    """A worker failed or died; what was written is kept and a rerun resumes."""


def index_with_workers(job: IndexJob, devices: Sequence[str], *, threads_per_process: int | None = None,
                       total: int | None = None, progress: bool = True) -> IndexResult:  # fmt: skip
    """Index ``job.corpus`` with one spawned worker per device, each on its own shard; the parent writes
    (embedded Qdrant) or coordinates (server). Raises :class:`IndexingFailed` when a worker fails or dies."""
    from tqdm.auto import tqdm

    from .qdrant import open_document_store, warn_large_collection

    devices = list(devices)
    world, threads = len(devices), threads_for(devices, threads_per_process)
    collection = job.store_kwargs.get("collection")
    ctx = spawn_context()
    results = ctx.Queue(maxsize=4 * world)  # bounded: workers wait for the writer instead of piling up chunks
    replies = [ctx.Queue() for _ in devices]
    processes = [
        ctx.Process(target=_index_worker, args=(rank, world, device, threads, job, results, replies[rank], os.getpid()),
                    daemon=True, name=f"laser-index-{rank}-{device}")  # fmt: skip
        for rank, device in enumerate(devices)
    ]
    for process in processes:
        process.start()
    store = None
    local_mode = edge_bulk = False
    built = ""
    written = updated = skipped = 0
    done: set[int] = set()
    failure: str | None = None
    try:
        # The workers load the model; the collection is opened once they report its dimension, so the
        # parent never holds the weights.
        dimensions: dict[int, int] = {}
        records: dict[int, dict[str, Any]] = {}  # each worker's provenance record (the same model: the same record)
        while len(dimensions) < world:
            try:
                kind, rank, value = results.get(timeout=_POLL_S)
            except queue.Empty:
                if failure := _dead_worker(processes, devices, done):
                    raise IndexingFailed(failure + "; nothing was written.")
                continue
            if kind == "log":
                replay_log(value)
            elif kind == "error":
                msg = f"worker {rank} ({devices[rank]}) failed to start: {value}"
                raise IndexingFailed(msg)
            elif kind == "ready":
                dimensions[rank], records[rank] = value
        store = open_document_store(**job.store_kwargs, embedding_dim=dimensions[0], provenance=records[0])
        client = getattr(store, "_client", None)  # qdrant-haystack keeps its connected QdrantClient here
        restore_m = begin_bulk_load(client, collection) if job.server and job.bulk_load else None
        edge_bulk = begin_edge_bulk_load(store)
        local_mode = type(store).__name__ == "QdrantDocumentStore" and not job.server  # exact search, in memory
        if local_mode and total is not None:
            warn_large_collection(collection, total + store.count_documents())
        for reply in replies:
            reply.put("go")
        with tqdm(total=total, desc=f"Indexing into {collection!r} on {world} workers", unit="doc",
                  disable=not progress) as bar:  # fmt: skip
            checked = time.monotonic()
            while len(done) < world and failure is None:
                if time.monotonic() - checked > _POLL_S:  # also while others keep the queue busy
                    failure, checked = _dead_worker(processes, devices, done), time.monotonic()
                try:
                    kind, rank, value = results.get(timeout=_POLL_S)
                except queue.Empty:
                    failure = _dead_worker(processes, devices, done)
                    continue
                if kind == "log":
                    replay_log(value)
                elif kind == "ask":
                    replies[rank].put(stored_hashes(store, value))
                elif kind == "wrote":
                    n_new, n_updated, n_skipped, documents = value
                    if documents:
                        write_documents(store, documents)
                    written, updated, skipped = written + n_new, updated + n_updated, skipped + n_skipped
                    bar.update(n_new + n_updated + n_skipped)
                    bar.set_postfix(new=written, updated=updated, skipped=skipped)
                elif kind == "done":
                    done.add(rank)
                elif kind == "error":
                    failure = f"worker {rank} ({devices[rank]}, shard {rank + 1}/{world}) failed: {value}"
        if failure is None and restore_m is not None:
            end_bulk_load(client, collection, restore_m)
        if failure is None and edge_bulk:
            built = end_edge_bulk_load(store, progress)
        count = store.count_documents()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)
        if store is not None:
            store.close()
    if failure is not None:
        msg = (
            f"{failure}. {written} new documents were written and are kept; run the same command again to "
            "resume (each shard restarts after its last written chunk)."
        )
        raise IndexingFailed(msg)
    if local_mode:
        warn_large_collection(collection, count)
    return IndexResult(written=written, skipped=skipped, count=count, updated=updated, built=built)


def _dead_worker(processes: list[Any], devices: Sequence[str], done: set[int]) -> str | None:
    for rank, process in enumerate(processes):
        if rank not in done and not process.is_alive():
            code = process.exitcode
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            return f"worker {rank} ({devices[rank]}, shard {rank + 1}/{len(devices)}) died ({how})"
    return None


def index_as_rank(job: IndexJob, rank: int, world: int, device: str, *, progress: bool = True) -> IndexResult:
    """Index shard ``rank`` of ``world`` in this process (one torchrun / accelerate rank); server only.

    Rank 0 creates the collection and turns bulk mode on before the others start and off after all finished,
    with barriers of a gloo process group (initialised here from torchrun's environment when none is).
    """
    import torch.distributed as dist
    from tqdm.auto import tqdm

    from .qdrant import open_document_store

    if not job.server:
        msg = (
            "Embedded Qdrant allows one writer, so torchrun/accelerate ranks cannot share its folder. Index into a "
            "Qdrant server (--url), or run one `laser index --devices cuda:0,cuda:1` (its workers feed one writer)."
        )
        raise ValueError(msg)
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    embedder = _load_embedder(job, device)
    sparse = sparse_embedder(job.sparse)
    dimension = embedder.encoder.dimension
    restore_m = None
    store = None
    if rank == 0:
        from .provenance import provenance_of

        # Creates or recreates it; refuses a collection of another model (laser_integrations.provenance).
        store = open_document_store(**job.store_kwargs, embedding_dim=dimension, provenance=provenance_of(embedder))
        restore_m = begin_bulk_load(store._client, job.store_kwargs.get("collection")) if job.bulk_load else None
    dist.barrier()
    if store is None:
        store = _open_worker_store(job, dimension, embedder)
    written = updated = skipped = 0
    try:
        with tqdm(desc=f"Indexing shard {rank + 1}/{world}", unit="doc", disable=not progress) as bar:
            for chunk in chunks(shard_records(job.corpus, rank, world), job.chunk_size):
                todo, n_updated = to_embed(chunk, stored_hashes(store, [r["id"] for r in chunk]), _embeds_title(job))
                if todo:
                    write_documents(store, embed(todo, embedder, sparse), job.upload_streams)
                written, updated = written + len(todo) - n_updated, updated + n_updated
                skipped += len(chunk) - len(todo)
                bar.update(len(chunk))
        dist.barrier()
        if rank == 0 and restore_m is not None:
            end_bulk_load(store._client, job.store_kwargs.get("collection"), restore_m)
        count = store.count_documents()
    finally:
        store.close()
    return IndexResult(written=written, skipped=skipped, count=count, updated=updated)


# -- command line ----------------------------------------------------------------------------------------------
def add_arguments(parser: Any) -> None:
    """``laser index`` options of the several-worker path."""
    group = parser.add_argument_group("several devices or processes (also: run under torchrun / accelerate launch)")
    group.add_argument("--devices", default=None, metavar="LIST",
                       help="one worker per device, e.g. cuda:0,cuda:1 or cpu:0,cpu:1; each indexes its shard")  # fmt: skip
    group.add_argument("--processes", type=int, default=None, metavar="N", help="N CPU worker processes (cpu:0..)")
    group.add_argument("--threads-per-process", type=int, default=None, metavar="M",
                       help="torch threads per worker (default: the cores shared out among CPU workers)")  # fmt: skip
    group.add_argument("--no-bulk-load", action="store_true",
                       help="server only: keep HNSW indexing on during the upload (default: deferred, then restored)")  # fmt: skip


def requested(args: Any) -> bool:
    """Whether ``laser index`` should take the several-worker path."""
    return bool(args.devices or args.processes or torchrun_rank())


def run_cli(args: Any) -> int:
    """``laser index`` with ``--devices``/``--processes`` or under torchrun; exit code 0, 1 or 2."""
    from .cli._qdrant_args import embedder_kwargs, missing_haystack, store_kwargs, where
    from .cli.index import corpus_file, sparse_settings, validate_corpus
    from .parallel import cpu_devices, parse_devices
    from .qdrant import CollectionDimensionError, StorageLockedError

    def fail(message: str, code: int) -> int:
        print(f"laser index: {message}", file=sys.stderr)
        return code

    if hint := missing_haystack():
        return fail(hint, 1)
    if args.chunk_size < 1 or args.batch_size < 1:
        return fail("--chunk-size and --batch-size must be positive integers.", 2)
    rank = torchrun_rank()
    progress = not getattr(args, "no_progress", False)  # --no-progress, where the command line has it
    try:
        if args.devices and args.processes:
            return fail("give --devices or --processes, not both.", 2)
        if args.device and (args.devices or args.processes):
            return fail("--device names one device; with --devices/--processes leave it out.", 2)
        if rank is not None and (args.devices or args.processes):
            return fail("under torchrun/accelerate each rank is one worker; drop --devices/--processes.", 2)
        devices = parse_devices(args.devices) if args.devices else cpu_devices(args.processes) if args.processes else []
        threads_for(devices or ["cpu"], args.threads_per_process)
    except ValueError as e:
        return fail(str(e), 2)
    kwargs = embedder_kwargs(args)
    kwargs.pop("device", None)
    embedder_args = {
        **kwargs,
        "batch_size": args.batch_size,
        "progress_bar": False,
        "meta_fields_to_embed": [] if args.no_title else ["title"],
    }
    try:
        path = corpus_file(args.corpus)
        total = validate_corpus(path)  # a bad line fails before anything is written
        # --hybrid: BM25's average document length, measured here once for every worker.
        sparse = sparse_settings(path, embed_title=not args.no_title) if args.hybrid else None
    except (FileNotFoundError, ValueError, OSError, ImportError) as e:
        return fail(str(e), 1)
    from .cli._qdrant_args import index_settings

    try:
        settings = index_settings(args)
    except ValueError as e:
        return fail(str(e), 2)
    stores = {
        **store_kwargs(args),
        **settings,
        "recreate": args.recreate,
        "hybrid": args.hybrid,
        "shard_number": args.shard_number,
        "replication_factor": args.replication_factor,
        "write_consistency_factor": args.write_consistency_factor,
        "progress_bar": False,
    }
    job = IndexJob(corpus=path, embedder_kwargs=embedder_args, store_kwargs=stores, chunk_size=args.chunk_size,
                   server=bool(args.url), bulk_load=not args.no_bulk_load, sparse=sparse)  # fmt: skip
    try:
        if rank is not None:
            r, world, local = rank
            device = args.device or _rank_device(local)
            if args.threads_per_process:
                import torch

                torch.set_num_threads(args.threads_per_process)
            result = index_as_rank(job, r, world, device, progress=progress)
        else:
            result = index_with_workers(job, devices, threads_per_process=args.threads_per_process, total=total,
                                        progress=progress)  # fmt: skip
    except (ValueError, CollectionDimensionError, StorageLockedError, IndexingFailed) as e:
        from .cli.main import exit_code

        # The one convention of every command: bad input (another model's collection, a wrong size) 2, else 1.
        return fail(str(e), exit_code(e) or 1)
    shard = f" (shard {rank[0] + 1}/{rank[1]})" if rank else ""
    print(
        f"Indexed {result.written} new documents ({result.skipped} already present, {result.updated} re-embedded "
        f"because their text changed){shard} into collection "
        f"{args.collection!r} in {where(args)}; it holds {result.count} documents.{result.built}"
    )
    return 0


def _rank_device(local_rank: int) -> str:
    import torch

    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
