"""``laser index CORPUS``: embed a JSONL corpus or a BEIR folder into Qdrant, resumably.

Documents whose ids are already in the collection with the same text are skipped, and documents are written in
chunks, so a run that was stopped keeps what it wrote and the next run picks up where it stopped; a document
whose text changed is embedded again. The collection records the model that filled it (see
``laser_integrations.provenance``): indexing into it with another model or format is refused.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import indexing
from ..jsonl import read_jsonl
from ._qdrant_args import (
    add_index_settings,
    add_model_arguments,
    add_store_arguments,
    embedded_local_mode,
    embedder_kwargs,
    index_settings,
    missing_haystack,
    store_kwargs,
    where,
)

ID_KEYS = ("_id", "id", "doc_id", "docid")
TEXT_KEYS = ("text", "contents", "content")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "index",
        help="embed a corpus (JSONL or BEIR folder) into Qdrant, resumably",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog="CORPUS lines look like {\"_id\": \"d1\", \"title\": \"...\", \"text\": \"...\"} (BEIR's corpus.jsonl).",
    )
    parser.add_argument("corpus", type=Path, metavar="CORPUS", help="a .jsonl file, or a BEIR folder holding corpus.jsonl")
    add_model_arguments(parser)
    add_store_arguments(parser)
    add_index_settings(parser)
    parser.add_argument("--chunk-size", type=int, default=256, help="documents embedded and written per step (default: %(default)s)")
    parser.add_argument("--recreate", action="store_true", help="drop the collection first and index everything again")
    parser.add_argument("--no-title", action="store_true", help="embed the text only, not 'title' + text")
    parser.add_argument("--hybrid", action="store_true", help="also write BM25 sparse vectors, for `laser search --hybrid`")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    cluster = parser.add_argument_group("server/cluster collection settings (refused by embedded Qdrant, which has no shards)")
    cluster.add_argument("--shard-number", type=int, default=None)
    cluster.add_argument("--replication-factor", type=int, default=None)
    cluster.add_argument("--write-consistency-factor", type=int, default=None)
    indexing.add_arguments(parser)  # --devices, --processes, --threads-per-process (laser_integrations/indexing.py)
    parser.set_defaults(command="index")
    return parser


def corpus_file(corpus: Path) -> Path:
    """The JSONL file of ``corpus`` (itself, or ``corpus.jsonl`` in a BEIR folder)."""
    if corpus.is_dir():
        path = corpus / "corpus.jsonl"
        if not path.is_file():
            msg = f"{str(corpus)!r} is a folder without corpus.jsonl; give a JSONL file or a BEIR dataset folder."
            raise FileNotFoundError(msg)
        return path
    if not corpus.is_file():
        msg = f"Corpus {str(corpus)!r} not found; give a JSONL file or a BEIR dataset folder."
        raise FileNotFoundError(msg)
    return corpus


def _field(path: Path, number: int, record: dict[str, Any], keys: tuple[str, ...], kinds: tuple[type, ...]) -> Any:
    """The first of ``keys`` present in ``record``; a value of another type is an error naming file, line, field."""
    key = next((k for k in keys if record.get(k) is not None), None)
    if key is None:
        return None
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        want = " or ".join("a string" if k is str else "an integer" for k in kinds)
        msg = f"{path}:{number}: field {key!r} must be {want}, got {type(value).__name__} {value!r:.60}."
        raise ValueError(msg)
    return value


def read_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """Yield ``{"id", "text", "title"}`` per line of a JSONL corpus; a bad line is an error naming it."""
    seen: set[str] = set()
    for number, record in read_jsonl(path):
        doc_id = _field(path, number, record, tuple(k for k in ID_KEYS if record.get(k) != ""), (str, int))
        text = _field(path, number, record, TEXT_KEYS, (str,))
        title = _field(path, number, record, ("title",), (str,))
        if doc_id is None:
            msg = f"{path}:{number} has no document id; give one of the keys {list(ID_KEYS)}."
            raise ValueError(msg)
        if text is None and not title:
            msg = f"{path}:{number} (id {doc_id!r}) has no text; give one of the keys {list(TEXT_KEYS)} or 'title'."
            raise ValueError(msg)
        doc_id = str(doc_id)
        if doc_id in seen:
            msg = f"{path}:{number} repeats the document id {doc_id!r}; ids must be unique (each is one point)."
            raise ValueError(msg)
        seen.add(doc_id)
        yield {"id": doc_id, "text": text or "", "title": title or ""}


def validate_corpus(path: Path) -> int:
    """Read the whole corpus once and return its size, so a bad line (or no document) fails before anything is
    written."""
    total = sum(1 for _ in read_corpus(path))
    if total == 0:
        msg = f"Corpus {str(path)!r} holds no documents; each line must be one JSON object with an id and a text."
        raise ValueError(msg)
    return total


def sparse_settings(path: Path, *, embed_title: bool) -> dict[str, Any]:
    """``BM25SparseDocumentEmbedder`` arguments for the corpus at ``path``: its average length measured on the
    whole corpus, streamed. A function of the file alone, so a resumed run, and every worker of a several-worker
    run, write the vectors one process writes."""
    from ..sparse import BM25SparseEncoder

    fields = ["title"] if embed_title else []
    # The text BM25SparseDocumentEmbedder encodes: the title (unless --no-title), a newline, the text.
    texts = (f"{r['title']}\n{r['text']}" if fields and r["title"] else r["text"] for r in read_corpus(path))
    return {"avg_doc_length": BM25SparseEncoder.fit(texts).avg_doc_length, "meta_fields_to_embed": fields}


def run(args: argparse.Namespace) -> int:
    if indexing.requested(args):  # several devices/processes or a torchrun rank: the indexing engine
        return indexing.run_cli(args)
    if hint := missing_haystack():
        raise ImportError(hint)
    from haystack.document_stores.types import DuplicatePolicy
    from tqdm.auto import tqdm

    from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder

    from ..provenance import provenance_of
    from ..qdrant import open_document_store, warn_large_collection

    if args.chunk_size < 1 or args.batch_size < 1:
        msg = f"--chunk-size and --batch-size must be positive integers, got {args.chunk_size}, {args.batch_size}."
        raise ValueError(msg)
    path = corpus_file(args.corpus)
    total = validate_corpus(path)
    settings = index_settings(args)  # bad flags fail before the model loads
    fields = [] if args.no_title else ["title"]
    embedder = LaSERDocumentEmbedder(
        **embedder_kwargs(args), batch_size=args.batch_size, progress_bar=False, meta_fields_to_embed=fields
    )
    embedder.warm_up()
    sparse = indexing.sparse_embedder(sparse_settings(path, embed_title=not args.no_title) if args.hybrid else None)
    encoder = embedder.encoder
    assert encoder is not None  # set by warm_up
    store = open_document_store(
        embedding_dim=encoder.dimension,
        recreate=args.recreate,
        hybrid=args.hybrid,
        shard_number=args.shard_number,
        replication_factor=args.replication_factor,
        write_consistency_factor=args.write_consistency_factor,
        progress_bar=False,
        provenance=provenance_of(embedder),
        **settings,
        **store_kwargs(args),
    )
    bulk = indexing.begin_edge_bulk_load(store)

    written = updated = skipped = 0
    built = ""
    embed_s = write_s = 0.0  # where the time goes: the model, or the store (the summary says both)
    try:
        with tqdm(total=total, desc=f"Indexing into {args.collection!r}", unit="doc", disable=args.no_progress) as bar:
            for chunk in indexing.chunks(read_corpus(path), args.chunk_size):
                # Resumable: ids already in the collection with the same text were embedded by an earlier (maybe
                # stopped) run; a changed text is embedded again (the same rule as the several-worker path).
                stored = indexing.stored_hashes(store, [r["id"] for r in chunk])
                todo, n_updated = indexing.to_embed(chunk, stored, embed_title=not args.no_title)
                written, updated = written + len(todo) - n_updated, updated + n_updated
                skipped += len(chunk) - len(todo)
                if todo:
                    # OVERWRITE upserts by point id (uuid5 of the document id): never a duplicate point; a point's
                    # dense and sparse vectors are written together.
                    t0 = time.perf_counter()
                    documents = indexing.embed(todo, embedder, sparse)
                    t1 = time.perf_counter()
                    store.write_documents(documents, policy=DuplicatePolicy.OVERWRITE)
                    embed_s, write_s = embed_s + t1 - t0, write_s + time.perf_counter() - t1
                bar.update(len(chunk))
                bar.set_postfix(new=written, updated=updated, skipped=skipped)
        if bulk:  # also after a resumed run that had nothing left to write: a killed run may not have built it
            built = indexing.end_edge_bulk_load(store, progress=not args.no_progress)
        count = store.count_documents()
    finally:
        store.close()  # release the embedded folder even when interrupted; what was written stays
    print(
        f"Indexed {written} new documents ({skipped} already present, {updated} re-embedded because their text "
        f"changed) into collection {args.collection!r} in {where(args)}; it holds {count} documents.{built} "
        f"Embedding took {embed_s:.0f} s, writing to the store {write_s:.0f} s."
    )
    if embedded_local_mode(args):  # Qdrant Edge and servers index with HNSW: no size limit to warn about
        warn_large_collection(args.collection, count)
    return 0
